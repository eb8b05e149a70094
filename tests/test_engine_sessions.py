"""Sessions kept open between work (protocol version 3) over real TCP and TLS: work for a peer
flows into the open session, each with its own ticket; idle sessions close; older peers still
get one session per assignment."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from unittest.mock import patch

from reelsync.domain.hostos import usable_cores
from reelsync.engine import (
    Assignment,
    Engine,
    FileSpec,
    Grant,
    PeerAddress,
    SessionRequest,
    VolumePath,
)
from reelsync.engine.pathsize import short_path_lanes, streams_for
from reelsync.errors import PermissionDeniedError
from reelsync.fs import Volume
from test_engine import SMALL, Gate, Recorder, pki, specs, start_pair, tree, write

__all__ = ["pki"]  # the fixture, shared with test_engine


async def _until(check: object, what: str, limit: float = 20.0) -> None:
    deadline = time.monotonic() + limit
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.02)


async def _accepted(engine: Engine, n: int) -> None:
    """``engine`` accepted exactly ``n`` streams: a session's joining streams may still be
    coming up when its first work is done (they open beside it), so wait for them, then
    check that no more came."""
    await _until(lambda: engine.streams_accepted >= n, f"{n} streams accepted")
    assert engine.streams_accepted == n


async def test_work_flows_into_the_open_session(tmp_path: Path, pki) -> None:
    dialer, listening, gate, port, src, dst = await start_pair(tmp_path, pki)
    files = {f"shot/f.{i:04d}.exr": os.urandom(3_000 + i * 997) for i in range(30)}
    files["big/plate.mov"] = os.urandom(400_000)
    for rel, data in files.items():
        write(src, rel, data)
    peer = PeerAddress("127.0.0.1", port)
    names = sorted(files)
    first = Assignment("t1", peer, specs(names[:10]), "ticket-ok")
    results = await dialer.push(first, Recorder())
    assert [r.status for r in results] == ["done"] * 10, results
    assert dialer.open_sessions == 1
    await _accepted(listening, SMALL.streams)  # the session is whole
    streams = listening.streams_accepted
    # three more assignments at once, each with its own observer: one session carries them all
    recorders = [Recorder() for _ in range(3)]
    rest = [names[10:17], names[17:24], names[24:]]
    got = await asyncio.gather(
        *(
            dialer.push(Assignment(f"t{i + 2}", peer, specs(part), "ticket-ok"), rec)
            for i, (part, rec) in enumerate(zip(rest, recorders, strict=True))
        )
    )
    for part, res, rec in zip(rest, got, recorders, strict=True):
        assert [r.key for r in res] == [f"t-{n}" for n in part]
        assert all(r.status == "done" for r in res), res
        assert sorted(r.key for r in rec.finished) == sorted(f"t-{n}" for n in part)
    assert listening.streams_accepted == streams  # no new connection
    assert dialer.open_sessions == 1
    assert tree(dst) == files
    # each assignment's ticket was checked by the listener as its manifest arrived
    assert [r.ticket for r in gate.requests] == ["ticket-ok"] * len(gate.requests)
    assert len(gate.requests) >= 5
    await dialer.aclose()
    await listening.aclose()


class PathGate(Gate):
    """Grants exactly the paths a ticket ``ok:a|b`` names, as the agent's ticket gate does."""

    def authorize(self, request: SessionRequest) -> Grant:
        self.requests.append(request)
        kind, _, names = (request.ticket or "").partition(":")
        if kind != "ok":
            raise PermissionDeniedError("ticket refused")
        return Grant(self.volumes, paths=frozenset(("proj", n) for n in names.split("|")))


