"""reelsync.pki: the workspace CA, the control plane's HTTPS certificate, agent keys, CSRs and
certificates, signed transfer tickets, signed agent requests, and the TLS contexts that trust
only the workspace CA (cryptography + ssl). Each name loads its module when first used, so a
process that never reads a certificate (``reelsync transfer``) starts without cryptography."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reelsync.pki.authority import (
        CA_CERT_FILE,
        CA_KEY_FILE,
        CertificateAuthority,
        KeyPair,
        make_agent_key_and_csr,
        subject_alt_names,
    )
    from reelsync.pki.identity import (
        PeerIdentity,
        load_certificate,
        peer_identity,
        peer_identity_of,
    )
    from reelsync.pki.pemfile import read_pem, read_private_pem, write_pem, write_private_pem
    from reelsync.pki.requestsig import (
        CERTIFICATE_HEADER,
        SIGNATURE_HEADER,
        RequestSigner,
        RequestVerifier,
        fingerprint,
    )
    from reelsync.pki.ticket import (
        TICKET_KEY_FILE,
        Ticket,
        TicketFile,
        TicketSigner,
        TicketVerifier,
    )
    from reelsync.pki.tlscontext import client_ssl_context, https_ssl_context, server_ssl_context

__all__ = [
    "CA_CERT_FILE",
    "CA_KEY_FILE",
    "CERTIFICATE_HEADER",
    "SIGNATURE_HEADER",
    "TICKET_KEY_FILE",
    "CertificateAuthority",
    "KeyPair",
    "PeerIdentity",
    "RequestSigner",
    "RequestVerifier",
    "Ticket",
    "TicketFile",
    "TicketSigner",
    "TicketVerifier",
    "client_ssl_context",
    "fingerprint",
    "https_ssl_context",
    "load_certificate",
    "make_agent_key_and_csr",
    "peer_identity",
    "peer_identity_of",
    "read_pem",
    "read_private_pem",
    "server_ssl_context",
    "subject_alt_names",
    "write_pem",
    "write_private_pem",
]

_HOME = {
    **dict.fromkeys(
        (
            "CA_CERT_FILE",
            "CA_KEY_FILE",
            "CertificateAuthority",
            "KeyPair",
            "make_agent_key_and_csr",
            "subject_alt_names",
        ),
        "authority",
    ),
    **dict.fromkeys(
        ("PeerIdentity", "load_certificate", "peer_identity", "peer_identity_of"), "identity"
    ),
    **dict.fromkeys(("read_pem", "read_private_pem", "write_pem", "write_private_pem"), "pemfile"),
    **dict.fromkeys(
        (
            "CERTIFICATE_HEADER",
            "RequestSigner",
            "RequestVerifier",
            "SIGNATURE_HEADER",
            "fingerprint",
        ),
        "requestsig",
    ),
    **dict.fromkeys(
        ("TICKET_KEY_FILE", "Ticket", "TicketFile", "TicketSigner", "TicketVerifier"), "ticket"
    ),
    **dict.fromkeys(
        ("client_ssl_context", "https_ssl_context", "server_ssl_context"), "tlscontext"
    ),
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
