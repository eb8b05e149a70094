"""The client's verbs and its error translation, against an in-memory fake server (httpx
MockTransport); the real server is exercised in tests/test_server_process_api.py."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from reelsync.client import AsyncSession, Session, parse_find
from reelsync.client.early import EarlyRequest
from reelsync.config import ClientConfig
from reelsync.errors import (
    AgentOfflineError,
    AuthenticationError,
    ConflictError,
    ConnectionLostError,
    InternalError,
    NotFoundError,
    QuerySyntaxError,
    ValidationError,
)

KEY = "rsk_secret_key_value"


class FakeServer:
    """A tiny in-memory REST v1: records requests, answers from a table."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.volumes: dict[str, dict[str, Any]] = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path.removeprefix("/api/v1")
        if path == "/health":
            return httpx.Response(200, json={"status": "ok", "version": "0"})
        if request.headers.get("authorization") != f"Bearer {KEY}":
            return httpx.Response(
                401, json={"error": {"code": "unauthenticated", "message": "bad API key"}}
            )
        if path == "/volumes" and request.method == "POST":
            body = json.loads(request.content)
            if body["code"] in self.volumes:
                return httpx.Response(
                    409,
                    json={
                        "error": {
                            "code": "conflict",
                            "message": "volume projects exists",
                            "hint": "pick another code",
                        }
                    },
                )
            entity = {"id": "a" * 24, **body}
            self.volumes[body["code"]] = entity
            return httpx.Response(201, json=entity)
        if path == "/volumes" and request.method == "GET":
            rows = list(self.volumes.values())
            if "code" in request.url.params:
                rows = [r for r in rows if r["code"] == request.url.params["code"]]
            return httpx.Response(200, json={"items": rows, "total": len(rows)})
        if path.startswith("/volumes/"):
            ref = path.split("/")[2]
            if ref not in self.volumes:
                return httpx.Response(
                    404, json={"error": {"code": "not_found", "message": f"no volume {ref}"}}
                )
            if request.method == "DELETE":
                del self.volumes[ref]
                return httpx.Response(204)
            if request.method == "PATCH":
                self.volumes[ref].update(json.loads(request.content))
            return httpx.Response(200, json=self.volumes[ref])
        if path == "/jobs/j1/tasks":
            return httpx.Response(
                200, json=[{"uri": "0", "body": json.loads(request.content or b"{}")}]
            )
        if path == "/boom":
            return httpx.Response(500, text="<html>oops</html>")
        if path == "/notjson":
            return httpx.Response(200, text="hello")
        return httpx.Response(404, json={"detail": "Not Found"})


@pytest.fixture
def fake() -> FakeServer:
    return FakeServer()


def _config(**kw: Any) -> ClientConfig:
    return ClientConfig(url="https://hq.test:8443", api_user="a@b", api_key=KEY, **kw)


@pytest.fixture
def session(fake: FakeServer) -> Any:
    with Session(_config(), transport=httpx.MockTransport(fake)) as s:
        yield s


def test_verbs_round_trip(session: Session, fake: FakeServer) -> None:
    created = session.create("volume", {"code": "projects", "paths": {"hq": "/mnt"}})
    assert created["id"] == "a" * 24
    assert session.find("volume") == [created]
    assert session.find_one("volume where code=projects") == created
    assert session.find_one("volume", code="nope") is None
    assert session.get_entity("volume", "projects")["paths"] == {"hq": "/mnt"}
    assert session.update("volume", "projects", {"name": "Projects"})["name"] == "Projects"
    session.delete("volume", "projects")
    with pytest.raises(NotFoundError, match="no volume projects") as info:
        session.get_entity("volume", "projects")
    assert info.value.remote
    methods = [(r.method, r.url.path) for r in fake.requests]
    assert methods[0] == ("POST", "/api/v1/volumes")
    assert ("DELETE", "/api/v1/volumes/projects") in methods


