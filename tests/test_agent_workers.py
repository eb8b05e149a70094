"""The agent's data plane in worker processes (agent/dataplane.py, agent/dataworker.py): real
worker processes, real mutual TLS over loopback, real tickets.

Two pools stand for two agents (hq sends, london listens). Grants run at once go to different
workers; london's pool hands each session's connections, by the routing name in their TLS
ClientHello, to one worker (each worker serves whole sessions: as many streams as a session
opens); a worker killed mid-transfer fails only its transfer, as retryable, comes back, and the
file then arrives whole; the bandwidth limit holds for the pool as a whole."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from dataplane_pki import Workspace
from reelsync.agent.dataplane import WorkerPool
from reelsync.agent.scopes import ScopeBook
from reelsync.agent.settings import _workers
from reelsync.agent.workerlink import WorkerInit
from reelsync.engine import (
    Assignment,
    EngineSettings,
    FileResult,
    FileSpec,
    PeerAddress,
    VolumePath,
)
from reelsync.errors import ConfigError, ConnectionLostError
from reelsync.fs import Volume
from reelsync.pki import Ticket, TicketFile, TicketSigner

SETTINGS = EngineSettings(
    streams=2, max_streams=2, retry_deadline=3, connect_timeout=10, idle_timeout=30, fsync=False
)
MIB = 1 << 20


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def _until(check: Callable[[], bool], what: str, *, stall_s: float = 30.0) -> None:
    """Wait for ``check``; fail only after ``stall_s`` without it (a loaded machine is slow,
    not stuck)."""
    began = time.monotonic()
    while not check():
        if time.monotonic() - began > stall_s:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.05)


class _Studio:
    def __init__(self, tmp: Path) -> None:
        ws = Workspace(tmp / "pki")
        self.signer = TicketSigner.load_or_create(tmp / "cp")
        self.ticket_pub = tmp / "ticket.pub"
        self.ticket_pub.write_text(self.signer.public_key_pem)
        self.files = {"hq": ws.agent("a1", "hq"), "london": ws.agent("b1", "london")}
        self.roots = {site: tmp / site for site in ("hq", "london")}
        for root in self.roots.values():
            root.mkdir()
        self.ids = {"hq": "a1", "london": "b1"}

    def pool(self, site: str, count: int, **split: int) -> WorkerPool:
        files = self.files[site]

        def init(index: int) -> WorkerInit:
            return WorkerInit(
                index=index,
                agent_id=self.ids[site],
                workspace="acme",
                engine=SETTINGS,
                key=files.key,
                cert=files.cert,
                ca=files.ca,
                ticket_key=self.ticket_pub,
                log_level="warning",
            )

        pool = WorkerPool(
            count, init, ScopeBook(), connect_timeout=SETTINGS.connect_timeout, **split
        )
        pool.set_volumes({"vol": Volume("vol", self.roots[site])})
        return pool

    def assignment(self, transfer: str, paths: list[str], port: int) -> Assignment:
        ticket = Ticket(
            transfer_id=transfer,
            sender_id="a1",
            receiver_id="b1",
            files=tuple(TicketFile("vol", p, "vol", p) for p in paths),
            expires_at=time.time() + 600,
        )
        return Assignment(
            transfer,
            PeerAddress("127.0.0.1", port),
            tuple(
                FileSpec(f"{transfer}-{i}", VolumePath("vol", p), VolumePath("vol", p))
                for i, p in enumerate(paths)
            ),
            self.signer.sign(ticket),
            peer_id="b1",
        )

    def shot(self, name: str, *, big: int = 3 * MIB, small: int = 20) -> str:
        folder = self.roots["hq"] / name
        folder.mkdir(parents=True)
        (folder / "plate.exr").write_bytes(os.urandom(big))
        for i in range(small):
            (folder / f"frame.{i:04d}.dpx").write_bytes(os.urandom(1000 + 37 * i))
        return name

    def same(self, rel: str) -> bool:
        src, dst = self.roots["hq"] / rel, self.roots["london"] / rel
        files = sorted(p.relative_to(src) for p in src.rglob("*") if p.is_file())
        got = sorted(p.relative_to(dst) for p in dst.rglob("*") if p.is_file())
        return files == got and all(_sha(src / f) == _sha(dst / f) for f in files)


def _run(
    tmp: Path,
    body: Callable[[_Studio, WorkerPool, WorkerPool, int], Awaitable[None]],
    **split: int,
) -> None:
    studio = _Studio(tmp)

    async def main() -> None:
        hq, london = studio.pool("hq", 2, **split), studio.pool("london", 2)
        try:
            await hq.start()
            await london.start()
            listener = await london.serve("127.0.0.1", 0)
            await body(studio, hq, london, listener.port)
        finally:
            await hq.aclose()
            await london.aclose()
        # every worker is gone with its pool
        for pool in (hq, london):
            assert all(w is None or w.proc.returncode is not None for w in pool._workers)

    asyncio.run(main())


def _ok(results: list[FileResult]) -> None:
    assert results, "no result"
    assert all(r.ok for r in results), results


def test_grants_run_in_different_workers_and_each_session_reaches_one_worker(
    tmp_path: Path,
) -> None:
    async def body(studio: _Studio, hq: WorkerPool, london: WorkerPool, port: int) -> None:
        shots = [studio.shot(f"sh{n:03d}") for n in (10, 20)]
        jobs = [studio.assignment(f"t{n}", [shot], port) for n, shot in enumerate(shots)]
        both = await asyncio.gather(hq.push(jobs[0]), hq.push(jobs[1]))
        for results in both:
            _ok(results)
        for shot in shots:
            assert studio.same(shot), shot
        assert not list(studio.roots["london"].rglob("*.reelsync-part"))
        # each hq worker dialled its own session; london dealt them one per worker, and every
        # stream of a session reached its session's worker (2 streams a session here)
        await _until(lambda: hq.open_sessions == 2, "both hq workers to report their session")
        await _until(
            lambda: [w.stats[3] for w in london._live()] == [2, 2],
            "london's workers to report the streams they served",
        )
        assert london.streams_refused == 0
        # a third grant reuses a session kept open: no new connection reaches london
        third = studio.shot("sh030", big=MIB, small=3)
        _ok(await hq.push(studio.assignment("t3", [third], port)))
        assert studio.same(third)
        await asyncio.sleep(1.2)  # a stats round of every worker
        assert london.streams_accepted == 4
        sent, received = london.bytes_moved
        assert received > 2 * 3 * MIB

    _run(tmp_path, body)


def test_a_large_grant_is_split_over_the_workers(tmp_path: Path) -> None:
    async def body(studio: _Studio, hq: WorkerPool, london: WorkerPool, port: int) -> None:
        names = [studio.shot(f"sh{n:03d}", big=(n % 3 + 1) * MIB, small=2) for n in range(5)]
        (studio.roots["hq"] / "edit.mov").write_bytes(os.urandom(MIB + 5))
        names.append("edit.mov")  # a file task beside the folder tasks
        job = studio.assignment("t1", names, port)
        results = await hq.push(job)
        _ok(results)
        assert [r.key for r in results] == [s.key for s in job.files]  # the grant's order
        assert all(studio.same(n) for n in names[:5])
        assert _sha(studio.roots["london"] / "edit.mov") == _sha(studio.roots["hq"] / "edit.mov")
        # two parts, each its own session in its own worker at both ends
        await _until(lambda: hq.open_sessions == 2, "both hq workers to report a session")
        await _until(
            lambda: [w.stats[3] for w in london._live()] == [2, 2],
            "london's workers to report the streams they served",
        )
        assert london.streams_refused == 0

    _run(tmp_path, body, split_bytes=1, split_files=1)


def test_a_killed_worker_fails_its_transfer_as_retryable_and_is_started_again(
    tmp_path: Path,
) -> None:
    async def body(studio: _Studio, hq: WorkerPool, london: WorkerPool, port: int) -> None:
        shot = studio.shot("sh040", big=12 * MIB, small=0)
        hq.set_bandwidth_limit(3 * MIB)  # ~4 s of sending: time to kill the worker on the way
        job = studio.assignment("t1", [shot], port)
        running = asyncio.ensure_future(hq.push(job))
        await _until(lambda: hq.bytes_moved[0] > 2 * MIB, "the push to be under way")
        victim = hq._workers[0]
        assert victim is not None
        assert victim.calls
        victim.proc.send_signal(signal.SIGKILL)
        with pytest.raises(ConnectionLostError) as failed:
            await running
        assert failed.value.retryable
        assert "worker 0 stopped" in failed.value.message
        await _until(lambda: len(hq._live()) == 2, "the killed worker to be started again")
        assert hq._workers[0] is not victim
        hq.set_bandwidth_limit(None)
        # what the scheduler does next: the same files again; the receiver resumes its part file
        _ok(await hq.push(studio.assignment("t2", [shot], port)))
        assert studio.same(shot)
        assert not list(studio.roots["london"].rglob("*.reelsync-part"))

    _run(tmp_path, body)


def test_the_bandwidth_limit_holds_for_the_pool_as_a_whole(tmp_path: Path) -> None:
    async def body(studio: _Studio, hq: WorkerPool, london: WorkerPool, port: int) -> None:
        shots = [studio.shot(f"sh{n:03d}", big=4 * MIB, small=0) for n in (50, 60)]
        rate = 4 * MIB
        hq.set_bandwidth_limit(rate)
        began = time.monotonic()
        both = await asyncio.gather(
            *(hq.push(studio.assignment(f"t{n}", [s], port)) for n, s in enumerate(shots))
        )
        elapsed = time.monotonic() - began
        for results in both:
            _ok(results)
        # two workers each with the whole limit would take ~1 s; shared, 8 MiB at 4 MiB/s is
        # 2 s (less one bucket's burst; a loaded machine only makes it slower)
        assert elapsed > 1.6, elapsed
        assert all(studio.same(s) for s in shots)

    _run(tmp_path, body)


def test_an_engine_serves_handed_over_connections_only_with_mutual_tls(tmp_path: Path) -> None:
    """Like ``serve``, ``adopt`` refuses a server context that does not require the peer's
    certificate, and closes the connection it was handed."""
    import socket
    import ssl

    from reelsync.engine import Engine

    lax = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)  # verify_mode CERT_NONE
    files = _Studio(tmp_path).files["london"]
    for server_ssl in (None, lax):
        engine = Engine(SETTINGS, server_ssl=server_ssl)
        here, there = socket.socketpair()
        with pytest.raises(ConfigError, match="mutual TLS"):
            engine.adopt(here, None)  # type: ignore[arg-type]
        assert here.fileno() == -1  # closed
        there.close()
    assert files.server().verify_mode == ssl.CERT_REQUIRED  # what agents use


def test_workers_setting() -> None:
    assert _workers("auto") >= 1
    assert _workers(3) == 3
    assert _workers("2") == 2
    for bad in (0, "none", 1.5, True, 65, [2]):
        with pytest.raises(ConfigError):
            _workers(bad)


@pytest.mark.slow
def test_agents_with_workers_move_a_job_and_stop_with_their_workers(tmp_path: Path) -> None:
    """``reelsync agent run`` with ``REELSYNC_AGENT_WORKERS=2`` at both sites: a job of four shot
    folders (one lease each, run at once) arrives whole; SIGTERM stops every worker too."""
    from contextlib import ExitStack

    from support.agents import add_london_and_projects, agents_at_hq_and_london, wait_until
    from support.servers import running_server

    roots = {site: tmp_path / f"{site}-projects" for site in ("hq", "london")}
    for root in roots.values():
        root.mkdir()
    shots = []
    for n in range(4):
        shot = roots["hq"] / "proj" / f"sh{n:03d}" / "plates"
        shot.mkdir(parents=True)
        (shot / "plate.exr").write_bytes(os.urandom(2 * MIB + n))
        for i in range(10):
            (shot / f"f.{i:04d}.dpx").write_bytes(os.urandom(5000 + i))
        shots.append(shot.relative_to(roots["hq"]))
    with ExitStack() as stack:
        server = stack.enter_context(running_server(tmp_path / "server"))
        add_london_and_projects(server, roots)
        agents = agents_at_hq_and_london(
            stack, server, tmp_path, env={"REELSYNC_AGENT_WORKERS": "2"}
        )
        workers = {site: _children(a.process.pid) for site, a in agents.items()}
        assert all(len(pids) == 2 for pids in workers.values()), workers
        with server.session() as admin:
            admin.request(
                "PUT",
                "/settings",
                json_body={"scope": "workspace", "key": "transfer_batch_files", "value": 1},
            )
            job = admin.submit_job(
                {
                    "name": "shots to london",
                    "source": "site=hq",
                    "destination": "site=london",
                    "tasks": [{"source": f"volume=projects/{s}"} for s in shots],
                }
            )

            def finished() -> dict | None:
                current: dict = admin.get_entity("job", job["id"])
                return current if current["status"] in ("done", "failed") else None

            final = wait_until(finished, 120, "the job to finish")
        assert final["status"] == "done", (final, agents["hq"].log(), agents["london"].log())
        for shot in shots:
            src, dst = roots["hq"] / shot, roots["london"] / shot
            for f in src.iterdir():
                assert _sha(dst / f.name) == _sha(f), f
        assert not list(roots["london"].rglob("*.reelsync-part"))
        for agent in agents.values():
            assert "data plane: 2 worker processes" in agent.log()
    # the agents stopped cleanly (checked by running_agent) and their workers with them
    for pids in workers.values():
        for pid in pids:
            assert not Path(f"/proc/{pid}").exists() or _zombie(pid), pid


def _children(pid: int) -> list[int]:
    """The data-plane workers among ``pid``'s children."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        if ppid == pid and b"reelsync.agent.dataworker" in cmdline:
            found.append(int(entry.name))
    return sorted(found)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return True
