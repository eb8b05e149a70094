"""The public names of reelsync.pki and reelsync.client are pinned: changing them is a decision."""

from __future__ import annotations

import reelsync.client
import reelsync.pki


def test_pki_public_api() -> None:
    assert sorted(reelsync.pki.__all__) == [
        "CA_CERT_FILE",
        "CA_KEY_FILE",
        "CERTIFICATE_HEADER",
        "CertificateAuthority",
        "KeyPair",
        "PeerIdentity",
        "RequestSigner",
        "RequestVerifier",
        "SIGNATURE_HEADER",
        "TICKET_KEY_FILE",
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
    for name in reelsync.pki.__all__:
        assert hasattr(reelsync.pki, name)


def test_client_public_api() -> None:
    assert sorted(reelsync.client.__all__) == [
        "API_PREFIX",
        "AsyncSession",
        "Entity",
        "Session",
        "error_from_response",
        "parse_find",
    ]
    verbs = ("create", "find", "find_one", "get_entity", "update", "delete")
    for cls in (reelsync.client.Session, reelsync.client.AsyncSession):
        for verb in verbs:
            assert callable(getattr(cls, verb)), (cls, verb)