def test_a_started_request_answers_through_its_future(session: Session) -> None:
    session.create("volume", {"code": "projects", "paths": {"hq": "/mnt"}})
    sent = session.start("GET", "/volumes/projects")
    assert session.get_entity("volume", "projects")["code"] == "projects"  # meanwhile
    assert sent.result(timeout=30)["paths"] == {"hq": "/mnt"}
    missing = session.start("GET", "/volumes/nope")
    with pytest.raises(NotFoundError):
        missing.result(timeout=30)


def test_task_verbs_go_under_the_job(session: Session, fake: FakeServer) -> None:
    out = session.create("task", [{"source": "a", "destination": "b"}], "j1")
    assert out[0]["body"] == {"tasks": [{"source": "a", "destination": "b"}]}
    session.update("task", "j1", [{"uri": "0", "status": "paused"}])
    assert fake.requests[-1].method == "PATCH"
    with pytest.raises(ValidationError, match="belong to a job"):
        session.create("task", [])


def test_server_errors_keep_their_class_and_hint(session: Session) -> None:
    session.create("volume", {"code": "projects", "paths": {}})
    with pytest.raises(ConflictError) as info:
        session.create("volume", {"code": "projects", "paths": {}})
    assert str(info.value) == "volume projects exists (pick another code)"
    assert info.value.remote


def test_errors_without_a_reelsync_body(session: Session) -> None:
    with pytest.raises(InternalError, match="HTTP 500"):
        session.request("GET", "/boom")
    with pytest.raises(InternalError, match="not JSON"):
        session.request("GET", "/notjson")
    with pytest.raises(NotFoundError, match="HTTP 404: Not Found"):
        session.request("GET", "/nowhere")


def test_bad_key_and_no_key(fake: FakeServer) -> None:
    with Session(
        ClientConfig(url="https://x", api_key="wrong"), transport=httpx.MockTransport(fake)
    ) as s:
        assert s.health()["status"] == "ok"
        with pytest.raises(AuthenticationError, match="bad API key"):
            s.find("volume")
    with (
        Session(ClientConfig(url="https://x"), transport=httpx.MockTransport(fake)) as s,
        pytest.raises(AuthenticationError, match="no API key.*REELSYNC_API_KEY"),
    ):
        s.find("volume")
    assert all("wrong" not in str(r.url) for r in fake.requests)


def test_unknown_entity_type(session: Session) -> None:
    with pytest.raises(ValidationError, match="unknown entity type 'shot'"):
        session.find("shot")


def test_parse_find() -> None:
    assert parse_find("Job") == ("job", {})
    assert parse_find("job WHERE status=running AND queue='proj001'") == (
        "job",
        {"status": "running", "queue": "proj001"},
    )
    with pytest.raises(QuerySyntaxError):
        parse_find("job where status>running")
    with pytest.raises(QuerySyntaxError):
        parse_find("")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_connection_refused_is_one_clear_error() -> None:
    port = _closed_port()
    started = time.monotonic()
    with (
        Session(ClientConfig(url=f"http://127.0.0.1:{port}", api_key=KEY, retry_s=0.5)) as s,
        pytest.raises(ConnectionLostError) as info,
    ):
        s.find("site")
    assert info.value.message == f"cannot reach http://127.0.0.1:{port}: connection refused"
    assert "run the same command again" in (info.value.hint or "")
    assert time.monotonic() - started >= 0.2  # it paused and retried, then gave up


def test_a_server_that_comes_up_during_the_retries_answers() -> None:
    port = _closed_port()
    served: list[int] = []

    def serve_later() -> None:
        time.sleep(0.7)
        with socket.socket() as srv:
            srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            srv.bind(("127.0.0.1", port))
            srv.listen(1)
            conn, _ = srv.accept()
            with conn:
                conn.recv(65536)
                body = b'[{"id": "s1", "code": "london"}]'
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: "
                    + str(len(body)).encode()
                    + b"\r\nConnection: close\r\n\r\n"
                    + body
                )
                served.append(1)

    thread = threading.Thread(target=serve_later, daemon=True)
    thread.start()
    with Session(ClientConfig(url=f"http://127.0.0.1:{port}", api_key=KEY, retry_s=10)) as s:
        assert s.find("site") == [{"id": "s1", "code": "london"}]
    thread.join(5)
    assert served == [1]


