"""Settings of every reelsync process, built once at an entry point and passed down.

Rules: no other module reads ``os.environ`` or a config file; builders here take the environment as
an explicit mapping so tests pass their own. Environment variables use the ``REELSYNC_`` prefix
(and the accsyn names where a script written for accsyn must keep working).
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from reelsync.errors import ConfigError

__all__ = [
    "CREDENTIALS_FILE",
    "DEFAULT_FENCE_S",
    "SERVER_CONFIG_FILE",
    "ClientConfig",
    "ServerConfig",
    "SmtpConfig",
    "client_config_from_environment",
    "credentials_path",
    "load_client_config",
    "load_server_config",
    "parse_listen",
]

SERVER_CONFIG_FILE = "server.toml"
DEFAULT_PORT = 8443
#: A file taken back from a transfer that may still be moving it (its job paused or aborted, its
#: lease lost while the dialing agent still beats) waits this long before another lease -- the
#: time for that agent's next report to be refused and the transfer stopped -- or less: until the
#: agent says that transfer has stopped. So two transfers never write one file at once.
DEFAULT_FENCE_S = 6.0

TlsMode = Literal["none", "starttls", "tls"]


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    """Outgoing mail. ``host=None`` means mail is kept in the outbox, not sent."""

    host: str | None = None
    port: int = 25
    tls: TlsMode = "none"
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    sender: str = "reelsync@localhost"
    timeout_s: float = 30.0


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """The control plane's settings (``reelsync server run``)."""

    data_dir: Path
    database_url: str
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    tls: bool = True
    public_url: str | None = None
    accsyn_dev_port: int | None = None
    smtp: SmtpConfig = field(default_factory=SmtpConfig)
    agent_offline_after_s: float = 60.0
    agent_fileop_timeout_s: float = 30.0
    log_level: str = "info"
    signin_burst: int = 20  # failed sign-ins an address may make at once ...
    signin_refill_s: float = 1.0  # ... then one more every this many seconds
    webhook_allow_private: bool = False  # webhooks to loopback, link-local, private addresses
    workers: int | None = None  # worker processes (None: one per core on PostgreSQL, 1 on SQLite)
    fence_s: float = DEFAULT_FENCE_S  # files taken back from a live transfer wait at most this
    db_pool_size: int | None = None  # PostgreSQL connections kept per worker (None: 80 / workers)

    @property
    def cert_file(self) -> Path:
        return self.data_dir / "tls" / "server.crt"

    @property
    def key_file(self) -> Path:
        return self.data_dir / "tls" / "server.key"

    @property
    def ca_file(self) -> Path:
        """The workspace CA certificate (clients verify the server against it)."""
        return self.data_dir / "tls" / "ca.crt"

    @property
    def url(self) -> str:
        """The URL clients should use to reach this server."""
        if self.public_url:
            return self.public_url.rstrip("/")
        scheme = "https" if self.tls else "http"
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host  # noqa: S104
        return f"{scheme}://{host}:{self.port}"

    def with_overrides(self, **changes: Any) -> ServerConfig:
        return replace(self, **changes)


def default_database_url(data_dir: Path) -> str:
    return f"sqlite:///{(data_dir / 'reelsync.db').resolve()}"


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT`` or ``[v6]:PORT`` to a (host, port) pair."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"--listen must be HOST:PORT, got {text!r}")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port_text)


def _smtp_from(env: Mapping[str, str], file_cfg: Mapping[str, Any]) -> SmtpConfig:
    def pick(key: str, env_key: str) -> Any:
        if env_key in env:
            return env[env_key]
        return file_cfg.get(key)

    host = pick("host", "REELSYNC_SMTP_HOST")
    port = pick("port", "REELSYNC_SMTP_PORT")
    tls_text = str(pick("tls", "REELSYNC_SMTP_TLS") or "none").lower()
    tls: TlsMode
    if tls_text == "none":
        tls = "none"
    elif tls_text == "starttls":
        tls = "starttls"
    elif tls_text == "tls":
        tls = "tls"
    else:
        raise ConfigError(f"SMTP tls must be none, starttls or tls, got {tls_text!r}")
    try:
        port_num = int(port) if port is not None else (465 if tls == "tls" else 25)
    except ValueError as exc:
        raise ConfigError(f"SMTP port must be a number, got {port!r}") from exc
    return SmtpConfig(
        host=host or None,
        port=port_num,
        tls=tls,
        user=pick("user", "REELSYNC_SMTP_USER") or None,
        password=pick("password", "REELSYNC_SMTP_PASSWORD") or None,
        sender=pick("from", "REELSYNC_SMTP_FROM") or "reelsync@localhost",
    )


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _seconds(value: Any, name: str) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} must be a number of seconds, got {value!r}") from exc
    if not 0 < seconds < 86400 * 365:
        raise ConfigError(f"{name} must be a positive number of seconds, got {value!r}")
    return seconds


