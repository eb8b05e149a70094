"""The four attacks of issue 10, replayed against a real control plane and real agents:

1. one long path wedged an agent's reports (the whole batch refused, resent forever);
2. ReDoS through an accsyn ``find`` (``name matches "^(a+)+b"``);
3. unbounded request bodies read before authentication;
4. a sub-path ACL bypassed through a symlink inside the volume.

Each test fails on the code before the fix and passes after it."""

from __future__ import annotations

import json
import socket
import ssl
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from reelsync.client import Session
from reelsync.errors import PathError, PermissionDeniedError
from support.agents import RunningAgent, add_london_and_projects, running_agent, wait_until
from support.servers import RunningServer, running_server

pytestmark = pytest.mark.slow

EMPLOYEE = "coordinator@acme.test"
SERVER_ENV = {"REELSYNC_AGENT_OFFLINE_AFTER_S": "5"}


class Studio:
    def __init__(
        self,
        server: RunningServer,
        agents: dict[str, RunningAgent],
        roots: dict[str, Path],
        employee_key: str,
    ) -> None:
        self.server = server
        self.agents = agents
        self.roots = roots
        self.employee_key = employee_key

    def employee(self) -> Session:
        return self.server.session(api_user=EMPLOYEE, api_key=self.employee_key)

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.server.ca_file))

    def wait_job(self, session: Session, job_id: str, what: str) -> dict[str, Any]:
        def ended() -> dict[str, Any] | None:
            job = session.get_entity("job", job_id)
            return job if job["status"] in ("done", "failed") else None

        found: dict[str, Any] = wait_until(ended, 90, what)
        return found


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Studio]:
    """A control plane, agents at hq and london, volume ``projects`` and an employee granted
    read and write on ``projects/proj001`` only."""
    tmp = tmp_path_factory.mktemp("attacks")
    roots = {site: tmp / f"{site}-projects" for site in ("hq", "london")}
    for root in roots.values():
        (root / "proj001").mkdir(parents=True)
        (root / "proj002").mkdir()
    with ExitStack() as stack:
        server = stack.enter_context(running_server(tmp / "server", env=SERVER_ENV))
        add_london_and_projects(server, roots, default=False)
        with server.session() as admin:
            admin.create("user", {"email": EMPLOYEE, "role": "employee"})
            admin.grant(EMPLOYEE, "projects", path="proj001", read=True, write=True)
            key = str(admin.create_apikey(EMPLOYEE, description="attacks")["api_key"])
        agents = {
            site: stack.enter_context(running_agent(server, site, tmp / f"agent-{site}"))
            for site in ("hq", "london")
        }
        for agent in agents.values():
            agent.wait_online()
        yield Studio(server, agents, roots, key)


# -- 1. one long path wedged an agent's reports --------------------------------------------------


def test_a_long_path_never_wedges_an_agents_reports(studio: Studio) -> None:
    hq = studio.roots["hq"]
    with studio.employee() as employee:
        # a 5,000-character name is refused at submit, with a message that stays short
        with pytest.raises(PathError) as info:
            employee.submit_job(
                {"source": f"volume=projects/proj001/{'a' * 5000}", "destination": "site=london"}
            )
        assert "bytes long; at most" in info.value.message
        assert len(str(info.value)) < 500
        # a path within the rules (4,023 bytes) whose failure message is longer than a report
        # item could carry: it fails alone and does not hold back anybody's results
        deep = "proj001/" + "/".join(["d" * 250] * 16)
        long_job = employee.submit_job(
            {"source": f"volume=projects/{deep}", "destination": "site=london"}
        )
    (hq / "proj001" / "after.bin").write_bytes(b"an unrelated job")
    with studio.server.session() as admin:
        later = admin.submit_job(
            {"source": "volume=projects/proj001/after.bin", "destination": "site=london"}
        )
        done = studio.wait_job(admin, later["id"], "the admin's job after the long path")
        assert done["status"] == "done", done
        arrived = studio.roots["london"] / "proj001" / "after.bin"
        assert arrived.read_bytes() == b"an unrelated job"

        def failure_recorded() -> str | None:
            [task] = admin.tasks(long_job["id"])
            error = task.get("last_error") or task.get("error")
            return str(error) if error else None

        error = wait_until(failure_recorded, 60, "the long path's failure to be reported")
        assert "does not exist" in error or "too long" in error.lower(), error
        assert len(error) <= 2000
    for agent in studio.agents.values():
        assert "could not report" not in agent.log(), agent.log()


# -- 2. ReDoS through an accsyn find -------------------------------------------------------------


def _accsyn_get(studio: Studio, envelope: dict[str, Any], user: str, key: str) -> httpx.Response:
    import base64

    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    query = urllib.parse.quote(json.dumps(envelope))
    return httpx.get(
        f"{studio.server.url}/api/v3/event?{query}",
        headers={
            "Authorization": f"basic {b64(user)}:{b64(key)}",
            "X-Accsyn-Workspace": studio.server.workspace,
        },
        verify=studio.ssl_context(),
        timeout=30,
    )


