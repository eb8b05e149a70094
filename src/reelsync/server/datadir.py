"""The control plane's data dir: made once by ``reelsync server init``. Rules: the directory is
new or empty and gets mode 0700; ``server.toml`` (0600, it may hold a database password) records
the workspace, the listen address and the database URL; ``tls/`` holds the workspace CA and the
HTTPS certificate it issued; the schema is migrated and the workspace bootstrapped last. A failed
init removes what it made, so it can simply be run again.

A replica (``reelsync server init-replica``) is a second control plane process on the same
PostgreSQL database: its own data dir with a copy of the first one's workspace CA (``ca.crt``,
``ca.key``) and ticket signing key (``ticket.key``, made first if the first server never ran), so
agents enrolled at either verify the other's tickets and certificates; the web UI's session key
(``ui-session.key``, so a browser signed in at one replica is signed in at all); its own HTTPS
certificate
for its own address; the same workspace, database URL and TLS choice. A SQLite data dir cannot
have replicas (its database is a file in that data dir)."""

from __future__ import annotations

import os
import shutil
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import tomli_w

from reelsync.config import SERVER_CONFIG_FILE, ServerConfig, load_server_config, parse_listen
from reelsync.db import Database
from reelsync.domain.codes import parse_code, parse_email
from reelsync.errors import ConfigError
from reelsync.pki import (
    CA_CERT_FILE,
    CA_KEY_FILE,
    TICKET_KEY_FILE,
    CertificateAuthority,
    TicketSigner,
    read_private_pem,
    write_pem,
    write_private_pem,
)
from reelsync.server.ui.sessions import KEY_FILE as UI_KEY_FILE
from reelsync.server.ui.sessions import load_or_create_key
from reelsync.services.bootstrap import init_workspace

__all__ = [
    "InitResult",
    "bootstrap_database",
    "init_data_dir",
    "init_replica",
    "write_server_toml",
]

Bootstrap = Callable[[ServerConfig, str, str], tuple[dict[str, Any], str]]


@dataclass(frozen=True, slots=True)
class InitResult:
    """What ``server init`` made. ``api_key`` is the admin's first key, shown once."""

    config: ServerConfig
    workspace: str
    admin: str
    api_key: str

    def __repr__(self) -> str:
        return f"InitResult(workspace={self.workspace!r}, admin={self.admin!r}, api_key=<hidden>)"

    def as_json(self) -> dict[str, str]:
        return {
            "api_key": self.api_key,
            "url": self.config.url,
            "workspace": self.workspace,
            "admin": self.admin,
            "data_dir": str(self.config.data_dir),
            "ca_file": str(self.config.ca_file),
            "database_url_kind": self.config.database_url.split(":", 1)[0],
        }


def bootstrap_database(
    config: ServerConfig, workspace: str, admin: str
) -> tuple[dict[str, Any], str]:
    """Migrate the schema and seed the workspace (core's ``init_workspace``)."""
    db = Database(config.database_url)
    try:
        result = init_workspace(db, workspace, admin)
    finally:
        db.dispose()
    return {"id": result.admin.id, "email": result.admin.email}, result.api_key


