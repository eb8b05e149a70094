"""Real agents against a real control plane (offline after the default 60 s of silence, so the
sweep never decides here): a data dir runs one agent; a clean stop is offline at once; a killed
agent is offline within seconds and its open long-poll takes no work, file operations go to the
site's other agent; a restarted agent's leases go back to the queue at once. The tests share one
control plane, each with its own agents and folder; the one that freezes it has its own."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from reelsync.client import Session
from reelsync.errors import NotFoundError
from support.agents import (
    RunningAgent,
    add_london_and_projects,
    running_agent,
    start_agent,
    wait_until,
)
from support.servers import RunningServer, running_server

pytestmark = pytest.mark.slow

_PUSH = re.compile(r"transfer \S+: push (\d+) file\(s\)")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _roots(server: RunningServer, tmp_path: Path) -> dict[str, Path]:
    roots = {site: tmp_path / f"{site}-projects" for site in ("hq", "london")}
    for root in roots.values():
        root.mkdir()
    add_london_and_projects(server, roots)
    return roots


@dataclass
class Studio:
    """The module's control plane (site ``london``, volume ``projects`` at ``roots``) and the
    folder of the volume that is this test's own."""

    server: RunningServer
    roots: dict[str, Path]
    folder: str
    logged: int  # the length of the server's log when the test began

    def server_log(self) -> str:
        """The server's log since this test began."""
        return self.server.log()[self.logged :]


_SETTINGS = ("transfer_batch_files", "agent_concurrency")  # what a test may change


@pytest.fixture(scope="module")
def _shared(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RunningServer, dict[str, Path]]]:
    base = tmp_path_factory.mktemp("presence")
    with running_server(base / "server") as server:
        yield server, _roots(server, base)


@pytest.fixture
def studio(
    _shared: tuple[RunningServer, dict[str, Path]], request: pytest.FixtureRequest
) -> Iterator[Studio]:
    """One control plane for the tests that leave it running (each stops its agents and puts
    back the settings it changed; its files are under a folder of its own)."""
    server, roots = _shared
    yield Studio(server, roots, request.node.name, len(server.log()))
    with server.session() as admin:
        for key in _SETTINGS:
            with contextlib.suppress(NotFoundError):  # never set
                admin.request("DELETE", "/settings", params={"scope": "workspace", "key": key})


def _files(root: Path, count: int, size: int, folder: str = "") -> list[str]:
    made = []
    for i in range(count):
        path = root / folder / "shot" / f"frame.{1001 + i:04d}.exr"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(size))
        made.append(path.relative_to(root).as_posix())
    return made


def _settled(count: Callable[[], int], quiet_s: float = 2.0, timeout: float = 30.0) -> int:
    """``count()`` once it has not changed for ``quiet_s`` (a file being published as a stop
    came may still land, later on a loaded machine)."""
    deadline = time.monotonic() + timeout
    value, since = count(), time.monotonic()
    while time.monotonic() - since < quiet_s:
        assert time.monotonic() < deadline, "the count never settled: files kept moving"
        time.sleep(0.1)
        now = count()
        if now != value:
            value, since = now, time.monotonic()
    return value


def _job(rels: list[str], name: str) -> dict[str, object]:
    return {
        "name": name,
        "tasks": [
            {"source": f"share=projects/{rel}", "destination": "site=london"} for rel in rels
        ],
    }


def test_a_data_dir_runs_one_agent_and_a_clean_stop_is_offline_at_once(
    studio: Studio, tmp_path: Path
) -> None:
    server = studio.server
    with running_agent(server, "london", tmp_path / "ldn") as agent:
        agent.wait_online()
        second, log_file = start_agent(server, agent.data_dir)
        try:
            code = second.wait(30)
        except subprocess.TimeoutExpired:
            second.kill()
            second.wait()
            raise AssertionError("a second agent ran on the same data dir") from None
        text = log_file.read_text()
        assert code == 78, text  # ConfigError: the same as any data-dir mistake
        lines = [line for line in text.splitlines() if "already running" in line]
        assert len(lines) == 1, text
        assert str(agent.process.pid) in lines[0], text
        assert "Traceback" not in text
        assert agent.entry()["status"] == "online"  # the first one is untouched
        agent.stop()
        assert agent.entry()["status"] == "offline"  # at once, not after 60 s of silence