async def test_each_ticket_grants_its_own_paths(tmp_path: Path, pki) -> None:
    hq, lon, _ = pki
    src, dst = tmp_path / "src", tmp_path / "dst"
    for name in ("a.bin", "b.bin", "c.bin", "d.bin"):
        write(src, name, os.urandom(20_000))
    dst.mkdir()
    dialer = Engine(SMALL, client_ssl=hq.client(), volumes={"proj": Volume("proj", src)})
    listening = Engine(SMALL, server_ssl=lon.server(), volumes={})
    server = await listening.serve("127.0.0.1", 0, PathGate({"proj": Volume("proj", dst)}))
    peer = PeerAddress("127.0.0.1", server.port)
    [ok] = await dialer.push(Assignment("t1", peer, specs(["a.bin"]), "ok:a.bin"))
    assert ok.status == "done"
    # a forged ticket on the open session: its files fail, not retryable; the session goes on
    [refused] = await dialer.push(Assignment("t2", peer, specs(["b.bin"]), "forged"))
    assert (refused.status, refused.error_code) == ("failed", "forbidden"), refused
    assert not refused.retryable
    assert not (dst / "b.bin").exists()
    # a good ticket for another file: granted and sent on the same session
    [later] = await dialer.push(Assignment("t3", peer, specs(["c.bin"]), "ok:c.bin"))
    assert later.status == "done", later
    # a file no ticket of the session names is refused, though the ticket itself is good
    both = specs(["c.bin", "d.bin"])
    again, outside = await dialer.push(Assignment("t4", peer, both, "ok:c.bin"))
    assert again.status == "skipped", again
    assert (outside.status, outside.error_code) == ("failed", "forbidden"), outside
    assert not (dst / "d.bin").exists()
    assert dialer.open_sessions == 1
    await _accepted(listening, SMALL.streams)
    await dialer.aclose()
    await listening.aclose()


async def test_top_level_files_of_one_folder_are_each_judged(tmp_path: Path, pki) -> None:
    """Files sent one by one into one destination folder are planned together (that folder
    resolved once) and still each granted, confined and checked for a symlink on its own."""
    hq, lon, _ = pki
    src, dst, outside = tmp_path / "src", tmp_path / "dst", tmp_path / "outside"
    names = ["in/a.bin", "in/b.bin", "in/c.bin", "in/link.bin", "in/d.bin", "out/e.bin"]
    for name in names:
        write(src, name, os.urandom(5_000))
    outside.mkdir()
    (dst / "in").mkdir(parents=True)
    write(dst, "in/c.bin", (src / "in/c.bin").read_bytes())  # here already: skipped
    (dst / "in/link.bin").symlink_to(outside / "link.bin")
    (dst / "out").symlink_to(outside)
    dialer = Engine(SMALL, client_ssl=hq.client(), volumes={"proj": Volume("proj", src)})
    listening = Engine(SMALL, server_ssl=lon.server(), volumes={})
    server = await listening.serve("127.0.0.1", 0, PathGate({"proj": Volume("proj", dst)}))
    peer = PeerAddress("127.0.0.1", server.port)
    granted = "|".join(n for n in names if n != "in/d.bin")
    results = await dialer.push(Assignment("t1", peer, specs(names), f"ok:{granted}"))
    assert {r.key: (r.status, r.error_code) for r in results} == {
        "t-in/a.bin": ("done", None),
        "t-in/b.bin": ("done", None),
        "t-in/c.bin": ("skipped", None),
        "t-in/link.bin": ("failed", "bad_path"),
        "t-in/d.bin": ("failed", "forbidden"),
        "t-out/e.bin": ("failed", "bad_path"),
    }, results
    assert tree(dst / "in") == {
        n[3:]: (src / n).read_bytes() for n in ("in/a.bin", "in/b.bin", "in/c.bin")
    }
    assert os.listdir(outside) == []
    await dialer.aclose()
    await listening.aclose()


async def test_idle_sessions_close(tmp_path: Path, pki) -> None:
    settings = replace(SMALL, session_idle=0.3)
    dialer, listening, _, port, src, dst = await start_pair(tmp_path, pki, settings)
    write(src, "x.bin", os.urandom(5_000))
    peer = PeerAddress("127.0.0.1", port)
    [r] = await dialer.push(Assignment("t1", peer, specs(["x.bin"]), "ticket-ok"))
    assert r.status == "done"
    await _until(lambda: dialer.open_sessions == 0, "the idle session did not close")
    # the next work opens a new session
    streams = listening.streams_accepted
    write(src, "y.bin", os.urandom(5_000))
    [r] = await dialer.push(Assignment("t2", peer, specs(["y.bin"]), "ticket-ok"))
    assert r.status == "done"
    # a new session's streams were accepted (how many joined before its one file was done
    # depends on the machine's load: the first carries the work while the others come up)
    await _until(lambda: listening.streams_accepted > streams, "no new session was opened")
    await dialer.aclose()
    await listening.aclose()