def test_a_catastrophic_regex_in_find_answers_at_once(studio: Studio) -> None:
    hq = studio.roots["hq"]
    (hq / "proj001" / "redos.bin").write_bytes(b"x")
    name = "a" * 40  # 8.4 s at 27 characters, doubling with each one: days at 40
    with studio.employee() as employee:
        employee.submit_job(
            {
                "name": name,
                "source": "volume=projects/proj001/redos.bin",
                "destination": "site=london",
            }
        )
    envelope = {
        "workspace": studio.server.workspace,
        "uri": "job/find",
        "query": 'name matches "^(a+)+b"',
        # finished jobs too: the one-byte job may be done before the second find
        "data": {"finished": True},
    }
    started = time.monotonic()
    answer = _accsyn_get(studio, envelope, EMPLOYEE, studio.employee_key)
    assert answer.status_code == 200, answer.text
    assert answer.json()["result"] == []
    assert time.monotonic() - started < 20
    # the same pattern without its catastrophic shape finds the job; an unsupported one is a
    # clear error
    envelope["query"] = 'name matches "^a+$"'
    found = _accsyn_get(studio, envelope, EMPLOYEE, studio.employee_key).json()["result"]
    assert [job["name"] for job in found] == [name]
    envelope["query"] = 'name matches "(a)\\\\1"'
    refused = _accsyn_get(studio, envelope, EMPLOYEE, studio.employee_key)
    assert refused.status_code == 400
    assert "not a valid regular expression" in refused.json()["message"]
    envelope["query"] = " OR ".join(f"name={i}" for i in range(300))
    costly = _accsyn_get(studio, envelope, EMPLOYEE, studio.employee_key)
    assert costly.status_code == 400
    assert "too costly" in costly.json()["message"]


# -- 3. unbounded bodies read before authentication ----------------------------------------------


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _raw_request(
    studio: Studio, head: str, body_chunks: Iterator[bytes], timeout: float = 30
) -> tuple[int, bytes, int]:
    """Send ``head`` then body chunks over TLS until the server answers (or stops reading);
    returns (status, the answer's raw bytes, body bytes sent)."""
    url = urllib.parse.urlsplit(studio.server.url)
    raw = socket.create_connection((url.hostname, url.port), timeout=timeout)
    with studio.ssl_context().wrap_socket(raw, server_hostname=url.hostname) as sock:
        sock.sendall(head.encode())
        sent = 0
        sock.settimeout(0.05)
        answer = b""
        deadline = time.monotonic() + timeout
        for chunk in body_chunks:
            try:
                answer += sock.recv(65536)
            except (TimeoutError, ssl.SSLWantReadError):
                pass
            except OSError:
                break
            if answer:
                break
            try:
                sock.settimeout(timeout)
                sock.sendall(chunk)
                sock.settimeout(0.05)
            except OSError:
                break
            sent += len(chunk)
            assert time.monotonic() < deadline, "the server neither answered nor stopped reading"
        sock.settimeout(timeout)

        def complete() -> bool:
            head, sep, body = answer.partition(b"\r\n\r\n")
            if not sep:
                return False
            for line in head.lower().split(b"\r\n"):
                if line.startswith(b"content-length:"):
                    return len(body) >= int(line.split(b":")[1])
            return True

        while not complete():
            more = sock.recv(65536)
            if not more:
                break
            answer += more
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0
    return status, answer, sent


def _zeros(total: int, chunk: int = 256 * 1024) -> Iterator[bytes]:
    block = b" " * chunk
    for _ in range(total // chunk):
        yield block


def test_unauthenticated_uploads_are_refused_before_their_body(studio: Studio) -> None:
    server = studio.server
    before = _rss_kib(server.process.pid)
    huge = 300 * 1024 * 1024
    big = 60 * 1024 * 1024  # within what a job submit may carry
    for path, extra, length, expected in (
        ("/api/v1/jobs", "", huge, 413),
        ("/api/v3/event", f"X-Accsyn-Workspace: {server.workspace}\r\n", huge, 413),
        ("/api/v1/jobs", "", big, 401),
        ("/api/v3/event", f"X-Accsyn-Workspace: {server.workspace}\r\n", big, 401),
        ("/api/v1/jobs", "Authorization: Bearer rsk_not_a_key\r\n", big, 401),
    ):
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n{extra}\r\n"
        )
        # the answer comes after the headers: the body never needs to be sent
        status, answer, sent = _raw_request(studio, head, _zeros(length))
        assert status == expected, (path, answer[:300])
        assert sent < 16 * 1024 * 1024, sent
    # an admin's upload over the route's limit (1 MiB), without a length: cut while being read
    head = (
        "POST /api/v1/sites HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {server.api_key}\r\nTransfer-Encoding: chunked\r\n\r\n"
    )

    def chunked(total: int) -> Iterator[bytes]:
        for block in _zeros(total):
            yield b"%x\r\n" % len(block) + block + b"\r\n"

    status, answer, sent = _raw_request(studio, head, chunked(huge))
    assert status == 413, answer[:300]
    assert b"larger than this endpoint takes" in answer
    assert sent < 16 * 1024 * 1024, sent
    # a declared length over the limit is refused at once
    head = (
        "POST /api/v1/sites HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {server.api_key}\r\nContent-Length: {huge}\r\n\r\n"
    )
    status, answer, sent = _raw_request(studio, head, _zeros(huge))
    assert status == 413, answer[:300]
    grown_mib = (_rss_kib(server.process.pid) - before) / 1024
    assert grown_mib < 100, f"the control plane grew {grown_mib:.0f} MiB"
    with server.session() as admin:  # and it still serves
        assert admin.health()["status"] == "ok"
    assert "Traceback" not in server.log()


