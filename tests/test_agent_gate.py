"""Transfer tickets (reelsync.pki.ticket) and the listening agent's TicketGate, first as units,
then through two real engines over mutual TLS: a ticketed push lands, a wrong peer, a forged or
expired ticket, a path outside the ticket and an escaping path are refused."""

from __future__ import annotations

import asyncio
import os
import stat
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from dataplane_pki import Workspace
from reelsync.agent.gate import TicketGate
from reelsync.engine import (
    Assignment,
    Engine,
    EngineSettings,
    FileSpec,
    PeerAddress,
    SessionRequest,
    VolumePath,
)
from reelsync.errors import ConfigError, PermissionDeniedError
from reelsync.fs import Volume
from reelsync.pki import Ticket, TicketFile, TicketSigner, TicketVerifier
from reelsync.pki.identity import load_certificate

FAST = EngineSettings(streams=2, retry_deadline=2, connect_timeout=5, idle_timeout=20, fsync=False)


def _ticket(files: list[tuple[str, str]], *, sender: str = "a1", receiver: str = "b1",
            ttl: float = 60) -> Ticket:  # fmt: skip
    return Ticket(
        transfer_id="t1",
        sender_id=sender,
        receiver_id=receiver,
        files=tuple(TicketFile("vol", src, "vol", dst) for src, dst in files),
        expires_at=time.time() + ttl,
    )


def test_ticket_round_trip_and_refusals(tmp_path: Path) -> None:
    signer = TicketSigner.load_or_create(tmp_path)
    assert stat.S_IMODE((tmp_path / "ticket.key").stat().st_mode) == 0o600
    again = TicketSigner.load_or_create(tmp_path)  # the same key is reused
    assert again.public_key_pem == signer.public_key_pem
    verifier = TicketVerifier(signer.public_key_pem)
    ticket = _ticket([("a/x.exr", "b/x.exr")])
    token = signer.sign(ticket)
    assert verifier.verify(token) == ticket

    # tampered claims: the signature no longer matches
    head, claims, sig = token.split(".")
    forged = ".".join([head, claims[:-2] + ("AA" if claims[-2:] != "AA" else "BB"), sig])
    with pytest.raises(PermissionDeniedError, match="signature|malformed"):
        verifier.verify(forged)
    # signed by another control plane
    other = TicketSigner.load_or_create(tmp_path / "other")
    with pytest.raises(PermissionDeniedError, match="signature"):
        verifier.verify(other.sign(ticket))
    # expired
    with pytest.raises(PermissionDeniedError, match="expired"):
        verifier.verify(signer.sign(_ticket([("a", "b")], ttl=-1)))
    for junk in (None, "", "v1.x", "v2.a.b", "not a ticket"):
        with pytest.raises(PermissionDeniedError):
            verifier.verify(junk)
    with pytest.raises(ConfigError):
        TicketVerifier("not a key")


def test_ticket_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    TicketSigner.load_or_create(tmp_path)
    (tmp_path / "ticket.key").chmod(0o644)
    with pytest.raises(ConfigError, match="readable by others"):
        TicketSigner.load_or_create(tmp_path)


@pytest.fixture
def world(tmp_path: Path) -> dict:
    ws = Workspace(tmp_path / "pki")
    signer = TicketSigner.load_or_create(tmp_path / "cp")
    verifier = TicketVerifier(signer.public_key_pem)
    src_root, dst_root = tmp_path / "hq", tmp_path / "london"
    for root in (src_root, dst_root):
        root.mkdir()
    (src_root / "shot").mkdir()
    (src_root / "shot" / "f.bin").write_bytes(os.urandom(300_000))
    (tmp_path / "secret.txt").write_text("outside the volume")
    return {
        "ws": ws,
        "signer": signer,
        "verifier": verifier,
        "a": ws.agent("a1", "hq"),
        "b": ws.agent("b1", "london"),
        "c": ws.agent("c1", "london"),
        "src": Volume("vol", src_root),
        "dst": Volume("vol", dst_root),
        "tmp": tmp_path,
    }


