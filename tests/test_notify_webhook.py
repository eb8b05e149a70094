"""Webhook signing, verification and delivery to a real HTTP receiver."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from http_receiver import Receiver
from reelsync.errors import (
    AuthenticationError,
    PermissionDeniedError,
    UnavailableError,
    ValidationError,
)
from reelsync.notify.webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    HttpWebhookSender,
    MemoryWebhookSender,
    WebhookSender,
    parse_events,
    sign,
    sign_request,
    verify_signature,
)

SECRET = "whsec-test-1"
PAYLOAD = {"event": "job.done", "job": {"id": "j1", "name": "shots", "status": "done"}}


def test_sign_matches_a_known_vector() -> None:
    # HMAC-SHA256("k", "1700000000.{}") computed independently with openssl
    assert sign("k", 1_700_000_000, b"{}") == (
        "sha256=" + __import__("hmac").new(b"k", b"1700000000.{}", "sha256").hexdigest()
    )


def test_verify_accepts_genuine_and_refuses_tampering() -> None:
    req = sign_request(SECRET, PAYLOAD, event="job.done", delivery="d1")
    verify_signature(SECRET, req.body, req.headers)
    with pytest.raises(AuthenticationError, match="does not match"):
        verify_signature(SECRET, req.body.replace(b"done", b"fail"), req.headers)
    with pytest.raises(AuthenticationError, match="does not match"):
        verify_signature("another-secret", req.body, req.headers)
    headers = dict(req.headers)
    headers[TIMESTAMP_HEADER] = str(int(headers[TIMESTAMP_HEADER]) + 1)  # replay with a new time
    with pytest.raises(AuthenticationError, match="does not match"):
        verify_signature(SECRET, req.body, headers)


def test_verify_refuses_stale_and_unsigned() -> None:
    old = sign_request(SECRET, PAYLOAD, event="job.done", delivery="d1", now=time.time() - 3600)
    with pytest.raises(AuthenticationError, match="too old"):
        verify_signature(SECRET, old.body, old.headers)
    with pytest.raises(AuthenticationError, match="not signed"):
        verify_signature(SECRET, old.body, {})
    lower = {
        k.lower(): v
        for k, v in sign_request(SECRET, PAYLOAD, event="e", delivery="d").headers.items()
    }
    assert SIGNATURE_HEADER.lower() in lower


def test_parse_events() -> None:
    assert parse_events(["done", "job.failed", "done"]) == ("job.done", "job.failed")
    assert parse_events("submitted,done") == ("job.submitted", "job.done")
    with pytest.raises(ValidationError, match="unknown webhook event"):
        parse_events(["job.exploded"])
    with pytest.raises(ValidationError):
        parse_events([])


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(SECRET).start()
    yield r
    r.stop()


async def test_http_sender_delivers_a_verified_request(receiver: Receiver) -> None:
    sender: WebhookSender = HttpWebhookSender(allow_private=True)
    req = sign_request(SECRET, PAYLOAD, event="job.done", delivery="job:j1:done:1")
    await sender.post(receiver.url, req)
    [got] = receiver.deliveries
    assert got.verified
    assert got.json == PAYLOAD
    assert got.headers["X-Reelsync-Event"] == "job.done"
    assert got.headers["X-Reelsync-Delivery"] == "job:j1:done:1"


async def test_http_sender_shared_client(receiver: Receiver) -> None:
    async with httpx.AsyncClient() as client:
        await HttpWebhookSender(client, allow_private=True).post(
            receiver.url, sign_request(SECRET, PAYLOAD, event="job.done", delivery="d")
        )
    assert receiver.deliveries[0].verified


async def test_http_sender_non_2xx_is_retryable(receiver: Receiver) -> None:
    receiver.status = 503
    with pytest.raises(UnavailableError, match="HTTP 503"):
        await HttpWebhookSender(allow_private=True).post(
            receiver.url, sign_request(SECRET, PAYLOAD, event="job.done", delivery="d")
        )
    with pytest.raises(UnavailableError, match="HTTP 401"):  # receiver refuses a wrong secret
        await HttpWebhookSender(allow_private=True).post(
            receiver.url, sign_request("wrong", PAYLOAD, event="job.done", delivery="d")
        )


async def test_http_sender_unreachable_is_retryable(receiver: Receiver) -> None:
    url = receiver.url
    receiver.stop()
    with pytest.raises(UnavailableError, match="unreachable"):
        await HttpWebhookSender(timeout_s=3, allow_private=True).post(
            url, sign_request(SECRET, PAYLOAD, event="job.done", delivery="d")
        )


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://localhost:9/hook",
        "https://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]:9/hook",
        "http://0.0.0.0:9/hook",
    ],
)
async def test_http_sender_refuses_the_private_network_by_default(url: str) -> None:
    """SSRF: webhooks do not reach the control plane's own network unless an admin allows it;
    refused before any connection, and not retried."""
    with pytest.raises(PermissionDeniedError, match="private, loopback or link-local") as info:
        await HttpWebhookSender().post(url, sign_request(SECRET, PAYLOAD, event="job.done",
                                                          delivery="d"))  # fmt: skip
    assert not info.value.retryable
    assert "webhook_allow_private" in (info.value.hint or "")


async def test_http_sender_goes_to_the_address_it_checked() -> None:
    """The request is sent to the resolved address with the name in Host and the TLS name."""
    sender = HttpWebhookSender()
    target, headers, extensions = await sender._pinned("https://8.8.8.8:8443/hook?x=1")
    assert target == "https://8.8.8.8:8443/hook?x=1"
    assert headers == {"Host": "8.8.8.8:8443"}
    assert extensions == {"sni_hostname": "8.8.8.8"}


async def test_memory_sender_twin() -> None:
    mem = MemoryWebhookSender()
    req = sign_request(SECRET, PAYLOAD, event="job.done", delivery="d")
    await mem.post("http://x/hook", req)
    assert mem.posted == [("http://x/hook", req)]
    mem.fail_with = UnavailableError("down")
    with pytest.raises(UnavailableError):
        await mem.post("http://x/hook", req)