def test_a_killed_agent_is_offline_in_seconds_and_its_dead_poll_takes_no_work(
    studio: Studio, tmp_path: Path
) -> None:
    server, roots = studio.server, studio.roots  # file operations time out after 30 s
    probe = f"{studio.folder}/probe.txt"
    (roots["hq"] / probe).parent.mkdir(parents=True)
    (roots["hq"] / probe).write_text("here\n")
    made = _files(roots["hq"], 12, 64 * 1024, studio.folder)
    with (
        running_agent(server, "hq", tmp_path / "hq1") as hq1,
        running_agent(server, "hq", tmp_path / "hq2") as hq2,
        running_agent(server, "london", tmp_path / "ldn") as london,
    ):
        for agent in (hq1, hq2, london):
            agent.wait_online()
        time.sleep(1.0)  # both hq agents are parked in their work long-poll
        hq1.kill()
        killed_at = time.monotonic()
        with server.session() as admin:
            # work and a file operation at once: the dead agent's open poll takes neither
            job = admin.submit_job(_job(made, "after a death"))
            started = time.monotonic()
            answer = admin.request("GET", "/files/exists", params={"path": probe})
            assert answer["result"] is True
            assert time.monotonic() - started < 15, "the operation waited for the dead agent"
            hq1.wait_status("offline", timeout=15)
            gone_after = time.monotonic() - killed_at
            final = wait_until(
                lambda: (
                    (j := admin.get_entity("job", job["id"]))["status"] in ("done", "failed") and j
                ),
                60,
                "the job to finish",
            )
            tasks = admin.tasks(job["id"])
    assert gone_after < 15, gone_after
    assert final["status"] == "done", final
    assert {t["dispatches"] for t in tasks} == {1}, tasks
    assert {t["tries"] for t in tasks} == {0}, tasks
    assert not _PUSH.search(hq1.log())
    assert sum(int(n) for n in _PUSH.findall(hq2.log())) == len(made)
    for rel in made:
        assert _digest(roots["london"] / rel) == _digest(roots["hq"] / rel), rel
    assert "did not come back" in studio.server_log()


def test_a_restarted_agent_gives_back_its_leases_at_once(studio: Studio, tmp_path: Path) -> None:
    server, roots = studio.server, studio.roots
    with server.session() as admin:
        for key, value in (("transfer_batch_files", "4"), ("agent_concurrency", "2")):
            admin.request(
                "PUT", "/settings", json_body={"scope": "workspace", "key": key, "value": value}
            )
    made = _files(roots["hq"], 24, 256 * 1024, studio.folder)
    slow = ["--bandwidth-limit", "2"]  # MiB/s: the job takes a few seconds
    with (
        running_agent(server, "hq", tmp_path / "hq", enroll_extra=slow) as hq,
        running_agent(server, "london", tmp_path / "ldn") as london,
    ):
        hq.wait_online()
        london.wait_online()
        with server.session() as admin:
            job = admin.submit_job(_job(made, "restart"))
            wait_until(lambda: _PUSH.search(hq.log()), 60, "the hq agent to be sending")
            hq.kill()
            held = [
                t["id"]
                for t in admin.tasks(job["id"])
                if t["server_id"] == hq.server_id and t["status"] in ("booting", "executing")
            ]
            assert held, "the hq agent killed held nothing"
            hq.process, hq.log_file = start_agent(server, hq.data_dir)  # at once, same data dir
            hq._stopped = False
            restarted = time.monotonic()
            final = wait_until(
                lambda: (
                    (j := admin.get_entity("job", job["id"]))["status"] in ("done", "failed") and j
                ),
                90,
                "the job to finish",
            )
            took = time.monotonic() - restarted
            tasks = {t["id"]: t for t in admin.tasks(job["id"])}
    assert final["status"] == "done", final
    # the files held went back and moved again long before their 120 s lease would have expired
    assert took < 60, took
    assert {tasks[t]["dispatches"] for t in held} == {2}, [tasks[t] for t in held]
    assert {t["tries"] for t in tasks.values()} == {0}
    log = studio.server_log()
    assert "restarted" in log or "did not come back" in log, log[-2000:]
    for rel in made:
        assert _digest(roots["london"] / rel) == _digest(roots["hq"] / rel), rel
    assert not list((roots["london"] / studio.folder).rglob("*.reelsync-part"))