# -- 4. a sub-path ACL bypassed through a symlink inside the volume ------------------------------


def test_a_symlink_does_not_widen_a_sub_path_grant(studio: Studio) -> None:
    hq, london = studio.roots["hq"], studio.roots["london"]
    (hq / "proj002" / "private.txt").write_bytes(b"proj002 only")
    (hq / "proj001" / "p2link").symlink_to("../proj002")
    (hq / "proj001" / "mine.txt").write_bytes(b"granted")
    with studio.employee() as employee:
        listed = employee.request(
            "GET", "/files/ls", params={"volume": "projects", "path": "proj001"}
        )
        names = {item["filename"] for item in listed["result"]}
        assert "mine.txt" in names
        assert "p2link" not in names  # listings never follow symlinks
        # listing or sizing through the link: refused by the agent, which follows it
        for op in ("ls", "getsize", "exists"):
            with pytest.raises(PermissionDeniedError, match="leads outside 'proj001'"):
                employee.request(
                    "GET", f"/files/{op}", params={"volume": "projects", "path": "proj001/p2link"}
                )
        with pytest.raises(PermissionDeniedError):
            employee.request("GET", "/files/ls", params={"volume": "projects", "path": "proj002"})
        # copying through the link: the agent refuses the file when the work reaches it
        job = employee.submit_job(
            {"source": "volume=projects/proj001/p2link/private.txt", "destination": "site=london"}
        )

        def task_failed() -> dict[str, Any] | None:
            [task] = employee.tasks(job["id"])
            return task if task["status"] == "failed" else None

        task = wait_until(task_failed, 60, "the copy through the symlink to be refused")
        assert "leads outside 'proj001'" in str(task.get("last_error") or task), task
        # what the grant covers still moves
        mine = employee.submit_job(
            {"source": "volume=projects/proj001/mine.txt", "destination": "site=london"}
        )
        assert studio.wait_job(employee, mine["id"], "the employee's own file")["status"] == "done"
    assert (london / "proj001" / "mine.txt").read_bytes() == b"granted"
    assert not (london / "proj001" / "p2link").exists()
    assert not (london / "proj002" / "private.txt").exists()
    # an admin (the whole volume) may follow a link that stays inside the volume
    with studio.server.session() as admin:
        job = admin.submit_job(
            {"source": "volume=projects/proj001/p2link/private.txt", "destination": "site=london"}
        )
        assert studio.wait_job(admin, job["id"], "the admin's copy")["status"] == "done"
    assert (london / "proj001" / "p2link" / "private.txt").read_bytes() == b"proj002 only"


def test_a_symlink_inside_a_destination_folder_does_not_widen_a_grant(studio: Studio) -> None:
    """A folder moved by an employee granted proj001: a symlink already inside the destination
    folder (``proj001/shotB/sub -> ../../proj002``) must not take its files into proj002."""
    hq, london = studio.roots["hq"], studio.roots["london"]
    (hq / "proj001" / "shotB" / "sub").mkdir(parents=True)
    (hq / "proj001" / "shotB" / "sub" / "x.exr").write_bytes(b"frame")
    (hq / "proj001" / "shotB" / "y.exr").write_bytes(b"other frame")
    (london / "proj001" / "shotB").mkdir(parents=True)
    (london / "proj001" / "shotB" / "sub").symlink_to("../../proj002")
    with studio.employee() as employee:
        job = employee.submit_job(
            {"source": "volume=projects/proj001/shotB/", "destination": "site=london"}
        )

        def ended() -> dict[str, Any] | None:
            [task] = employee.tasks(job["id"])
            return task if task["status"] in ("done", "failed") else None

        task = wait_until(ended, 60, "the folder with a symlink inside its destination")
    assert not (london / "proj002" / "x.exr").exists()
    assert task["status"] == "failed", task
    assert "leads outside 'proj001'" in str(task.get("last_error") or task), task
    assert (london / "proj001" / "shotB" / "y.exr").read_bytes() == b"other frame"
