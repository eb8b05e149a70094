"""The engine over real TCP and TLS 1.3 (mutual), in one event loop: two engines, real files."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from pathlib import Path

import pytest

from dataplane_pki import AgentFiles, Workspace
from reelsync.domain.chunks import chunk_checksum
from reelsync.engine import (
    MIB,
    Assignment,
    Engine,
    EngineSettings,
    FileResult,
    FileSpec,
    Grant,
    PeerAddress,
    SessionRequest,
    VolumePath,
)
from reelsync.errors import PermissionDeniedError
from reelsync.fs import PartFile, Volume

SMALL = EngineSettings(
    streams=3,
    chunk_size=64 * 1024,
    small_file_max=16 * 1024,
    batch_bytes=64 * 1024,
    retry_deadline=5,
    connect_timeout=5,
    idle_timeout=20,
    path_rate=None,  # always 3 streams: a loaded machine's loopback RTT must not add any
)


class Recorder:
    def __init__(self) -> None:
        self.progress: list[tuple[str, int, int]] = []
        self.stamps: list[tuple[float, int]] = []
        self.finished: list[FileResult] = []

    def file_progress(self, key: str, bytes_done: int, size: int) -> None:
        self.progress.append((key, bytes_done, size))
        self.stamps.append((time.monotonic(), bytes_done))

    def steady_rate(self) -> float:
        """Bytes/s between the first and the last progress of a one-file transfer: the data
        phase only, without connection set-up (which a loaded machine stretches)."""
        (t0, b0), (t1, b1) = self.stamps[0], self.stamps[-1]
        return (b1 - b0) / (t1 - t0)

    def file_finished(self, result: FileResult) -> None:
        self.finished.append(result)


class Gate:
    def __init__(self, volumes: dict[str, Volume], refuse: bool = False) -> None:
        self.volumes, self.refuse = volumes, refuse
        self.requests: list[SessionRequest] = []
        self.observer = Recorder()

    def authorize(self, request: SessionRequest) -> Grant:
        self.requests.append(request)
        if self.refuse or request.ticket != "ticket-ok":
            raise PermissionDeniedError("ticket refused")
        return Grant(self.volumes, observer=self.observer)


@pytest.fixture
def pki(tmp_path: Path) -> tuple[AgentFiles, AgentFiles, AgentFiles]:
    ws = Workspace(tmp_path / "pki")
    other = Workspace(tmp_path / "other", code="evil")
    return ws.agent("hq1", "hq"), ws.agent("lon1", "london"), other.agent("mallory", "x")


def write(root: Path, rel: str, data: bytes, mtime: int = 1_700_000_000) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))


def tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


async def start_pair(
    tmp_path: Path, pki: tuple[AgentFiles, AgentFiles, AgentFiles], settings: EngineSettings = SMALL
) -> tuple[Engine, Engine, Gate, int, Path, Path]:
    hq, lon, _ = pki
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir(exist_ok=True)
    dst.mkdir(exist_ok=True)
    listener_vol = {"proj": Volume("proj", dst)}
    dialer = Engine(settings, client_ssl=hq.client(), volumes={"proj": Volume("proj", src)})
    listening = Engine(settings, server_ssl=lon.server(), volumes=listener_vol)
    gate = Gate(listener_vol)
    server = await listening.serve("127.0.0.1", 0, gate)
    return dialer, listening, gate, server.port, src, dst


def specs(rels: list[str]) -> tuple[FileSpec, ...]:
    return tuple(FileSpec(f"t-{r}", VolumePath("proj", r), VolumePath("proj", r)) for r in rels)


async def push_all(
    dialer: Engine, port: int, src: Path, files: dict[str, bytes]
) -> list[FileResult]:
    """Write ``files`` under ``src`` and push them in one assignment to the listener on
    ``port``; every one of them must be done."""
    for rel, data in files.items():
        write(src, rel, data)
    job = Assignment("tr1", PeerAddress("127.0.0.1", port), specs(sorted(files)), "ticket-ok")
    results = await dialer.push(job, Recorder())
    assert [r.status for r in results] == ["done"] * len(files), results
    return results


async def test_push_mixed_files_then_skip_unchanged(tmp_path: Path, pki) -> None:
    dialer, listening, gate, port, src, dst = await start_pair(tmp_path, pki)
    files = {
        "seq/f.0001.exr": os.urandom(10_000),
        "seq/f.0002.exr": os.urandom(16 * 1024),
        "big/plate.mov": os.urandom(300_000),
        "mid/one-chunk.bin": os.urandom(40_000),
        "empty.txt": b"",
        "deep/a/b/c/d.txt": b"hello",
    }
    for rel, data in files.items():
        write(src, rel, data)
    os.chmod(src / "big/plate.mov", 0o640)
    rec = Recorder()
    job = Assignment("tr1", PeerAddress("127.0.0.1", port), specs(sorted(files)), "ticket-ok")
    results = await dialer.push(job, rec)
    assert [r.status for r in results] == ["done"] * len(files), results
    assert tree(dst) == files
    st = os.stat(dst / "big/plate.mov")
    assert st.st_mtime_ns == 1_700_000_000 * 10**9
    assert st.st_mode & 0o777 == 0o640
    big = next(r for r in results if r.key == "t-big/plate.mov")
    assert big.digest
    assert big.digest.startswith("xxh3-128t:")
    assert big.bytes_sent == 300_000
    assert {r.key for r in rec.finished} == {r.key for r in results}
    assert any(k == "t-big/plate.mov" and d == 300_000 for k, d, _ in rec.progress)
    assert gate.requests[0].role == "send"
    assert gate.requests[0].streams == 3
    assert b"hq1" in gate.requests[0].peer_certificate
    # listening side reported by volume:path
    assert {r.key for r in gate.observer.finished} == {f"proj:{r}" for r in files}

    again = await dialer.push(job, Recorder())
    assert [r.status for r in again] == ["skipped"] * len(files)
    await dialer.aclose()
    await listening.aclose()


async def test_pull_and_refusals(tmp_path: Path, pki) -> None:
    hq, lon, _ = pki
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    write(src, "a/x.bin", os.urandom(200_000))
    write(src, "a/y.txt", b"y")
    (src / "esc").symlink_to(tmp_path)
    # the listening side has the files and sends them; the dialing side pulls
    sender = Engine(SMALL, server_ssl=lon.server(), volumes={})
    gate = Gate({"proj": Volume("proj", src)})
    server = await sender.serve("127.0.0.1", 0, gate)
    puller = Engine(SMALL, client_ssl=hq.client(), volumes={"proj": Volume("proj", dst)})
    job = Assignment(
        "tr2",
        PeerAddress("127.0.0.1", server.port),
        specs(["a/x.bin", "a/y.txt", "a/missing", "esc/etc/passwd"]),
        "ticket-ok",
    )
    results = await puller.pull(job)
    assert [r.status for r in results] == ["done", "done", "failed", "failed"], results
    assert results[2].error_code == "not_found"
    assert results[3].error_code == "bad_path"
    assert (dst / "a/x.bin").read_bytes() == (src / "a/x.bin").read_bytes()
    assert gate.requests[0].role == "receive"

    bad = Assignment("tr3", job.peer, specs(["a/y.txt"]), "wrong")
    [refused] = await puller.pull(bad)
    assert refused.status == "failed", refused
    assert refused.error_code == "forbidden", refused
    assert not refused.retryable
    await server.close()
    await sender.aclose()
    await puller.aclose()


async def test_foreign_certificate_is_refused(tmp_path: Path, pki) -> None:
    dialer, listening, gate, port, src, dst = await start_pair(tmp_path, pki)
    _, _, mallory = pki
    write(src, "f", b"data")
    intruder = Engine(SMALL, client_ssl=mallory.client(), volumes=dict(dialer.volumes))
    [res] = await intruder.push(
        Assignment("x", PeerAddress("127.0.0.1", port), specs(["f"]), "ticket-ok")
    )
    assert res.status == "failed"
    assert res.error_code == "unauthenticated"
    assert gate.requests == []
    assert tree(dst) == {}
    await intruder.aclose()
    await dialer.aclose()
    await listening.aclose()


async def test_the_dialer_checks_who_listens(tmp_path: Path, pki) -> None:
    """With ``peer_id`` the listener's certificate must name that agent."""
    dialer, listening, gate, port, src, dst = await start_pair(tmp_path, pki)
    write(src, "f", b"data")
    peer = PeerAddress("127.0.0.1", port)
    [wrong] = await dialer.push(Assignment("w", peer, specs(["f"]), "ticket-ok", peer_id="lon2"))
    assert wrong.status == "failed"
    assert wrong.error_code == "unauthenticated"
    assert "is agent lon1, not lon2" in (wrong.error_message or "")
    assert tree(dst) == {}
    [right] = await dialer.push(Assignment("r", peer, specs(["f"]), "ticket-ok", peer_id="lon1"))
    assert right.status == "done", right
    assert tree(dst) == {"f": b"data"}
    await dialer.aclose()
    await listening.aclose()