def test_gate_grants_only_the_ticket_paths(world: dict) -> None:
    dst = world["dst"]
    gate = TicketGate("b1", world["verifier"], lambda: {"vol": dst})
    cert_a = load_certificate(world["a"].cert.read_bytes()).public_bytes(Encoding.DER)
    token = world["signer"].sign(_ticket([("shot/f.bin", "./shot//f.bin"), ("x", "../up")]))
    grant = gate.authorize(SessionRequest(cert_a, token, "send", 2))
    assert grant.paths == frozenset({("vol", "shot/f.bin")})  # normalised; "../up" not granted
    assert grant.transfer_id == "t1"
    # this agent is not the receiver the ticket names
    other_gate = TicketGate("c1", world["verifier"], lambda: {"vol": dst})
    with pytest.raises(PermissionDeniedError, match="another agent"):
        other_gate.authorize(SessionRequest(cert_a, token, "send", 2))
    # the dialer pulls (role receive) but we are not the ticket's sender
    with pytest.raises(PermissionDeniedError, match="another agent"):
        gate.authorize(SessionRequest(cert_a, token, "receive", 2))
    # a volume we do not serve
    bare = TicketGate("b1", world["verifier"], dict)
    with pytest.raises(PermissionDeniedError, match="not served"):
        bare.authorize(SessionRequest(cert_a, token, "send", 2))


async def _push(world: dict, dialer: str, token: str | None,
                files: list[tuple[str, str]]) -> list:  # fmt: skip
    gate = TicketGate("b1", world["verifier"], lambda: {"vol": world["dst"]})
    listener_engine = Engine(FAST, server_ssl=world["b"].server(), volumes={"vol": world["dst"]})
    dialer_engine = Engine(FAST, client_ssl=world[dialer].client(), volumes={"vol": world["src"]})
    try:
        listener = await listener_engine.serve("127.0.0.1", 0, gate)
        specs = tuple(
            FileSpec(f"k{i}", VolumePath("vol", s), VolumePath("vol", d))
            for i, (s, d) in enumerate(files)
        )
        job = Assignment("t1", PeerAddress("127.0.0.1", listener.port), specs, token)
        return await asyncio.wait_for(dialer_engine.push(job), 30)
    finally:
        await dialer_engine.aclose()
        await listener_engine.aclose()


async def test_ticketed_push_lands_and_refusals(world: dict) -> None:
    files = [("shot/f.bin", "in/f.bin")]
    token = world["signer"].sign(_ticket(files))
    results = await _push(world, "a", token, files)
    assert [r.status for r in results] == ["done"]
    landed = world["tmp"] / "london" / "in" / "f.bin"
    assert landed.read_bytes() == (world["tmp"] / "hq" / "shot" / "f.bin").read_bytes()

    # a third agent of the same workspace presenting a's ticket: not a party
    results = await _push(world, "c", token, [("shot/f.bin", "in/c.bin")])
    assert results[0].status == "failed"
    assert results[0].error_code == "forbidden"
    assert "not a party" in (results[0].error_message or "")
    # no ticket, a forged one, an expired one
    for bad in (None, token[:-4] + "AAAA", world["signer"].sign(_ticket(files, ttl=-5))):
        results = await _push(world, "a", bad, [("shot/f.bin", "in/g.bin")])
        assert results[0].status == "failed"
        assert results[0].error_code == "forbidden"
    # a file the ticket does not name
    results = await _push(world, "a", token, [("shot/f.bin", "in/other.bin")])
    assert results[0].status == "failed"
    assert "not part of this transfer" in (results[0].error_message or "")
    assert not (world["tmp"] / "london" / "in" / "other.bin").exists()


async def test_escaping_destination_is_refused(world: dict) -> None:
    # a symlink inside the receiving volume that points outside it
    (world["tmp"] / "london" / "link").symlink_to(world["tmp"])
    files = [("shot/f.bin", "link/secret.txt")]
    token = world["signer"].sign(_ticket(files))
    results = await _push(world, "a", token, files)
    assert results[0].status == "failed"
    assert "outside" in (results[0].error_message or ""), results[0]
    assert (world["tmp"] / "secret.txt").read_text() == "outside the volume"


def test_agent_public_api() -> None:
    import reelsync.agent
    import reelsync.server.agentapi

    assert sorted(reelsync.agent.__all__) == [
        "Agent",
        "AgentSettings",
        "ControlPlane",
        "EnrollResult",
        "TicketGate",
        "enroll",
        "load_agent_settings",
        "run_fileop",
    ]
    assert sorted(reelsync.server.agentapi.__all__) == ["AgentHub", "FileOpRelay", "build_router"]
