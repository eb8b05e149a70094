"""Signed agent requests (pki.requestsig): what the control plane accepts and what it refuses,
with real keys and certificates from a workspace CA (and one from another workspace)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from cryptography import x509

from dataplane_pki import Workspace
from reelsync.errors import AuthenticationError, ConfigError
from reelsync.pki import (
    CERTIFICATE_HEADER,
    SIGNATURE_HEADER,
    RequestSigner,
    RequestVerifier,
    fingerprint,
)

BODY = b'{"version": "0.1", "dialable": false}'


@pytest.fixture
def world(tmp_path: Path) -> dict[str, object]:
    ws = Workspace(tmp_path / "ws")

    def pems(files: object) -> tuple[bytes, bytes]:  # read now: the next agent() overwrites
        return files.key.read_bytes(), files.cert.read_bytes()  # type: ignore[attr-defined]

    agent = pems(ws.agent("a1", "london"))
    impostor = pems(ws.agent("a1", "london"))  # same id and CA, another key: not the enrolled one
    foreign = pems(Workspace(tmp_path / "other", code="acme").agent("a1", "london"))
    return {
        "verifier": RequestVerifier(ws.ca.cert_pem, window_s=60),
        "signer": RequestSigner(*agent),
        "enrolled": fingerprint(x509.load_pem_x509_certificate(agent[1])),
        "impostor": RequestSigner(*impostor),
        "foreign": RequestSigner(*foreign),
        "foreign_print": fingerprint(x509.load_pem_x509_certificate(foreign[1])),
        "pems": (agent, impostor),
    }


def _verify(world: dict, headers: dict[str, str], **changes: object) -> None:
    args: dict = {
        "method": "POST",
        "target": "/api/v1/agent/heartbeat",
        "body": BODY,
        "agent": "a1",
        "enrolled_fingerprint": world["enrolled"],
    }
    args.update(changes)
    world["verifier"].verify(headers, **args)


def test_a_signed_request_verifies_once(world: dict) -> None:
    headers = world["signer"].headers("POST", "/api/v1/agent/heartbeat", BODY)
    assert set(headers) == {SIGNATURE_HEADER, CERTIFICATE_HEADER}
    _verify(world, headers)
    with pytest.raises(AuthenticationError, match="replayed"):
        _verify(world, headers)
    fresh = world["signer"].headers("GET", "/api/v1/agent/work?wait=20&transfers=4", b"")
    _verify(world, fresh, method="GET", target="/api/v1/agent/work?wait=20&transfers=4", body=b"")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"body": b'{"version": "0.2"}'}, "does not verify"),
        ({"method": "GET"}, "does not verify"),
        ({"target": "/api/v1/agent/report"}, "does not verify"),
        ({"target": "/api/v1/agent/work?wait=1&transfers=64"}, "does not verify"),
        ({"enrolled_fingerprint": "00" * 32}, "not the one enrolled"),
        ({"enrolled_fingerprint": None}, "not the one enrolled"),
    ],
)
def test_anything_changed_is_refused(world: dict, change: dict, message: str) -> None:
    headers = world["signer"].headers("POST", "/api/v1/agent/heartbeat", BODY)
    with pytest.raises(AuthenticationError, match=message):
        _verify(world, headers, **change)


def test_another_key_or_another_ca_is_refused(world: dict) -> None:
    impostor = world["impostor"].headers("POST", "/api/v1/agent/heartbeat", BODY)
    with pytest.raises(AuthenticationError, match="not the one enrolled"):
        _verify(world, impostor)
    foreign = world["foreign"].headers("POST", "/api/v1/agent/heartbeat", BODY)
    with pytest.raises(AuthenticationError, match="not the one enrolled"):
        _verify(world, foreign)
    # even if the foreign certificate were the one on record, its CA is not this workspace's
    with pytest.raises(AuthenticationError, match="not issued by this workspace's CA"):
        _verify(world, foreign, enrolled_fingerprint=world["foreign_print"])
    # a signature made with one key and sent with another agent's certificate
    mixed = dict(impostor)
    mixed[CERTIFICATE_HEADER] = world["signer"].headers("POST", "/", b"")[CERTIFICATE_HEADER]
    with pytest.raises(AuthenticationError, match="does not verify"):
        _verify(world, mixed)


def test_old_or_future_signatures_are_refused(world: dict) -> None:
    now = float(int(time.time()))  # whole seconds, as signatures carry
    old = world["signer"].headers("POST", "/api/v1/agent/heartbeat", BODY, now=now - 600)
    with pytest.raises(AuthenticationError, match="signed 600 s ago, outside the 60 s window"):
        _verify(world, old, now=now)
    ahead = world["signer"].headers("POST", "/api/v1/agent/heartbeat", BODY, now=now + 90)
    with pytest.raises(AuthenticationError, match="signed 90 s in the future"):
        _verify(world, ahead, now=now)
    near = world["signer"].headers("POST", "/api/v1/agent/heartbeat", BODY, now=now - 30)
    _verify(world, near, now=now)  # inside the window


def test_missing_or_malformed_headers_are_refused(world: dict) -> None:
    with pytest.raises(AuthenticationError, match="not signed"):
        _verify(world, {})
    headers = world["signer"].headers("POST", "/api/v1/agent/heartbeat", BODY)
    for bad in ("v2 t=1 n=x s=y", "v1 t=now n=0123456789abcdef s=AAAA", "v1 garbage"):
        with pytest.raises(AuthenticationError):
            _verify(world, {**headers, SIGNATURE_HEADER: bad})
    with pytest.raises(AuthenticationError, match="certificate header"):
        _verify(world, {**headers, CERTIFICATE_HEADER: "not base64!"})


def test_a_signer_refuses_a_key_that_is_not_its_certificates(world: dict) -> None:
    agent, impostor = world["pems"]
    with pytest.raises(ConfigError, match="does not match"):
        RequestSigner(impostor[0], agent[1])