def write_server_toml(path: Path, data: dict[str, Any]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        tomli_w.dump(data, fh)


def _public_host(url: str) -> str:
    """The host name of ``--public-url`` (it goes into the HTTPS certificate)."""
    parsed = urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ConfigError(f"--public-url must be https://HOST[:PORT], got {url!r}")
    return parsed.hostname


def _make_dir(data_dir: Path) -> bool:
    """Create (or claim an empty) data dir with mode 0700; True when we created it."""
    if (data_dir / SERVER_CONFIG_FILE).exists():
        raise ConfigError(
            f"{data_dir} is already initialised",
            hint=f"run: reelsync server run --data-dir {data_dir}",
        )
    if data_dir.exists():
        if not data_dir.is_dir():
            raise ConfigError(f"{data_dir} exists and is not a directory")
        if any(data_dir.iterdir()):
            raise ConfigError(f"{data_dir} is not empty; give a new or empty directory")
        data_dir.chmod(0o700)
        return False
    try:
        data_dir.mkdir(mode=0o700, parents=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {data_dir}: {exc.strerror}") from exc
    data_dir.chmod(0o700)
    return True


def init_data_dir(
    data_dir: Path,
    *,
    workspace: str,
    admin: str,
    bootstrap: Bootstrap,
    env: dict[str, str],
    listen: str | None = None,
    database_url: str | None = None,
    names: Iterable[str] = (),
    tls: bool = True,
    public_url: str | None = None,
) -> InitResult:
    """Make the data dir, the CA and HTTPS certificate, the schema, the workspace and its admin.

    ``bootstrap(config, workspace, admin_email) -> (admin user, plaintext api key)`` is the
    control plane's service that seeds an empty database."""
    data_dir = data_dir.expanduser().absolute()
    workspace = parse_code("workspace", workspace)
    admin = parse_email(admin)
    host, port = parse_listen(listen) if listen else (None, None)
    public_host = _public_host(public_url) if public_url else None
    created = _make_dir(data_dir)
    try:
        server: dict[str, Any] = {"tls": tls}
        if listen:
            server["listen"] = f"[{host}]:{port}" if host and ":" in host else f"{host}:{port}"
        if database_url:
            server["database_url"] = database_url
        if public_url:
            server["public_url"] = public_url.rstrip("/")
        write_server_toml(
            data_dir / SERVER_CONFIG_FILE, {"workspace": {"code": workspace}, "server": server}
        )
        config = load_server_config(data_dir, env)
        ca = CertificateAuthority.create(workspace)
        ca.save(config.ca_file.parent)
        extra = [h for h in (config.host, public_host) if h and h not in ("0.0.0.0", "::")]  # noqa: S104
        pair = ca.issue_server_cert([*extra, *names])
        write_private_pem(config.key_file, pair.key_pem)
        write_pem(config.cert_file, pair.cert_pem)
        (config.ca_file.parent).chmod(0o700)
        user, api_key = bootstrap(config, workspace, admin)
    except BaseException:
        _undo(data_dir, created)
        raise
    return InitResult(
        config=config, workspace=workspace, admin=str(user.get("email", admin)), api_key=api_key
    )


def _server_table(
    config: ServerConfig, listen: str | None, public_url: str | None
) -> dict[str, Any]:
    server: dict[str, Any] = {"tls": config.tls, "database_url": config.database_url}
    if listen:
        host, port = parse_listen(listen)
        server["listen"] = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if public_url:
        server["public_url"] = public_url.rstrip("/")
    return server


def _undo(data_dir: Path, created: bool) -> None:
    """Remove what a failed init made: the data dir it created, or what it put in an empty one."""
    if created:
        shutil.rmtree(data_dir, ignore_errors=True)
        return
    for child in data_dir.iterdir():
        if child.is_dir():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def init_replica(
    source: Path,
    data_dir: Path,
    *,
    env: dict[str, str],
    listen: str | None = None,
    names: Iterable[str] = (),
    public_url: str | None = None,
) -> ServerConfig:
    """Make ``data_dir`` for another control plane process on ``source``'s PostgreSQL database
    (see the module's rules); its settings. The database itself is not touched."""
    source = source.expanduser().absolute()
    data_dir = data_dir.expanduser().absolute()
    if not (source / SERVER_CONFIG_FILE).is_file():
        raise ConfigError(
            f"{source} is not a reelsync data dir (no {SERVER_CONFIG_FILE})",
            hint="give --from the data dir of the first control plane",
        )
    if data_dir == source:
        raise ConfigError("a replica needs its own data dir, not the first one's")
    first = load_server_config(source, {})  # the file, not this shell's REELSYNC_* overrides
    if not first.database_url.startswith("postgresql"):
        raise ConfigError(
            f"{source} keeps its database in SQLite; replicas share one PostgreSQL database",
            hint="make the first control plane with --database-url postgresql+psycopg://...",
        )
    tls_src = first.ca_file.parent
    ca = CertificateAuthority.load(tls_src)
    TicketSigner.load_or_create(tls_src)  # the first server may never have run
    # web UI sessions: every replica signs with the same key, so a signed-in browser stays signed
    # in whichever process the load balancer picks
    ui_key = load_or_create_key(source / UI_KEY_FILE)
    public_host = _public_host(public_url) if public_url else None
    workspace_code = _workspace_of(source)
    created = _make_dir(data_dir)
    try:
        write_server_toml(
            data_dir / SERVER_CONFIG_FILE,
            {
                "workspace": {"code": workspace_code},
                "server": _server_table(first, listen, public_url),
            },
        )
        config = load_server_config(data_dir, env)
        tls_dir = config.ca_file.parent
        tls_dir.mkdir(mode=0o700, exist_ok=True)
        write_pem(tls_dir / CA_CERT_FILE, ca.cert_pem)
        for name in (CA_KEY_FILE, TICKET_KEY_FILE):
            write_private_pem(tls_dir / name, read_private_pem(tls_src / name))
        write_private_pem(data_dir / UI_KEY_FILE, ui_key)
        extra = [h for h in (config.host, public_host) if h and h not in ("0.0.0.0", "::")]  # noqa: S104
        pair = ca.issue_server_cert([*extra, *names])
        write_private_pem(config.key_file, pair.key_pem)
        write_pem(config.cert_file, pair.cert_pem)
    except BaseException:
        _undo(data_dir, created)
        raise
    return config


def _workspace_of(data_dir: Path) -> str:
    """The workspace code recorded in ``DATA_DIR/server.toml``."""
    path = data_dir / SERVER_CONFIG_FILE
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    code = data.get("workspace", {}).get("code")
    if not isinstance(code, str) or not code:
        raise ConfigError(f"{path} names no workspace")
    return code