class Flaky:
    """Fails its first calls (None: a dropped connection; else that HTTP status), then answers."""

    def __init__(self, failures: list[int | None], body: dict[str, Any] | None = None) -> None:
        self.failures = failures
        self.body = body or {"detail": "restarting"}
        self.calls: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        if self.failures:
            failure = self.failures.pop(0)
            if failure is None:
                raise httpx.ReadError("connection reset by peer", request=request)
            return httpx.Response(failure, json=self.body)
        return httpx.Response(201 if request.method == "POST" else 200, json={"id": "j" * 24})


def _flaky_session(flaky: Flaky) -> Session:
    return Session(
        ClientConfig(url="http://cp", api_key=KEY, retry_s=5), transport=httpx.MockTransport(flaky)
    )


def test_submits_are_retried_with_one_idempotency_key() -> None:
    flaky = Flaky([None, 503])
    with _flaky_session(flaky) as s:
        assert s.submit_job({"source": "a", "destination": "site=london"})["id"] == "j" * 24
    keys = {r.headers["idempotency-key"] for r in flaky.calls}
    assert len(flaky.calls) == 3
    assert len(keys) == 1  # the same key each time: the server makes one job
    with _flaky_session(Flaky([])) as s:
        s.submit_job({"source": "a"}, key="tool-run-42")
        s.submit_job({"source": "a"}, key="tool-run-42")


def test_only_harmless_repeats_are_retried() -> None:
    reads = Flaky([None, 502, 504])
    with _flaky_session(reads) as s:
        assert s.get_entity("site", "london")["id"] == "j" * 24
    assert len(reads.calls) == 4
    # a POST without an idempotency key may have been done: never sent twice
    create = Flaky([None])
    with _flaky_session(create) as s, pytest.raises(ConnectionLostError):
        s.create("site", {"code": "paris"})
    assert len(create.calls) == 1
    # the server's own error answers are final
    broken = Flaky([500])
    with _flaky_session(broken) as s, pytest.raises(InternalError):
        s.get_entity("site", "london")
    assert len(broken.calls) == 1


def test_no_agent_online_is_answered_at_once_while_a_busy_database_is_waited_out() -> None:
    """The server's 503 that no agent is online where a sync needs one is shown at once (before,
    `reelsync sync` waited its 20 s of retries for an agent that only a person can start); a 503
    for something that passes (the database restarting, a proxy) is still retried."""

    def answers(code: str, message: str) -> Flaky:
        """Answers the first call with that 503 error body, then with a job."""
        return Flaky([503], body={"error": {"code": code, "message": message}})

    offline = answers("agent_offline", "no agent is online at site london (ldn1 offline)")
    with (
        Session(
            ClientConfig(url="http://cp", api_key=KEY, retry_s=60),
            transport=httpx.MockTransport(offline),
        ) as s,
        pytest.raises(AgentOfflineError) as info,
    ):
        s.submit_job({"source": "a", "destination": "site=london"})
    assert len(offline.calls) == 1
    assert info.value.exit_code == 75  # temporary: the same command works once one is up
    assert info.value.message.startswith("no agent is online at site london")
    busy = answers("unavailable", "the database is unavailable: connection refused")
    with Session(
        ClientConfig(url="http://cp", api_key=KEY, retry_s=60),
        transport=httpx.MockTransport(busy),
    ) as s:
        assert s.submit_job({"source": "a"})["id"] == "j" * 24
    assert len(busy.calls) == 2