async def test_pulls_reuse_the_session_with_folders(tmp_path: Path, pki) -> None:
    hq, lon, _ = pki
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    for i in range(5):
        write(src, f"sh010/scans/f.{i}.exr", os.urandom(10_000))
        write(src, f"sh020/scans/f.{i}.exr", os.urandom(70_000))
    sender = Engine(SMALL, server_ssl=lon.server(), volumes={})
    gate = Gate({"proj": Volume("proj", src)})
    server = await sender.serve("127.0.0.1", 0, gate)
    puller = Engine(SMALL, client_ssl=hq.client(), volumes={"proj": Volume("proj", dst)})
    peer = PeerAddress("127.0.0.1", server.port)
    for n, shot in enumerate(("sh010", "sh020")):
        rec = Recorder()
        [r] = await puller.pull(
            Assignment(f"t{n}", peer, specs([f"{shot}/scans"]), "ticket-ok"), rec
        )
        assert (r.status, r.files) == ("done", 5), r
        assert [f.key for f in rec.finished] == [f"t-{shot}/scans"]
    await _accepted(sender, SMALL.streams)  # one session for both
    assert tree(dst) == tree(src)
    await server.close()
    await sender.aclose()
    await puller.aclose()


async def test_version_2_peers_get_one_session_per_assignment(tmp_path: Path, pki) -> None:
    old = replace(SMALL, protocol_max=2)
    hq, lon, _ = pki
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    listener_vol = {"proj": Volume("proj", dst)}
    new_dialer = Engine(SMALL, client_ssl=hq.client(), volumes={"proj": Volume("proj", src)})
    old_listener = Engine(old, server_ssl=lon.server(), volumes=listener_vol)
    server = await old_listener.serve("127.0.0.1", 0, Gate(listener_vol))
    peer = PeerAddress("127.0.0.1", server.port)
    for i in range(2):
        write(src, f"d{i}/f.bin", os.urandom(150_000))
        [r] = await new_dialer.push(Assignment(f"t{i}", peer, specs([f"d{i}"]), "ticket-ok"))
        assert (r.status, r.files) == ("done", 1), r
        assert new_dialer.open_sessions == 0
    assert old_listener.streams_accepted == 2 * SMALL.streams
    # and an old dialer pulling from a new listener
    old_puller = Engine(old, client_ssl=hq.client(), volumes={"proj": Volume("proj", tmp_path)})
    new_sender = Engine(SMALL, server_ssl=lon.server(), volumes={})
    server2 = await new_sender.serve("127.0.0.1", 0, Gate({"proj": Volume("proj", src)}))
    job = Assignment("t9", PeerAddress("127.0.0.1", server2.port), specs(["d0"]), "ticket-ok")
    [r] = await old_puller.pull(job)
    assert (r.status, r.files) == ("done", 1), r
    assert (tmp_path / "d0/f.bin").read_bytes() == (src / "d0/f.bin").read_bytes()
    for engine in (new_dialer, old_listener, old_puller, new_sender):
        await engine.aclose()


async def test_a_cancelled_caller_stops_its_files(tmp_path: Path, pki) -> None:
    settings = replace(SMALL, bandwidth_limit=512 * 1024)
    dialer, listening, _, port, src, dst = await start_pair(tmp_path, pki, settings)
    write(src, "slow.bin", os.urandom(4 * 1024 * 1024))
    write(src, "quick.bin", os.urandom(1000))
    peer = PeerAddress("127.0.0.1", port)
    rec = Recorder()
    slow = asyncio.create_task(
        dialer.push(Assignment("t1", peer, specs(["slow.bin"]), "ticket-ok"), rec)
    )
    await _until(lambda: rec.progress, "no progress on the slow file")
    slow.cancel()
    await asyncio.gather(slow, return_exceptions=True)
    await _until(lambda: dialer.open_sessions == 0, "the cancelled caller's session stayed up")
    await asyncio.sleep(0.3)  # chunks already taken from the bucket may still leave
    sent = dialer.bytes_moved[0]
    await asyncio.sleep(1.0)
    # flowing on, 1 s would carry 512 KiB (8 chunks)
    assert dialer.bytes_moved[0] - sent < 2 * SMALL.chunk_size
    assert not (dst / "slow.bin").exists()
    [r] = await dialer.push(Assignment("t2", peer, specs(["quick.bin"]), "ticket-ok"))
    assert r.status == "done", r
    await dialer.aclose()
    await listening.aclose()