async def test_bandwidth_limit_is_honoured(tmp_path: Path, pki) -> None:
    limit = 3 * MIB
    settings = EngineSettings(
        streams=2,
        chunk_size=128 * 1024,
        small_file_max=0,
        batch_bytes=128 * 1024,
        bandwidth_limit=limit,
    )
    dialer, listening, _, port, src, dst = await start_pair(tmp_path, pki, settings)
    write(src, "f.bin", os.urandom(6 * MIB))
    rec = Recorder()
    t0 = time.monotonic()
    [res] = await dialer.push(
        Assignment("bw", PeerAddress("127.0.0.1", port), specs(["f.bin"]), "ticket-ok"), rec
    )
    overall = 6 * MIB / (time.monotonic() - t0)
    rate = rec.steady_rate()
    print(f"send limit {limit / MIB:.2f} MiB/s: {rate / MIB:.3f} (overall {overall / MIB:.3f})")
    assert res.status == "done"
    assert overall <= 1.05 * limit, overall
    # the limit is the promise (5 %); below it only a loaded machine's late wake-ups
    assert 0.85 * limit <= rate <= 1.05 * limit, rate
    await dialer.aclose()
    await listening.aclose()


LIMITED = EngineSettings(
    streams=2,
    chunk_size=128 * 1024,
    small_file_max=0,
    batch_bytes=128 * 1024,
    bandwidth_limit=3 * MIB,
)
UNLIMITED = EngineSettings(
    streams=2, chunk_size=128 * 1024, small_file_max=0, batch_bytes=128 * 1024
)


