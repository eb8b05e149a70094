"""Transfer tickets: the control plane's signed permission for one data-plane transfer.

Rules: a ticket names the transfer, its sender and receiver agents (their ids, which their
certificates carry as common name), every file it moves (source and destination volume code plus
path relative to the volume root, and on each side the scope: the granted sub-path the path must
lead into once symlinks are followed, ``""`` for the whole volume, None for no access) and when it
expires. The control plane signs it with an Ed25519
key only it holds (``DATA_DIR/tls/ticket.key``, mode 0600); agents receive the public key at
enrollment and verify a ticket offline: signature first, then expiry. The text form is
``v1.<base64url JSON claims>.<base64url signature over "v1.<claims>">``; anything else is refused.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from reelsync.errors import ConfigError, PermissionDeniedError
from reelsync.pki.pemfile import read_pem, read_private_pem, write_private_pem

__all__ = [
    "TICKET_KEY_FILE",
    "Ticket",
    "TicketFile",
    "TicketSigner",
    "TicketVerifier",
]

TICKET_KEY_FILE = "ticket.key"
_VERSION = "v1"


@dataclass(frozen=True, slots=True)
class TicketFile:
    """One file a ticket allows: read from ``src`` on the sender, written to ``dst`` on the
    receiver (volume codes, paths relative to the volume roots)."""

    src_volume: str
    src_path: str
    dst_volume: str
    dst_path: str
    src_scope: str | None = ""
    dst_scope: str | None = ""


@dataclass(frozen=True, slots=True)
class Ticket:
    """The claims of a transfer ticket. ``expires_at`` is a Unix time in seconds."""

    transfer_id: str
    sender_id: str
    receiver_id: str
    files: tuple[TicketFile, ...]
    expires_at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "transfer_id": self.transfer_id,
            "sender_id": self.sender_id,
            "receiver_id": self.receiver_id,
            "files": [
                [f.src_volume, f.src_path, f.dst_volume, f.dst_path, f.src_scope, f.dst_scope]
                for f in self.files
            ],
            "expires_at": self.expires_at,
        }

    @classmethod
    def from_json(cls, data: Any) -> Ticket:
        try:
            files = tuple(_ticket_file(item) for item in data["files"])
            return cls(
                transfer_id=str(data["transfer_id"]),
                sender_id=str(data["sender_id"]),
                receiver_id=str(data["receiver_id"]),
                files=files,
                expires_at=float(data["expires_at"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PermissionDeniedError("the transfer ticket is malformed") from exc


def _ticket_file(item: Any) -> TicketFile:
    paths = [str(part) for part in item[:4]]
    if len(paths) != 4:
        raise ValueError("a ticket file has four paths")
    scopes = [None if s is None else str(s) for s in item[4:6]]
    return TicketFile(*paths, *scopes)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TicketSigner:
    """The control plane's side: holds the private key, signs tickets."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key

    @classmethod
    def load_or_create(cls, tls_dir: Path) -> TicketSigner:
        """The key in ``tls_dir/ticket.key``, made (mode 0600) the first time it is needed."""
        path = tls_dir / TICKET_KEY_FILE
        if not path.exists():
            pem = Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            write_private_pem(path, pem)
        key = serialization.load_pem_private_key(read_private_pem(path), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError(f"{path} is not an Ed25519 private key")
        return cls(key)

    @property
    def public_key_pem(self) -> str:
        """The verification key agents get at enrollment."""
        return (
            self._key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode("ascii")
        )

    def sign(self, ticket: Ticket) -> str:
        claims = _b64(json.dumps(ticket.to_json(), separators=(",", ":")).encode())
        signed = f"{_VERSION}.{claims}"
        return f"{signed}.{_b64(self._key.sign(signed.encode('ascii')))}"


class TicketVerifier:
    """The agent's side: checks a ticket against the control plane's public key."""

    def __init__(self, public_key_pem: str | bytes) -> None:
        data = public_key_pem.encode() if isinstance(public_key_pem, str) else public_key_pem
        try:
            key = serialization.load_pem_public_key(data)
        except ValueError as exc:
            raise ConfigError("the ticket public key is not a PEM public key") from exc
        if not isinstance(key, Ed25519PublicKey):
            raise ConfigError("the ticket public key is not an Ed25519 key")
        self._key = key

    @classmethod
    def from_file(cls, path: Path) -> TicketVerifier:
        return cls(read_pem(path))

    def verify(self, token: str | None, *, now: float | None = None) -> Ticket:
        """The ticket's claims if it is well-formed, signed by the control plane and not expired;
        PermissionDeniedError otherwise."""
        if not token:
            raise PermissionDeniedError("no transfer ticket presented")
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != _VERSION:
            raise PermissionDeniedError("the transfer ticket is malformed")
        try:
            signature = _unb64(parts[2])
            claims = json.loads(_unb64(parts[1]))
        except (binascii.Error, ValueError) as exc:
            raise PermissionDeniedError("the transfer ticket is malformed") from exc
        try:
            self._key.verify(signature, f"{parts[0]}.{parts[1]}".encode("ascii"))
        except (InvalidSignature, UnicodeEncodeError) as exc:
            raise PermissionDeniedError(
                "the transfer ticket's signature does not verify (not issued by this control plane)"
            ) from exc
        ticket = Ticket.from_json(claims)
        if ticket.expires_at <= (time.time() if now is None else now):
            raise PermissionDeniedError(f"the ticket for transfer {ticket.transfer_id} expired")
        return ticket