def test_streams_follow_bandwidth_times_delay() -> None:
    settings = replace(SMALL, streams=4, max_streams=32, path_rate=125e6)  # 1 Gbit/s
    window = 2 << 20
    assert streams_for(settings, None, window) == 4  # unknown round trip: the least
    assert streams_for(settings, 0.0002, window) == 4  # a LAN
    assert streams_for(settings, 0.05, window) == 5
    assert streams_for(settings, 0.2, window) == 18
    assert streams_for(settings, 2.0, window) == 32  # capped
    assert streams_for(replace(settings, path_rate=None), 0.2, window) == 4


def test_data_lanes_count_the_cores_the_process_may_run_on() -> None:
    """``taskset -c 0`` on a 16-core server: one lane, not four (the affinity, not the machine)."""
    script = "from reelsync.engine.pathsize import short_path_lanes as s; print(s())"
    first = min(os.sched_getaffinity(0))
    done = subprocess.run(
        ["taskset", "-c", str(first), sys.executable, "-c", script],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert done.stdout.strip() == "1"
    for cores, lanes in ((1, 1), (4, 1), (8, 2), (16, 4)):
        with patch.object(os, "sched_getaffinity", lambda _pid, n=cores: set(range(n))):
            assert usable_cores() == cores
            assert short_path_lanes() == lanes


async def test_a_session_opens_the_streams_its_path_needs(tmp_path: Path, pki) -> None:
    # loopback's round trip is tens of microseconds: a huge configured rate makes it "long"
    settings = replace(SMALL, streams=2, max_streams=6, path_rate=1e13)
    dialer, listening, _, port, src, dst = await start_pair(tmp_path, pki, settings)
    files = {f"f{i}.bin": os.urandom(200_000) for i in range(12)}
    for rel, data in files.items():
        write(src, rel, data)
    job = Assignment("t1", PeerAddress("127.0.0.1", port), specs(sorted(files)), "ticket-ok")
    results = await dialer.push(job)
    assert [r.status for r in results] == ["done"] * len(files), results
    await _accepted(listening, 6)
    assert tree(dst) == files
    await dialer.aclose()
    await listening.aclose()


async def test_a_higher_priority_gets_a_session_of_its_own(tmp_path: Path, pki) -> None:
    """A busy session carrying low-priority work: a higher priority is not queued behind the
    bytes already in its buffers but dials a session of its own (a lane)."""
    settings = replace(SMALL, bandwidth_limit=1024 * 1024)  # the low push would take ~4 s
    dialer, listening, _, port, src, dst = await start_pair(tmp_path, pki, settings)
    for i in range(16):
        write(src, f"low/f.{i:02d}.bin", os.urandom(256_000))
    write(src, "high/h.bin", os.urandom(20_000))
    peer = PeerAddress("127.0.0.1", port)
    low_job = Assignment("lo", peer, (_folder("lo", "low"),), "ticket-ok", priority=1)
    low = asyncio.ensure_future(dialer.push(low_job))
    await _until(lambda: dialer.open_sessions == 1, "the low push did not start")
    await _accepted(listening, SMALL.streams)  # the low session is whole
    streams = listening.streams_accepted
    assert not low.done()
    high = Assignment("hi", peer, (_folder("hi", "high"),), "ticket-ok", priority=999)
    [r] = await dialer.push(high)
    assert r.status == "done", r
    assert (dst / "high/h.bin").read_bytes() == (src / "high/h.bin").read_bytes()
    assert dialer.open_sessions == 2  # the lane, beside the busy session
    await _accepted(listening, streams + SMALL.streams)
    low.cancel()
    await asyncio.gather(low, return_exceptions=True)
    await dialer.aclose()
    await listening.aclose()


def _folder(key: str, rel: str) -> FileSpec:
    return FileSpec(key, VolumePath("proj", rel), VolumePath("proj", rel))
