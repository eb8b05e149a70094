"""The control plane's data dir: made once by ``reelsync server init``. Rules: the directory is
new or empty and gets mode 0700; ``server.toml`` (0600, it may hold a database password) records
the workspace, the listen address and the database URL; ``tls/`` holds the workspace CA and the
HTTPS certificate it issued; the schema is migrated and the workspace bootstrapped last. A failed
init removes what it made, so it can simply be run again."""

from __future__ import annotations

import os
import shutil
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
from reelsync.pki import CertificateAuthority, write_pem, write_private_pem
from reelsync.services.bootstrap import init_workspace

__all__ = ["InitResult", "bootstrap_database", "init_data_dir", "write_server_toml"]

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
        if created:
            shutil.rmtree(data_dir, ignore_errors=True)
        else:
            for child in data_dir.iterdir():
                if child.is_dir():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
        raise
    return InitResult(
        config=config, workspace=workspace, admin=str(user.get("email", admin)), api_key=api_key
    )