def _retry_seconds(value: Any) -> float:
    """``REELSYNC_RETRY_S`` / the credentials file's ``retry_s``: 0 (no retry) up to an hour."""
    if value in (None, ""):
        return DEFAULT_RETRY_S
    try:
        seconds = float(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"REELSYNC_RETRY_S must be a number of seconds, got {value!r}") from exc
    if not 0 <= seconds <= 3600:
        raise ConfigError(f"REELSYNC_RETRY_S must be 0 to 3600 seconds, got {value!r}")
    return seconds


def load_server_config(data_dir: Path, env: Mapping[str, str]) -> ServerConfig:
    """Build the server's settings from ``DATA_DIR/server.toml`` overlaid by ``REELSYNC_*``."""
    data_dir = data_dir.expanduser()
    file_cfg: dict[str, Any] = {}
    cfg_path = data_dir / SERVER_CONFIG_FILE
    if cfg_path.exists():
        try:
            file_cfg = tomllib.loads(cfg_path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read {cfg_path}: {exc}") from exc
    server = file_cfg.get("server", {})
    database_url = (
        env.get("REELSYNC_DATABASE_URL")
        or server.get("database_url")
        or default_database_url(data_dir)
    )
    host, port = "127.0.0.1", DEFAULT_PORT
    if listen := env.get("REELSYNC_LISTEN") or server.get("listen"):
        host, port = parse_listen(str(listen))
    return ServerConfig(
        data_dir=data_dir,
        database_url=str(database_url),
        host=host,
        port=port,
        tls=bool(server.get("tls", True)),
        public_url=env.get("REELSYNC_PUBLIC_URL") or server.get("public_url"),
        accsyn_dev_port=server.get("accsyn_dev_port"),
        smtp=_smtp_from(env, file_cfg.get("smtp", {})),
        agent_offline_after_s=_seconds(
            env.get("REELSYNC_AGENT_OFFLINE_AFTER_S") or server.get("agent_offline_after_s", 60.0),
            "agent_offline_after_s",
        ),
        agent_fileop_timeout_s=_seconds(
            env.get("REELSYNC_AGENT_FILEOP_TIMEOUT_S")
            or server.get("agent_fileop_timeout_s", 30.0),
            "agent_fileop_timeout_s",
        ),
        signin_burst=int(
            _seconds(
                env.get("REELSYNC_SIGNIN_BURST") or server.get("signin_burst", 20), "signin_burst"
            )
        ),
        webhook_allow_private=_flag(
            env.get("REELSYNC_WEBHOOK_ALLOW_PRIVATE", server.get("webhook_allow_private", False))
        ),
        signin_refill_s=_seconds(
            env.get("REELSYNC_SIGNIN_REFILL_S") or server.get("signin_refill_s", 1.0),
            "signin_refill_s",
        ),
        workers=_workers(env.get("REELSYNC_WORKERS") or server.get("workers")),
        fence_s=_seconds(
            env.get("REELSYNC_FENCE_S") or server.get("fence_s", DEFAULT_FENCE_S), "fence_s"
        ),
        db_pool_size=_count(
            env.get("REELSYNC_DB_POOL_SIZE") or server.get("db_pool_size"), "db_pool_size"
        ),
    )


def _workers(value: object) -> int | None:
    return _count(value, "workers")


def _count(value: object, name: str) -> int | None:
    """A whole number of at least 1, or None when not set."""
    if value in (None, ""):
        return None
    try:
        count = int(str(value))
    except ValueError as exc:
        raise ConfigError(f"{name} must be a whole number, got {value!r}") from exc
    if count < 1:
        raise ConfigError(f"{name} must be 1 or more, got {value!r}")
    return count


# --- the client (CLI, Python Session) -------------------------------------------------------------

CREDENTIALS_FILE = "credentials"
DEFAULT_URL = f"https://127.0.0.1:{DEFAULT_PORT}"


DEFAULT_RETRY_S = 20.0  # rides out a control-plane restart (about 10 s)


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """Where and as whom a client talks to the control plane. ``api_key`` never appears in a repr.

    TLS: with ``ca_file`` the server must present a certificate signed by that CA (the workspace
    CA, ``DATA_DIR/tls/ca.crt``); without it the system trust store is used (a server behind a
    reverse proxy with a public certificate); ``verify=False`` only with an explicit --insecure.
    """

    url: str = DEFAULT_URL
    api_user: str | None = None
    api_key: str | None = field(default=None, repr=False)
    ca_file: Path | None = None
    verify: bool = True
    workspace: str | None = None
    timeout_s: float = 30.0
    # how long to keep retrying a request that failed on the way (server restarting, connection
    # dropped, 502/503/504); 0: never retry
    retry_s: float = DEFAULT_RETRY_S

    def with_overrides(self, **changes: Any) -> ClientConfig:
        return replace(self, **changes)


def credentials_path(env: Mapping[str, str]) -> Path:
    """``$XDG_CONFIG_HOME/reelsync/credentials`` (``~/.config/reelsync/credentials``)."""
    if explicit := env.get("REELSYNC_CREDENTIALS_FILE"):
        return Path(explicit).expanduser()
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(base) / "reelsync" / CREDENTIALS_FILE


def _read_credentials(path: Path) -> dict[str, Any]:
    """The credentials file (TOML). Refused unless only its owner may read it (mode 0600)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"credentials file {path} is readable by others (mode {stat.S_IMODE(mode):04o})",
            hint=f"chmod 600 {path}",
        )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read credentials file {path}: {exc}") from exc
    return data


def load_client_config(
    env: Mapping[str, str],
    *,
    url: str | None = None,
    api_user: str | None = None,
    api_key: str | None = None,
    ca_file: str | Path | None = None,
    insecure: bool = False,
    workspace: str | None = None,
    timeout_s: float | None = None,
) -> ClientConfig:
    """Resolve the client's settings, first match wins: arguments, ``REELSYNC_URL`` /
    ``REELSYNC_API_USER`` / ``REELSYNC_API_KEY`` / ``REELSYNC_CA_FILE``, the accsyn names
    (``ACCSYN_API_USER``, ``ACCSYN_API_KEY``, ``ACCSYN_WORKSPACE``), then the credentials file."""
    creds = _read_credentials(credentials_path(env))

    def pick(arg: Any, *names: str, key: str) -> Any:
        if arg not in (None, ""):
            return arg
        for name in names:
            if env.get(name):
                return env[name]
        return creds.get(key) or None

    resolved_url = str(pick(url, "REELSYNC_URL", key="url") or DEFAULT_URL).rstrip("/")
    if not resolved_url.startswith(("http://", "https://")):
        raise ConfigError(
            f"the server URL must start with https:// or http://, got {resolved_url!r}"
        )
    ca = pick(ca_file, "REELSYNC_CA_FILE", key="ca_file")
    ca_path = Path(str(ca)).expanduser() if ca else None
    if ca_path is not None and not ca_path.is_file():
        raise ConfigError(f"CA file {ca_path} does not exist")
    insecure = insecure or env.get("REELSYNC_INSECURE", "") in ("1", "true", "yes")
    return ClientConfig(
        url=resolved_url,
        api_user=pick(api_user, "REELSYNC_API_USER", "ACCSYN_API_USER", key="api_user"),
        api_key=pick(api_key, "REELSYNC_API_KEY", "ACCSYN_API_KEY", key="api_key"),
        ca_file=ca_path,
        verify=not insecure,
        workspace=pick(workspace, "REELSYNC_WORKSPACE", "ACCSYN_WORKSPACE", key="workspace"),
        timeout_s=timeout_s if timeout_s is not None else float(creds.get("timeout_s", 30.0)),
        retry_s=_retry_seconds(env.get("REELSYNC_RETRY_S") or creds.get("retry_s")),
    )


def client_config_from_environment(**arguments: Any) -> ClientConfig:
    """:func:`load_client_config` over this process's environment (for library entry points)."""
    return load_client_config(os.environ, **arguments)
