"""Who a certificate names. Rules: an agent certificate carries the agent id as its common name,
the site code as its organizational unit and the workspace code as its organization; the CA sets
these when it signs, whatever the request asked for, so a peer's identity can be trusted once its
chain verifies against the workspace CA."""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import NameOID

from reelsync.errors import PermissionDeniedError

__all__ = [
    "ORGANIZATION_PREFIX",
    "PeerIdentity",
    "agent_subject",
    "load_certificate",
    "peer_identity",
    "peer_identity_of",
]

ORGANIZATION_PREFIX = "reelsync workspace "


@dataclass(frozen=True, slots=True)
class PeerIdentity:
    """The identity a verified peer certificate proves."""

    agent_id: str
    site: str
    workspace: str


def agent_subject(agent_id: str, site: str, workspace: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION_PREFIX + workspace),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, site),
            x509.NameAttribute(NameOID.COMMON_NAME, agent_id),
        ]
    )


def load_certificate(data: bytes | x509.Certificate) -> x509.Certificate:
    """A certificate from PEM or DER bytes (or one already loaded)."""
    if isinstance(data, x509.Certificate):
        return data
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)


def _one(name: x509.Name, oid: x509.ObjectIdentifier) -> str:
    attrs = name.get_attributes_for_oid(oid)
    if len(attrs) != 1:
        return ""
    value = attrs[0].value
    return value if isinstance(value, str) else value.decode()


def peer_identity(cert: bytes | x509.Certificate) -> PeerIdentity:
    """Read the agent id, site and workspace out of an (already verified) agent certificate."""
    subject = load_certificate(cert).subject
    agent_id = _one(subject, NameOID.COMMON_NAME)
    site = _one(subject, NameOID.ORGANIZATIONAL_UNIT_NAME)
    org = _one(subject, NameOID.ORGANIZATION_NAME)
    if not agent_id or not site or not org.startswith(ORGANIZATION_PREFIX):
        raise PermissionDeniedError("the peer's certificate is not a reelsync agent certificate")
    return PeerIdentity(agent_id=agent_id, site=site, workspace=org[len(ORGANIZATION_PREFIX) :])


def peer_identity_of(conn: ssl.SSLObject | ssl.SSLSocket) -> PeerIdentity:
    """The identity of the peer of a completed mutual-TLS handshake."""
    der = conn.getpeercert(binary_form=True)
    if not der:
        raise PermissionDeniedError("the peer presented no certificate")
    return peer_identity(der)
