"""Folders over protocol version 4 (runs in columns, plans by index), and with a version 3 peer
on either side, pushed and pulled over real TLS: the first copy, a no-op re-sync, one touched
file, a symlink planted at the destination, and a part file resumed inside a folder."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from dataplane_pki import AgentFiles
from reelsync.domain.chunks import chunk_checksum
from reelsync.engine import Assignment, Engine, FileSpec, PeerAddress, VolumePath
from reelsync.engine.receiver import ReceiveSession
from reelsync.fs import PartFile, Volume
from test_engine import SMALL, Gate, Recorder, pki, tree, write

__all__ = ["pki"]  # the fixture, shared with test_engine

FILES = {
    **{f"shot/scans/v{i % 3}/f.{i:04d}.exr": os.urandom(i % 40) for i in range(150)},
    "shot/scans/big.mov": os.urandom(150_000),  # three 64 KiB chunks
    "shot/scans/plate.json": b"{}",
}


def spec(src: str = "shot/scans", dst: str | None = None) -> FileSpec:
    return FileSpec("task-scans", VolumePath("proj", src), VolumePath("proj", dst or src))


class Pair:
    """A dialer at ``src`` and a listener at ``dst`` (push), or the other way round (pull),
    each speaking up to its own protocol version."""

    def __init__(
        self, tmp_path: Path, pki: tuple[AgentFiles, AgentFiles, AgentFiles], role: str,
        dialer_max: int, listener_max: int,
    ) -> None:  # fmt: skip
        hq, lon, _ = pki
        self.src, self.dst = tmp_path / "src", tmp_path / "dst"
        self.src.mkdir()
        self.dst.mkdir()
        self.role = role
        near, far = (self.src, self.dst) if role == "push" else (self.dst, self.src)
        far_volumes = {"proj": Volume("proj", far)}
        self.dialer = Engine(
            replace(SMALL, protocol_max=dialer_max),
            client_ssl=hq.client(),
            volumes={"proj": Volume("proj", near)},
        )
        self.listening = Engine(
            replace(SMALL, protocol_max=listener_max), server_ssl=lon.server(), volumes={}
        )
        self.gate = Gate(far_volumes)

    async def start(self) -> None:
        server = await self.listening.serve("127.0.0.1", 0, self.gate)
        self.port = server.port

    async def run(self, name: str) -> list:
        job = Assignment(name, PeerAddress("127.0.0.1", self.port), (spec(),), "ticket-ok")
        move = self.dialer.push if self.role == "push" else self.dialer.pull
        return await move(job, Recorder())

    async def aclose(self) -> None:
        await self.dialer.aclose()
        await self.listening.aclose()


@pytest.fixture
def runs_planned(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many runs (version 4) receivers planned."""
    seen: list[int] = []
    real = ReceiveSession._plan_file_run

    def spy(self: ReceiveSession, run, *args):  # type: ignore[no-untyped-def]
        seen.append(len(run.names))
        return real(self, run, *args)

    monkeypatch.setattr(ReceiveSession, "_plan_file_run", spy)
    return seen


@pytest.mark.parametrize("role", ["push", "pull"])
@pytest.mark.parametrize(("dialer_max", "listener_max"), [(4, 4), (4, 3), (3, 4)])
async def test_a_folder_copied_resynced_and_touched(
    tmp_path: Path, pki, runs_planned: list[int], role: str, dialer_max: int, listener_max: int
) -> None:
    pair = Pair(tmp_path, pki, role, dialer_max, listener_max)
    await pair.start()
    for rel, data in FILES.items():
        write(pair.src, rel, data)
    total = sum(map(len, FILES.values()))
    [first] = await pair.run("tr-1")
    assert (first.status, first.files, first.size, first.bytes_sent) == (
        "done",
        len(FILES),
        total,
        total,
    ), first
    assert tree(pair.dst) == FILES
    [again] = await pair.run("tr-2")
    assert (again.status, again.files, again.size, again.bytes_sent) == (
        "skipped",
        len(FILES),
        total,
        0,
    ), again
    touched = "shot/scans/v1/f.0100.exr"
    os.utime(pair.src / touched, (1_800_000_000, 1_800_000_000))
    [third] = await pair.run("tr-3")
    assert (third.status, third.bytes_sent) == ("done", len(FILES[touched])), third
    assert os.stat(pair.dst / touched).st_mtime_ns == 1_800_000_000 * 10**9
    assert tree(pair.dst) == FILES
    # runs only when both speak version 4, one per destination folder and manifest part
    if min(dialer_max, listener_max) >= 4:
        assert sum(runs_planned) == 3 * len(FILES)
    else:
        assert runs_planned == []
    await pair.aclose()


async def test_a_symlink_planted_where_a_file_goes_is_judged_alone(
    tmp_path: Path, pki, runs_planned: list[int]
) -> None:
    pair = Pair(tmp_path, pki, "push", 4, 4)
    await pair.start()
    for rel, data in FILES.items():
        write(pair.src, rel, data)
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"not yours")
    planted = pair.dst / "shot/scans/plate.json"
    planted.parent.mkdir(parents=True)
    planted.symlink_to(outside)
    elsewhere = tmp_path / "elsewhere"  # a folder of the shot, planted as a symlink out
    elsewhere.mkdir()
    (pair.dst / "shot/scans/v2").symlink_to(elsewhere)
    [result] = await pair.run("tr-s")
    assert runs_planned
    assert result.status == "failed", result
    v2 = [k for k in FILES if k.startswith("shot/scans/v2/")]
    assert result.error_message is not None
    assert result.error_message.startswith(f"{1 + len(v2)} of 152 files failed: "), result
    assert outside.read_bytes() == b"not yours"
    assert planted.is_symlink()
    assert list(elsewhere.iterdir()) == []
    rest = {k: v for k, v in FILES.items() if k != "shot/scans/plate.json" and k not in v2}
    assert {k: v for k, v in tree(pair.dst).items() if k in rest} == rest
    await pair.aclose()


async def test_a_part_file_inside_a_folder_resumes(
    tmp_path: Path, pki, runs_planned: list[int]
) -> None:
    pair = Pair(tmp_path, pki, "push", 4, 4)
    await pair.start()
    for rel, data in FILES.items():
        write(pair.src, rel, data)
    # an earlier session left two verified chunks of the big file
    big, chunk = FILES["shot/scans/big.mov"], SMALL.chunk_size
    (pair.dst / "shot/scans").mkdir(parents=True)
    part = PartFile(
        Volume("proj", pair.dst),
        "shot/scans/big.mov",
        size=len(big),
        mtime_ns=1_700_000_000 * 10**9,
        chunk_size=chunk,
    )
    for index in (0, 1):
        data = big[index * chunk : (index + 1) * chunk]
        part.write_chunk(index, data, chunk_checksum(data))
    part.close()
    [result] = await pair.run("tr-r")
    assert runs_planned
    assert result.status == "done", result
    assert result.bytes_sent == sum(map(len, FILES.values())) - 2 * chunk
    assert tree(pair.dst) == FILES
    await pair.aclose()
