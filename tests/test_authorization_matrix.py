"""The authorization matrix: every role against every route of the native API, the agents' API,
the accsyn API and the web UI, as it held in the attack review of issue 10 (and must keep
holding). Runs the real app in-process (every route, the intake, the services, a real database
on each backend).

- Every native route, found in the OpenAPI document (a new route is covered at once), refuses a
  request without credentials (401) except the open ones; the agents' routes refuse API keys.
- :data:`MATRIX` lists, per write and per sensitive read, the roles allowed: each other role is
  refused (403, or 404 where the object is hidden from it), each allowed one is not.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from reelsync.config import ServerConfig
from reelsync.db import Database
from reelsync.domain.records import Actor
from reelsync.server.accsyn.handlers import sizing
from reelsync.server.app import create_app
from reelsync.server.controlplane import routers
from reelsync.services import acls, apikeys, jobs, users, webhooks
from reelsync.services.bootstrap import InitResult
from scheduler_world import World

ROLES = ("anonymous", "standard", "employee", "admin")
OPEN = {("GET", "/api/v1/health"), ("POST", "/api/v1/agent/enroll")}
ADMIN = frozenset({"admin"})
USERS = frozenset({"standard", "employee", "admin"})
MOVERS = frozenset({"employee", "admin"})


@dataclass
class Studio:
    client: httpx.AsyncClient
    keys: dict[str, str | None]
    ids: dict[str, str]
    workspace: str

    async def call(
        self, role: str, method: str, path: str, body: Any = None, **kw: Any
    ) -> httpx.Response:
        key = self.keys[role]
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return await self.client.request(
            method, path.format(**self.ids), headers=headers, json=body, **kw
        )


@pytest.fixture
async def studio(
    database: Database, workspace: InitResult, admin: Actor, tmp_path: Path
) -> AsyncIterator[Studio]:
    world = World(database, admin)
    world.queue("proj001", 700)
    keys: dict[str, str | None] = {"anonymous": None, "admin": workspace.api_key}
    ids = {"agent": world.agent("hq")}
    actors = {}
    for role in ("employee", "standard", "victim"):
        user = users.create_user(
            database, admin, email=f"{role}@acmepost.com", role="standard" if role == "victim"
            else role,
        )  # fmt: skip
        actors[role] = Actor(user_id=user.id, email=user.email, role=user.role)
        keys[role] = apikeys.create_api_key(database, admin, user.email)[1]
        ids[role] = user.id
    acl = acls.grant(database, admin, user="employee@acmepost.com", volume="projects", write=True)
    ids["acl"] = acls.grant(database, admin, user="victim@acmepost.com", volume="projects").id
    del acl
    task = {"source": "share=projects/a.exr", "destination": "site=london"}
    ids["admin_job"] = jobs.submit_job(database, admin, task).id
    ids["employee_job"] = jobs.submit_job(database, actors["employee"], task).id
    hook = webhooks.create_webhook(database, admin, url="https://hooks.example/x",
                                   events=["done"])  # fmt: skip
    ids["webhook"] = hook.id
    config = ServerConfig(data_dir=tmp_path, database_url=str(database.url), tls=False)
    app = create_app(config, database, routers=routers(config, database))
    transport = httpx.ASGITransport(app=app)  # no lifespan: no background loops
    async with httpx.AsyncClient(transport=transport, base_url="http://reelsync.test") as client:
        yield Studio(client, keys, ids, "acmepost")


async def _native_routes(studio: Studio) -> list[tuple[str, str]]:
    paths = (await studio.client.get("/api/v1/openapi.json")).json()["paths"]
    found = [(m.upper(), p) for p, ops in paths.items() for m in ops]
    return [*found, ("GET", "/metrics")]


async def test_every_route_needs_credentials(studio: Studio) -> None:
    routes = await _native_routes(studio)
    assert len(routes) > 50
    for method, path in routes:
        if (method, path) in OPEN:
            continue
        concrete = re.sub(r"\{[^}]+\}", "x", path)
        body = {} if method in ("POST", "PUT", "PATCH") else None
        answer = await studio.client.request(method, concrete, json=body)
        assert answer.status_code == 401, (method, path, answer.text)
        if path.startswith("/api/v1/agent/"):  # a user's key is no agent credential
            for role in ("standard", "admin"):
                answer = await studio.call(role, method, concrete, body)
                assert answer.status_code == 401, (role, method, path, answer.text)


Body = Any | Callable[[str], Any]

#: (method, path, body or body(role), the roles allowed); admin runs last (some calls delete)
MATRIX: list[tuple[str, str, Body, frozenset[str]]] = [
    ("GET", "/api/v1/me", None, USERS),
    ("GET", "/api/v1/workspace", None, USERS),
    ("POST", "/api/v1/users", lambda r: {"email": f"new-{r}@acmepost.com"}, ADMIN),
    ("PATCH", "/api/v1/users/{victim}", {"name": "Renamed"}, ADMIN),
    ("PATCH", "/api/v1/users/{victim}", {"role": "admin"}, ADMIN),
    ("GET", "/api/v1/users/{victim}/apikeys", None, ADMIN),
    ("POST", "/api/v1/users/{victim}/apikeys", {}, ADMIN),
    ("PATCH", "/api/v1/users/{victim}/preferences", {"email_opt_out": True}, ADMIN),
    ("POST", "/api/v1/sites", lambda r: {"code": f"s-{r}"}, ADMIN),
    ("PATCH", "/api/v1/sites/london", {"name": "London"}, ADMIN),
    ("POST", "/api/v1/volumes", lambda r: {"code": f"v-{r}", "paths": {"hq": f"/m/{r}"}}, ADMIN),
    ("PATCH", "/api/v1/volumes/projects", {"name": "Projects"}, ADMIN),
    ("POST", "/api/v1/queues", lambda r: {"code": f"q-{r}"}, ADMIN),
    ("PATCH", "/api/v1/queues/proj001", {"priority": 650}, ADMIN),
    ("POST", "/api/v1/servers/tokens", {"site": "london"}, ADMIN),
    ("PATCH", "/api/v1/servers/{agent}", {"bandwidth_limit": 1000}, ADMIN),
    ("POST", "/api/v1/acls", {"user": "victim@acmepost.com", "volume": "projects"}, ADMIN),
    (
        "PUT",
        "/api/v1/settings",
        {"scope": "workspace", "key": "job_max_retries", "value": 4},
        ADMIN,
    ),  # fmt: skip
    (
        "PUT",
        "/api/v1/settings",
        {"scope": "queue", "target": "proj001", "key": "hook_post_done", "value": "/bin/true"},
        ADMIN,
    ),  # fmt: skip
    (
        "PUT",
        "/api/v1/settings",
        {"scope": "job", "target": "{employee_job}", "key": "x", "value": "1"},
        MOVERS,
    ),  # fmt: skip
    ("GET", "/api/v1/webhooks", None, ADMIN),
    ("GET", "/api/v1/webhooks/{webhook}", None, ADMIN),
    ("POST", "/api/v1/webhooks", {"url": "https://hooks.example/y", "events": ["done"]}, ADMIN),
    ("PATCH", "/api/v1/webhooks/{webhook}", {"events": ["failed"]}, ADMIN),
    ("GET", "/metrics", None, ADMIN),
    (
        "POST",
        "/api/v1/jobs",
        {"source": "share=projects/b.exr", "destination": "site=london"},
        MOVERS,
    ),  # fmt: skip
    ("GET", "/api/v1/jobs/{admin_job}", None, ADMIN),
    ("PATCH", "/api/v1/jobs/{admin_job}", {"name": "mine now"}, ADMIN),
    ("PATCH", "/api/v1/jobs/{employee_job}", {"name": "renamed"}, MOVERS),
    ("GET", "/api/v1/jobs/{employee_job}/tasks", None, MOVERS),
    ("GET", "/api/v1/files/ls?volume=projects&path=proj001", None, MOVERS),
    ("DELETE", "/api/v1/webhooks/{webhook}", None, ADMIN),
    ("DELETE", "/api/v1/acls/{acl}", None, ADMIN),
    ("POST", "/api/v1/servers/{agent}/revoke", None, ADMIN),
    ("DELETE", "/api/v1/jobs/{admin_job}?force=true", None, ADMIN),
    ("DELETE", "/api/v1/users/{victim}", None, ADMIN),
    ("DELETE", "/api/v1/queues/proj001", None, ADMIN),
]


def _denied(status: int) -> bool:
    return status in (403, 404)


async def test_the_matrix_of_roles_and_routes(studio: Studio) -> None:
    problems = []
    for role in ROLES:
        for method, path, body, allowed in MATRIX:
            if role == "anonymous":
                continue  # covered for every route above
            data = body(role) if callable(body) else body
            if isinstance(data, dict):
                data = {k: v.format(**studio.ids) if isinstance(v, str) else v
                        for k, v in data.items()}  # fmt: skip
            answer = await studio.call(role, method, path, data)
            status = answer.status_code
            # allowed: never refused (an agent-backed call may find no agent: 503)
            ok = (status < 400 or status == 503) if role in allowed else _denied(status)
            if not ok:
                problems.append(f"{role:9} {method:6} {path} -> {status} {answer.text[:150]}")
    assert not problems, "\n".join(problems)


async def _accsyn(studio: Studio, role: str, verb: str, envelope: dict[str, Any]) -> httpx.Response:
    user = f"{role}@acmepost.com" if role != "admin" else "admin@acmepost.com"
    key = studio.keys[role] or ""
    b64 = lambda text: base64.b64encode(text.encode()).decode()  # noqa: E731
    headers = {"Authorization": f"basic {b64(user)}:{b64(key)}", "X-Accsyn-Workspace": "acmepost"}
    envelope = {"workspace": studio.workspace, **envelope}
    if verb in ("GET", "DELETE"):
        from urllib.parse import quote

        return await studio.client.request(
            verb, f"/api/v3/event?{quote(json.dumps(envelope))}", headers=headers
        )
    return await studio.client.request(
        verb, "/api/v3/event", content=json.dumps(envelope).encode(), headers=headers
    )


#: accsyn events: (verb, envelope(role), roles allowed)
ACCSYN: list[tuple[str, Callable[[str], dict[str, Any]], frozenset[str]]] = [
    ("POST", lambda r: {"uri": "site/create", "data": {"code": f"as-{r}"}}, ADMIN),
    ("POST", lambda r: {"uri": "user/create", "data": {"code": f"au-{r}@acmepost.com"}}, ADMIN),
    ("POST", lambda r: {"uri": "queue/create", "data": {"code": f"aq-{r}"}}, ADMIN),
    (
        "POST",
        lambda r: {
            "uri": "job/create",
            "data": {"tasks": [{"source": "share=projects/c.exr", "destination": "site=london"}]},
        },
        MOVERS,
    ),  # fmt: skip
    ("GET", lambda r: {"uri": "user/find", "query": "email=victim@acmepost.com"}, USERS),
]


async def test_the_accsyn_api_holds_the_same_rules(
    studio: Studio, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the hq agent never answers: each allowed job/create would spend sizing's whole budget
    monkeypatch.setattr(sizing, "BUDGET_S", 0.5)
    problems = []
    for role in ("standard", "employee", "admin"):
        for verb, envelope, allowed in ACCSYN:
            answer = await _accsyn(studio, role, verb, envelope(role))
            body = answer.json()
            ok = ("result" in body) if role in allowed else answer.status_code in (403, 404)
            if not ok:
                problems.append(f"{role:9} {verb} {envelope(role)['uri']} -> {answer.text[:150]}")
    anonymous = await studio.client.post(
        "/api/v3/event", content=b'{"uri": "site/find", "workspace": "acmepost"}'
    )
    assert anonymous.status_code == 401
    assert not problems, "\n".join(problems)


async def test_a_silent_agent_does_not_hold_up_an_accsyn_submit(
    studio: Studio, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hq agent reads online but never answers (it does not poll): sizing the new job at
    its source gives up after its budget, far inside the relay's 30 s, and the job is made with
    its size left to the agents."""
    monkeypatch.setattr(sizing, "BUDGET_S", 0.5)
    started = time.monotonic()
    answer = await _accsyn(studio, "admin", "POST", {
        "uri": "job/create",
        "data": {"tasks": [{"source": "share=projects/d.exr", "destination": "site=london"}]},
    })  # fmt: skip
    elapsed = time.monotonic() - started
    assert "result" in answer.json(), answer.text
    assert answer.json()["result"][0].get("size") in (None, 0)
    assert elapsed < 15, elapsed  # the relay alone would wait 30 s


async def test_the_web_ui_sends_strangers_to_sign_in(studio: Studio) -> None:
    for path in ("/ui/", "/ui/jobs/{admin_job}", "/ui/agents", "/ui/queues", "/ui/sites"):
        answer = await studio.client.get(path.format(**studio.ids), follow_redirects=False)
        assert answer.status_code in (303, 307), (path, answer.status_code)
        assert "/ui/login" in answer.headers["location"]
    action = await studio.client.post(f"/ui/jobs/{studio.ids['admin_job']}/abort",
                                follow_redirects=False)  # fmt: skip
    assert action.status_code in (303, 307, 401, 403)
