"""The agent's settings, built once by ``reelsync agent run`` from ``DATA_DIR/agent.toml``
overlaid by ``REELSYNC_AGENT_*`` variables, and the files enrollment leaves in the data dir.

Rules: this and the CLI are the only agent modules that read configuration. The data dir holds
``agent.toml`` (0600), ``agent.key`` (0600, made on this machine, never sent), ``agent.crt`` (signed
by the workspace CA), ``ca.crt`` (the workspace CA: verifies the control plane and peers),
``ticket.pub`` (verifies transfer tickets) and ``agent.secret`` (0600, the control-plane
credential). Which volumes the agent serves comes from the control plane, not from here.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from reelsync.domain.hostos import usable_cores
from reelsync.errors import ConfigError
from reelsync.fs import DIRECT_IO_MODES
from reelsync.pki import read_private_pem, write_private_pem

__all__ = [
    "AGENT_CONFIG_FILE",
    "AgentFiles",
    "AgentSettings",
    "PortRange",
    "load_agent_settings",
    "parse_port_range",
    "split_server_urls",
    "write_agent_config",
]

AGENT_CONFIG_FILE = "agent.toml"
DEFAULT_PEER_PORTS = "45190-45210"


@dataclass(frozen=True, slots=True)
class AgentFiles:
    """Where enrollment put the agent's identity."""

    data_dir: Path

    @property
    def config(self) -> Path:
        return self.data_dir / AGENT_CONFIG_FILE

    @property
    def key(self) -> Path:
        return self.data_dir / "agent.key"

    @property
    def cert(self) -> Path:
        return self.data_dir / "agent.crt"

    @property
    def ca(self) -> Path:
        return self.data_dir / "ca.crt"

    @property
    def ticket_key(self) -> Path:
        return self.data_dir / "ticket.pub"

    @property
    def secret(self) -> Path:
        return self.data_dir / "agent.secret"


@dataclass(frozen=True, slots=True)
class PortRange:
    first: int
    last: int

    def __iter__(self) -> Any:
        return iter(range(self.first, self.last + 1))

    def __str__(self) -> str:
        return str(self.first) if self.first == self.last else f"{self.first}-{self.last}"


def parse_port_range(text: str) -> PortRange:
    """``45190``, ``45190-45210`` or ``0`` (any free port)."""
    first_text, sep, last_text = str(text).strip().partition("-")
    try:
        first = int(first_text)
        last = int(last_text) if sep else first
    except ValueError:
        raise ConfigError(f"peer ports must be PORT or FIRST-LAST, got {text!r}") from None
    if not (0 <= first <= last < 65536) or (first == 0 and last != 0):
        raise ConfigError(f"peer ports must be PORT or FIRST-LAST within 1..65535, got {text!r}")
    return PortRange(first, last)


@dataclass(frozen=True, slots=True)
class AgentSettings:
    """Everything ``reelsync agent run`` needs. ``advertise`` is the host peers should dial
    (None: the control plane uses the address it sees); ``bandwidth_limit`` is bytes/s."""

    data_dir: Path
    server_url: str
    server_id: str
    site: str
    workspace: str
    secret: str = field(repr=False)
    listen_host: str = "0.0.0.0"  # noqa: S104 - peers dial us on every interface by default
    ports: PortRange = field(default_factory=lambda: parse_port_range(DEFAULT_PEER_PORTS))
    advertise: str | None = None
    dialable: bool = True
    bandwidth_limit: float | None = None
    streams: int = 4
    fsync: bool = True
    direct_io: str = "auto"
    workers: int = 1
    work_wait_s: float = 20.0
    max_transfers: int = 4
    report_interval_s: float = 0.5
    report_keepalive_s: float = 5.0  # files in flight are reported at least this often
    reconnect_max_s: float = 10.0
    log_level: str = "info"

    @property
    def files(self) -> AgentFiles:
        return AgentFiles(self.data_dir)

    @property
    def server_urls(self) -> tuple[str, ...]:
        """Every control-plane process to use (``server_url`` may list several, comma-separated:
        the replicas of one workspace); the agent fails over between them."""
        return split_server_urls(self.server_url)