@pytest.mark.parametrize("direction", ["push-to-limited-listener", "pull-by-limited-dialer"])
async def test_bandwidth_limit_is_honoured_when_receiving(
    tmp_path: Path, pki, direction: str
) -> None:
    """The receiving agent's limit holds whoever sends: its streams read at most the limit, so
    the sender (unlimited) is slowed down through TCP."""
    hq, lon, _ = pki
    limit = 3 * MIB
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    write(src, "f.bin", os.urandom(6 * MIB))
    pushing = direction == "push-to-limited-listener"
    if pushing:
        dialer = Engine(UNLIMITED, client_ssl=hq.client(), volumes={"proj": Volume("proj", src)})
        listening = Engine(LIMITED, server_ssl=lon.server(), volumes={})
        receiver, gate = listening, Gate({"proj": Volume("proj", dst)})
        rec = gate.observer  # the listening side receives
    else:
        dialer = Engine(LIMITED, client_ssl=hq.client(), volumes={"proj": Volume("proj", dst)})
        listening = Engine(UNLIMITED, server_ssl=lon.server(), volumes={})
        receiver, gate = dialer, Gate({"proj": Volume("proj", src)})
        rec = Recorder()
    server = await listening.serve("127.0.0.1", 0, gate)
    t0 = time.monotonic()
    job = Assignment("bw-rx", PeerAddress("127.0.0.1", server.port), specs(["f.bin"]), "ticket-ok")
    [res] = await (dialer.push(job) if pushing else dialer.pull(job, rec))
    overall = 6 * MIB / (time.monotonic() - t0)
    rate = rec.steady_rate()  # as the receiving side saw it
    print(f"receive limit {limit / MIB:.2f} MiB/s, {direction}: {rate / MIB:.3f} "
          f"(overall {overall / MIB:.3f})")  # fmt: skip
    assert res.status == "done", res
    assert overall <= 1.05 * limit, overall
    assert (dst / "f.bin").read_bytes() == (src / "f.bin").read_bytes()
    assert receiver.bytes_moved[1] >= 6 * MIB  # every received byte went through the limiter
    # the limit is the promise (5 %); below it only a loaded machine's late wake-ups
    assert 0.85 * limit <= rate <= 1.05 * limit, rate
    await dialer.aclose()
    await listening.aclose()


def test_token_bucket_rate_can_change_and_counts_bytes() -> None:
    from reelsync.engine.ratelimit import TokenBucket

    bucket = TokenBucket(None, burst=1000)
    assert bucket.reserve(10 * MIB) == 0.0  # no limit: never waits, still counts
    bucket.set_rate(1000.0)
    assert bucket.reserve(1000) == 0.0  # the burst
    assert bucket.reserve(2000) == pytest.approx(2.0, abs=0.05)  # in debt: wait it off
    bucket.set_rate(None)
    assert bucket.reserve(5000) == 0.0
    assert bucket.total == 10 * MIB + 8000


