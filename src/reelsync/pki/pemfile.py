"""PEM files on disk. Rules: a private key is written with mode 0600 from its first byte (never
world-readable, not even briefly) and replaced atomically; reading refuses a key file that group or
others can read, because a leaked workspace key lets anyone join the data plane."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from reelsync.errors import ConfigError

__all__ = ["read_pem", "read_private_pem", "write_pem", "write_private_pem"]


def _write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    tmp.replace(path)


def write_pem(path: Path, data: bytes) -> None:
    """Write a public PEM (a certificate) with mode 0644."""
    _write(path, data, 0o644)


def write_private_pem(path: Path, data: bytes) -> None:
    """Write a private key with mode 0600."""
    _write(path, data, 0o600)


def read_pem(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc


def read_private_pem(path: Path) -> bytes:
    """Read a private key, refusing one that group or others may read."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"private key {path} is readable by others (mode {stat.S_IMODE(mode):04o})",
            hint=f"chmod 600 {path}",
        )
    return read_pem(path)