def test_an_early_request_is_the_first_attempt_of_the_same_request() -> None:
    """``EarlyRequest`` sends a request over a synchronous client before the session exists;
    its answer goes through the session's Transport as that request's first attempt: the same
    headers, the same result and errors, and a retry (same key) when it got none or a 503."""
    key = {"Idempotency-Key": "k1"}
    early_server = Flaky([])
    early = EarlyRequest(
        ClientConfig(url="http://cp", api_key=KEY),
        "POST",
        "/syncs",
        json_body={"paths": ["a"]},
        headers=key,
        transport=httpx.MockTransport(early_server),
    )
    answer = early.answer()
    assert answer is not None
    assert answer.status_code == 201
    [sent] = early_server.calls
    assert sent.url.path == "/api/v1/syncs"
    assert json.loads(sent.content) == {"paths": ["a"]}
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["idempotency-key"] == "k1"
    assert sent.headers["user-agent"].startswith("reelsync/")
    later = Flaky([])
    with _flaky_session(later) as s:  # the answer taken as is: nothing sent again
        assert s.request("POST", "/syncs", headers=key, first=answer) == {"id": "j" * 24}
        assert later.calls == []
        missing = httpx.Response(
            404,
            json={"error": {"code": "not_found", "message": "no such endpoint"}},
            request=httpx.Request("POST", "http://cp/api/v1/syncs"),
        )
        with pytest.raises(NotFoundError, match="no such endpoint"):
            s.request("POST", "/syncs", headers=key, first=missing)
        busy = httpx.Response(
            503, json={"detail": "restarting"}, request=httpx.Request("POST", "http://cp/x")
        )
        assert s.request("POST", "/syncs", headers=key, first=busy) == {"id": "j" * 24}
        assert [r.headers["idempotency-key"] for r in later.calls] == ["k1"]  # retried once
    down = EarlyRequest(
        ClientConfig(url="http://cp", api_key=KEY),
        "POST",
        "/syncs",
        headers=key,
        transport=httpx.MockTransport(Flaky([None])),
    )
    assert down.answer() is None  # no answer: the session sends it (and says what is wrong)
    unloadable = ClientConfig(url="https://cp", api_key=KEY, ca_file=Path("/nonexistent/ca.crt"))
    assert EarlyRequest(unloadable, "GET", "/health").answer() is None


async def test_async_session_is_the_core(fake: FakeServer) -> None:
    async with AsyncSession(_config(), transport=httpx.MockTransport(fake)) as s:
        await s.create("volume", {"code": "v", "paths": {}})
        assert [v["code"] for v in await s.find("volume")] == ["v"]


def test_sync_session_works_inside_a_running_loop(fake: FakeServer) -> None:
    import asyncio

    async def inside() -> list[dict[str, Any]]:
        with Session(_config(), transport=httpx.MockTransport(fake)) as s:
            return s.find("volume")

    assert asyncio.run(inside()) == []


def test_closed_session_refuses(fake: FakeServer) -> None:
    s = Session(_config(), transport=httpx.MockTransport(fake))
    s.close()
    s.close()
    with pytest.raises(RuntimeError, match="closed"):
        s.find("volume")
    assert KEY not in repr(s)


def test_find_narrows_even_if_the_server_ignores_a_filter() -> None:
    rows = [
        {"id": "1", "code": "hq", "main": True, "user": "a@b", "user_id": "u1"},
        {"id": "2", "code": "paris", "main": False, "user": "c@d", "user_id": "u2"},
    ]

    def ignore_filters(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"items": rows})

    with Session(_config(), transport=httpx.MockTransport(ignore_filters)) as s:
        assert s.find_one("site", code="paris") == rows[1]
        assert s.find_one("site", code="rome") is None
        assert s.find("site", main=True) == [rows[0]]
        assert s.find("acl", user="u2") == [rows[1]]
        assert s.find("acl", user="C@D") == [rows[1]]
        assert s.find("site", unknown_field="x") == rows