@dataclass
class _Pausable:
    """What the pause tests share: a job of 16 files of 1 MiB at hq for london, one transfer
    (``transfer_batch_files`` 16) from an hq agent limited to 2 MiB/s (a file lands every half
    second), both agents online, submitted."""

    admin: Session
    job: dict[str, Any]
    hq: RunningAgent
    made: list[str]
    published: Callable[[], int]  # how many of its files are at london

    def to_the_end(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The job once done or failed, and its tasks."""
        final = wait_until(
            lambda: (
                (j := self.admin.get_entity("job", self.job["id"]))["status"] in ("done", "failed")
                and j
            ),
            90,  # far below the fence of the resume test: only a stop report lets files go there
            "the job to finish",
        )
        return final, self.admin.tasks(self.job["id"])


@contextlib.contextmanager
def _pausable_job(
    server: RunningServer, roots: dict[str, Path], tmp_path: Path, folder: str, name: str
) -> Iterator[_Pausable]:
    with server.session() as admin:
        admin.request(
            "PUT", "/settings", json_body={"scope": "workspace", "key": "transfer_batch_files",
                                           "value": "16"},
        )  # fmt: skip
    made = _files(roots["hq"], 16, 1 << 20, folder)
    slow = ["--bandwidth-limit", "2"]  # MiB/s: a file lands every half second
    published = lambda: sum((roots["london"] / rel).is_file() for rel in made)  # noqa: E731
    with (
        running_agent(server, "hq", tmp_path / "hq", enroll_extra=slow) as hq,
        running_agent(server, "london", tmp_path / "ldn") as london,
    ):
        hq.wait_online()
        london.wait_online()
        with server.session() as admin:
            job = admin.submit_job(_job(made, name))
            yield _Pausable(admin, job, hq, made, published)


def _check_sent_whole(roots: dict[str, Path], made: list[str], folder: str) -> None:
    """Every file at london as at hq, no part file left."""
    for rel in made:
        assert _digest(roots["london"] / rel) == _digest(roots["hq"] / rel), rel
    assert not list((roots["london"] / folder).rglob("*.reelsync-part"))


def test_pause_stops_the_files_in_flight_and_resume_sends_them_once(
    studio: Studio, tmp_path: Path
) -> None:
    roots = studio.roots
    with _pausable_job(studio.server, roots, tmp_path, studio.folder, "pause") as run:
        admin, job, hq, made, published = run.admin, run.job, run.hq, run.made, run.published
        wait_until(lambda: published() >= 2, 60, "two files at london")
        admin.update("job", job["id"], {"status": "paused"})
        wait_until(lambda: "revoked by the control plane" in hq.log(), 15, "the stop")
        held = _settled(published)
        landed = {
            rel: (roots["london"] / rel).stat().st_ino
            for rel in made
            if (roots["london"] / rel).is_file()
        }
        time.sleep(3.0)  # at 2 MiB/s, six more files would have landed
        assert published() == held, "files kept moving after the pause"
        assert held < len(made)
        paused = admin.get_entity("job", job["id"])
        assert paused["status"] == "paused"
        admin.update("job", job["id"], {"status": "waiting"})  # resume
        final, tasks = run.to_the_end()
    assert final["status"] == "done", final
    assert {t["tries"] for t in tasks} == {0}, tasks
    assert {t["dispatches"] for t in tasks} <= {1, 2}, tasks
    # sent once: no file that had landed before the pause was written again (a second publish
    # renames a new part file over it: a new inode); the resumed transfers held the rest
    for rel, inode in landed.items():
        assert (roots["london"] / rel).stat().st_ino == inode, f"{rel} was sent again"
    pushed = [int(n) for n in _PUSH.findall(hq.log())]
    assert pushed[0] == len(made), pushed
    assert sum(pushed[1:]) >= len(made) - held, (pushed, held)
    _check_sent_whole(roots, made, studio.folder)


_LOGGED = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*?transfer (\S+): (push|stopped)",
                     re.M)  # fmt: skip


def test_a_resume_right_after_a_pause_waits_for_the_old_transfer_to_stop(
    server_factory: Callable[..., RunningServer], tmp_path: Path
) -> None:
    """Pause then resume at once: the files taken back are leased again only once the transfer
    that was moving them has stopped (the agent says so), so no file is sent by two transfers at
    once; the job ends done with every file intact. The server's fence (``fence_s``, at most
    how long such files wait without that word) is set longer than the job may take: the job
    finishing at all shows the stop report, not the fence, let the files go."""
    server = server_factory(env={"REELSYNC_FENCE_S": "600"})
    roots = _roots(server, tmp_path)
    with _pausable_job(server, roots, tmp_path, "", "pause-resume") as run:
        admin, job, hq, made, published = run.admin, run.job, run.hq, run.made, run.published
        wait_until(lambda: published() >= 1, 60, "a file at london")
        admin.update("job", job["id"], {"status": "paused"})
        admin.update("job", job["id"], {"status": "waiting"})  # resume, at once
        final, tasks = run.to_the_end()
    assert final["status"] == "done", final
    assert {t["tries"] for t in tasks} == {0}, tasks
    events = _LOGGED.findall(hq.log())
    first = events[0]
    assert first[2] == "push", events
    stopped = [e for e in events if e[1] == first[1] and e[2] == "stopped"]
    assert stopped, ("the first transfer was never stopped", events)
    after = events.index(stopped[0])
    later = [e for e in events if e[2] == "push" and e[1] != first[1]]
    assert later, events  # the rest went in a new transfer
    # no new transfer began while the first still ran
    assert all(events.index(e) > after for e in later), events
    _check_sent_whole(roots, made, "")


def test_a_dialer_cut_off_from_the_control_plane_stops_before_its_lease_ends(
    server_factory: Callable[..., RunningServer], tmp_path: Path
) -> None:
    server = server_factory(check_clean_exit=False)
    roots = _roots(server, tmp_path)
    with server.session() as admin:
        for key, value in (("transfer_lease_s", "5"), ("transfer_batch_files", "64")):
            admin.request(
                "PUT", "/settings", json_body={"scope": "workspace", "key": key, "value": value}
            )
    # the dialer fences itself after max(3 keepalives, 3/4 of the lease) of silence: 3.75 s here
    # (the shortest lease, a 1 s keepalive), checked every second. At 1 MiB/s the job would take
    # 16 s: it outlasts the first file and the fence (at most ~7 files have landed by then);
    # once the control plane is back, the limit is lifted centrally for what is left
    made = _files(roots["hq"], 16, 1 << 20)
    slow = ["--bandwidth-limit", "1"]  # MiB/s
    published = lambda: sum((roots["london"] / rel).is_file() for rel in made)  # noqa: E731
    keepalive = {"REELSYNC_AGENT_REPORT_KEEPALIVE_S": "1"}
    with (
        running_agent(server, "hq", tmp_path / "hq", enroll_extra=slow, env=keepalive) as hq,
        running_agent(server, "london", tmp_path / "ldn") as london,
    ):
        hq.wait_online()
        london.wait_online()
        with server.session() as admin:
            job = admin.submit_job(_job(made, "cut off"))
        wait_until(lambda: published() >= 1, 60, "a file at london")
        server.process.send_signal(signal.SIGSTOP)  # reachable, never answering
        try:
            wait_until(
                lambda: "no report reached the control plane" in hq.log(), 60, "the self-fence"
            )
            held = _settled(published)
            time.sleep(3.0)  # at 1 MiB/s three more files would have landed
            assert published() == held, "the cut-off agent kept writing"
            assert held < len(made), "the job ended before the fence: nothing was proven"
        finally:
            server.process.send_signal(signal.SIGCONT)
        with server.session() as admin:
            unlimited = {"bandwidth_limit": 1 << 30}  # bytes/s
            admin.request("PATCH", f"/servers/{hq.server_id}", json_body=unlimited)
            final = wait_until(
                lambda: (
                    (j := admin.get_entity("job", job["id"]))["status"] in ("done", "failed") and j
                ),
                180,
                "the job to finish",
            )
    assert final["status"] == "done", final
    for rel in made:
        assert _digest(roots["london"] / rel) == _digest(roots["hq"] / rel), rel
    assert not list(roots["london"].rglob("*.reelsync-part"))