def split_server_urls(text: str) -> tuple[str, ...]:
    """``"https://cp1:8443, https://cp2:8443"`` -> each URL, without a trailing slash."""
    return tuple(u.strip().rstrip("/") for u in str(text).split(",") if u.strip())


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def _override(env: Mapping[str, str], name: str, setting: Any) -> Any:
    """The environment's ``name`` over the file's ``setting``. An empty variable (``NAME=`` in a
    unit file or a shell) counts as unset, for every override alike."""
    value = env.get(name)
    return setting if value is None or value == "" else value


def _number(value: Any, name: str, *, minimum: float = 0.0) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if number < minimum:
        raise ConfigError(f"{name} must be at least {minimum:g}, got {value!r}")
    return number


def _workers(value: Any) -> int:
    """``[transfer] workers``: data-plane worker processes, or ``auto`` (one per four cores this
    process may run on; 1, below eight cores, runs the data plane in the agent's own process)."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return max(1, usable_cores() // 4)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ConfigError(f"transfer.workers must be a number or 'auto', got {value!r}")
    number = _number(value, "transfer.workers", minimum=1)
    if number != int(number) or number > 64:
        raise ConfigError(f"transfer.workers must be a whole number from 1 to 64, got {value!r}")
    return int(number)


TABLES = ("agent", "peer", "transfer")


def _table(cfg: dict[str, Any], name: str, path: Path) -> dict[str, Any]:
    value = cfg.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: [{name}] must be a table, got {value!r}")
    return value


def load_agent_settings(data_dir: Path, env: Mapping[str, str]) -> AgentSettings:
    """Read ``DATA_DIR/agent.toml`` and the secret; ``REELSYNC_AGENT_LISTEN`` (HOST:PORTS),
    ``REELSYNC_AGENT_ADVERTISE``, ``REELSYNC_AGENT_DIALABLE``, ``REELSYNC_AGENT_BANDWIDTH_LIMIT``
    (MiB/s), ``REELSYNC_AGENT_SERVER_URL`` (one URL, or every replica's, comma-separated),
    ``REELSYNC_AGENT_REPORT_KEEPALIVE_S``, ``REELSYNC_AGENT_FSYNC`` (``0``: received files are
    not made durable before they are published, ``[transfer] fsync = false``),
    ``REELSYNC_AGENT_DIRECT_IO`` (``auto``, ``on`` or ``off``: how received chunks are written,
    ``[transfer] direct_io``, see :mod:`reelsync.fs.direct`), ``REELSYNC_AGENT_WORKERS``
    (data-plane worker processes, ``[transfer] workers``, a number or ``auto``) override the
    file."""
    data_dir = data_dir.expanduser()
    files = AgentFiles(data_dir)
    if not files.config.is_file():
        raise ConfigError(
            f"{data_dir} is not an enrolled agent's data dir (no {AGENT_CONFIG_FILE})",
            hint="enroll first: reelsync agent enroll --server URL --token TOKEN --data-dir DIR",
        )
    try:
        cfg = tomllib.loads(files.config.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {files.config}: {exc}") from exc
    agent, peer, transfer = (_table(cfg, name, files.config) for name in TABLES)
    for key in ("server_url", "server_id", "site"):
        if not agent.get(key):
            raise ConfigError(f"{files.config} has no agent.{key}", hint="enroll the agent again")
    listen = str(_override(env, "REELSYNC_AGENT_LISTEN", peer.get("listen")) or "")
    host, ports = "0.0.0.0", parse_port_range(DEFAULT_PEER_PORTS)  # noqa: S104
    if listen:
        host_text, sep, port_text = listen.rpartition(":")
        if not sep:
            raise ConfigError(f"peer listen must be HOST:PORTS, got {listen!r}")
        host, ports = host_text.strip("[]") or host, parse_port_range(port_text)
    limit_text = _override(
        env, "REELSYNC_AGENT_BANDWIDTH_LIMIT", transfer.get("bandwidth_limit_mib_s")
    )
    limit = _number(limit_text, "bandwidth_limit_mib_s") if limit_text not in (None, "") else 0.0
    dialable = _override(env, "REELSYNC_AGENT_DIALABLE", peer.get("dialable", True))
    keepalive_text = _override(
        env, "REELSYNC_AGENT_REPORT_KEEPALIVE_S", agent.get("report_keepalive_s", 5.0)
    )
    keepalive = _number(keepalive_text, "agent.report_keepalive_s", minimum=0.1)
    direct_value = _override(env, "REELSYNC_AGENT_DIRECT_IO", transfer.get("direct_io", "auto"))
    if isinstance(direct_value, bool):  # direct_io = true / false
        direct_value = "on" if direct_value else "off"
    direct_io = str(direct_value).strip().lower()
    if direct_io not in DIRECT_IO_MODES:
        raise ConfigError(
            f"{files.config}: transfer.direct_io must be one of {', '.join(DIRECT_IO_MODES)},"
            f" got {direct_io!r}"
        )
    workers = _workers(_override(env, "REELSYNC_AGENT_WORKERS", transfer.get("workers", "auto")))
    secret = read_private_pem(files.secret).decode().strip()
    return AgentSettings(
        data_dir=data_dir,
        server_url=",".join(
            split_server_urls(str(_override(env, "REELSYNC_AGENT_SERVER_URL", agent["server_url"])))
        ),
        server_id=str(agent["server_id"]),
        site=str(agent["site"]),
        workspace=str(agent.get("workspace", "")),
        secret=secret,
        listen_host=host,
        ports=ports,
        advertise=str(_override(env, "REELSYNC_AGENT_ADVERTISE", peer.get("advertise")) or "")
        or None,
        dialable=_truthy(dialable),
        bandwidth_limit=limit * (1 << 20) if limit > 0 else None,
        streams=int(_number(transfer.get("streams", 4), "transfer.streams", minimum=1)),
        fsync=_truthy(_override(env, "REELSYNC_AGENT_FSYNC", transfer.get("fsync", True))),
        direct_io=direct_io,
        workers=workers,
        work_wait_s=_number(agent.get("work_wait_s", 20.0), "agent.work_wait_s", minimum=0.5),
        max_transfers=int(_number(transfer.get("max_transfers", 4), "max_transfers", minimum=1)),
        report_keepalive_s=keepalive,
        log_level=str(_override(env, "REELSYNC_LOG_LEVEL", agent.get("log_level")) or "info"),
    )


def write_agent_config(
    data_dir: Path,
    *,
    server_url: str,
    server_id: str,
    site: str,
    workspace: str,
    secret: str,
    listen: str,
    advertise: str | None,
    dialable: bool,
    bandwidth_limit_mib_s: float | None,
) -> Path:
    """Write ``agent.toml`` (0600) and ``agent.secret`` (0600); returns the config's path."""
    files = AgentFiles(data_dir)
    doc: dict[str, Any] = {
        "agent": {"server_url": server_url, "server_id": server_id, "site": site},
        "peer": {"listen": listen, "dialable": dialable},
        "transfer": {"streams": 4, "max_transfers": 4},
    }
    if workspace:
        doc["agent"]["workspace"] = workspace
    if advertise:
        doc["peer"]["advertise"] = advertise
    if bandwidth_limit_mib_s:
        doc["transfer"]["bandwidth_limit_mib_s"] = bandwidth_limit_mib_s
    write_private_pem(files.secret, secret.encode() + b"\n")
    write_private_pem(files.config, tomli_w.dumps(doc).encode())
    return files.config