async def test_unreachable_peer_fails_retryable_after_deadline(tmp_path: Path, pki) -> None:
    hq, _, _ = pki
    (tmp_path / "s").mkdir()
    settings = EngineSettings(retry_deadline=0.6, connect_timeout=1)
    dialer = Engine(
        settings, client_ssl=hq.client(), volumes={"proj": Volume("proj", tmp_path / "s")}
    )
    [res] = await dialer.push(Assignment("u", PeerAddress("127.0.0.1", 1), specs(["f"]), None))
    assert res.status == "failed"
    assert res.error_code == "connection_lost"
    assert res.retryable
    await dialer.aclose()


def test_settings_are_checked() -> None:
    from reelsync.errors import ConfigError

    with pytest.raises(ConfigError):
        EngineSettings(streams=0)
    with pytest.raises(ConfigError):
        EngineSettings(chunk_size=10)
    with pytest.raises(ConfigError):
        EngineSettings(bandwidth_limit=0)
    asyncio.get_event_loop_policy()


def _hold(dst: Path, files: dict[str, bytes]) -> list[PartFile]:
    """Another writer's part files of ``files`` (a transfer of them still running here)."""
    holders = []
    for rel, data in files.items():
        part = PartFile(
            Volume("proj", dst),
            rel,
            size=len(data),
            mtime_ns=1,
            chunk_size=SMALL.chunk_size,
            journal=len(data) > SMALL.chunk_size,
        )
        first = data[: SMALL.chunk_size]
        part.write_chunk(0, first, chunk_checksum(first))
        holders.append(part)
    return holders


BUSY_FILES = {
    "big/plate.mov": os.urandom(300_000),  # chunked, resumable: refused while planning
    "mid/one-chunk.bin": os.urandom(40_000),  # one chunk: refused at its first write
    "seq/f.0001.exr": os.urandom(10_000),  # batched: refused by its group
}


async def test_a_path_another_transfer_writes_fails_busy_and_retryable(tmp_path: Path, pki) -> None:
    """Another writer holds the part files of the destination paths until the end: each file
    fails ``path_busy`` (retryable) at the dialer's deadline, nothing of the other writer's is
    touched, and the files move once that writer is gone."""
    short = dataclasses.replace(SMALL, retry_deadline=0.0)  # no time to try again
    dialer, listening, _gate, port, src, dst = await start_pair(tmp_path, pki, short)
    for rel, data in BUSY_FILES.items():
        write(src, rel, data)
    holders = _hold(dst, BUSY_FILES)
    job = Assignment("tr1", PeerAddress("127.0.0.1", port), specs(sorted(BUSY_FILES)), "ticket-ok")
    rec = Recorder()
    results = await dialer.push(job, rec)
    assert [(r.status, r.error_code, r.retryable) for r in results] == [
        ("failed", "path_busy", True)
    ] * len(BUSY_FILES), results
    assert sorted(r.key for r in rec.finished) == sorted(r.key for r in results)  # told once
    assert not [p for p in dst.rglob("*") if p.is_file() and not p.name.startswith(".")]
    for part in holders:
        assert part.part.stat().st_size == part.size  # untouched by the refused transfer
        part.close()
    again = await dialer.push(job, Recorder())
    assert [r.status for r in again] == ["done"] * len(BUSY_FILES), again
    assert tree(dst) == BUSY_FILES  # no part file or journal left either
    await dialer.aclose()
    await listening.aclose()


async def test_a_busy_path_is_tried_again_until_the_other_writer_is_gone(
    tmp_path: Path, pki
) -> None:
    """The receiver's own earlier session (cut a moment ago) may still hold a file's part file:
    the dialer tries the busy files again within its retry deadline, and its observer hears only
    their final result."""
    dialer, listening, gate, port, src, dst = await start_pair(tmp_path, pki)
    for rel, data in BUSY_FILES.items():
        write(src, rel, data)
    holders = _hold(dst, BUSY_FILES)
    here = gate.observer
    refused: list[str] = []

    def let_go_once_all_were_refused(result: FileResult) -> None:
        here.finished.append(result)
        if result.error_code == "path_busy":
            refused.append(result.key)
            if len(refused) == len(BUSY_FILES):  # the other writer is gone before the retry
                for part in holders:
                    part.close()

    here.file_finished = let_go_once_all_were_refused  # type: ignore[method-assign]
    job = Assignment("tr1", PeerAddress("127.0.0.1", port), specs(sorted(BUSY_FILES)), "ticket-ok")
    rec = Recorder()
    results = await dialer.push(job, rec)
    assert [r.status for r in results] == ["done"] * len(BUSY_FILES), results
    assert sorted(refused) == sorted(f"proj:{rel}" for rel in BUSY_FILES)  # tried, then again
    assert [r.status for r in rec.finished] == ["done"] * len(BUSY_FILES)  # no busy failure
    assert tree(dst) == BUSY_FILES
    await dialer.aclose()
    await listening.aclose()
