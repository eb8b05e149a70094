"""Web UI session cookies: signed and expiring, naming a session row of the database.

Rules: the cookie holds ``v2 . session id . expiry . HMAC-SHA256`` (URL-safe), never the API key;
the HMAC key is ``DATA_DIR/ui-session.key`` (32 random bytes, 0600, made on first use and shared by
every process on that data dir). A well-signed, unexpired cookie is then checked against its
session (:func:`reelsync.services.auth.session_actor`, every request): sign-out, revoking the API
key or disabling the user ends it. The cookie is ``__Host-`` prefixed, HttpOnly, Secure,
SameSite=Strict, Path=/. Every POST with a session carries a CSRF token derived from that session
(HMAC), checked in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from reelsync.errors import ConfigError

__all__ = [
    "COOKIE_NAME",
    "KEY_FILE",
    "SESSION_TTL_S",
    "SessionClaims",
    "SessionSigner",
    "load_or_create_key",
]

COOKIE_NAME = "__Host-reelsync-session"
KEY_FILE = "ui-session.key"
SESSION_TTL_S = 12 * 3600
_VERSION = "v2"


def load_or_create_key(path: Path) -> bytes:
    """The 32-byte signing key at ``path``; made (0600) when missing."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    except OSError as exc:
        raise ConfigError(f"cannot create the web UI session key {path}: {exc.strerror}") from exc
    else:
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_bytes(32))
    try:
        key = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the web UI session key {path}: {exc.strerror}") from exc
    if len(key) < 32:
        raise ConfigError(f"the web UI session key {path} is damaged", hint="delete it and restart")
    return key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True, slots=True)
class SessionClaims:
    """What a valid cookie says."""

    session_id: str
    expires: int  # unix seconds
    token: str  # the whole cookie value (the CSRF token is derived from it)


class SessionSigner:
    """Makes and checks session cookies and their CSRF tokens with one secret key."""

    def __init__(self, key: bytes, *, ttl_s: int = SESSION_TTL_S) -> None:
        self._key = key
        self.ttl_s = ttl_s

    def _mac(self, purpose: str, text: str) -> str:
        digest = hmac.new(self._key, f"{purpose}:{text}".encode(), hashlib.sha256).digest()
        return _b64(digest)

    def issue(self, session_id: str, expires: int) -> str:
        """The cookie value for session ``session_id`` ending at ``expires`` (unix seconds)."""
        body = ".".join((_VERSION, session_id, str(int(expires))))
        return f"{body}.{self._mac('session', body)}"

    def verify(self, token: str | None, *, now: float | None = None) -> SessionClaims | None:
        """The claims of a well-signed, unexpired cookie; None for anything else."""
        if not token or len(token) > 512:
            return None
        body, _, mac = token.rpartition(".")
        if not hmac.compare_digest(mac.encode(), self._mac("session", body).encode()):
            return None
        parts = body.split(".")
        if len(parts) != 3 or parts[0] != _VERSION or not parts[2].isdigit():
            return None
        expires = int(parts[2])
        if expires <= (time.time() if now is None else now):
            return None
        return SessionClaims(session_id=parts[1], expires=expires, token=token)

    def csrf_token(self, claims: SessionClaims) -> str:
        return self._mac("csrf", claims.token)

    def check_csrf(self, claims: SessionClaims, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(
            str(token).encode(), self.csrf_token(claims).encode()
        )
