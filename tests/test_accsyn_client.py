"""The official accsyn client (accsyn-python-api) against a real reelsync server process, over
HTTPS with a self-signed certificate, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import os
import re
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from accsyn_api.session import AccsynException, Session

from accsyn_harness import Account, Workspace, live_workspace
from reelsync.services import servers, settings

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")

ID_RE = re.compile(r"^[a-f0-9]{24}$")


@dataclass
class Env:
    ws: Workspace
    admin: Session
    employee: Session
    standard: Session
    employee_account: Account
    standard_account: Account
    volume_id: str
    site_id: str

    @property
    def port(self) -> int:
        return self.ws.port

    def session(self, account: Account, **kwargs: Any) -> Session:
        return connect(self.ws, account, **kwargs)


def connect(ws: Workspace, account: Account, **kwargs: Any) -> Session:
    return Session(
        workspace=kwargs.pop("workspace", ws.code),
        username=account.email,
        api_key=account.api_key,
        hostname="127.0.0.1",
        port=ws.port,
        path_envfile=str(ws.tmp / "no.env"),  # never read a stray ./.env
        **kwargs,
    )


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    saved = {
        k: os.environ.pop(k) for k in ("AS_DEV", "ACCSYN_PROXY", "ACCSYN_DEV") if k in os.environ
    }
    tmp = tmp_path_factory.mktemp(f"accsyn-{request.param}")
    try:
        with live_workspace(request.param, tmp) as ws:
            employee = ws.add_user(f"coordinator@{ws.code}.com", "employee")
            standard = ws.add_user("lisa@vendor.com", "standard")
            admin = connect(ws, ws.admin)
            site = admin.create("site", {"code": "london", "name": "London"})
            volume = admin.create(
                "volume",
                {"code": "projects", "paths": {"hq": str(tmp / "hq"), "london": str(tmp / "ldn")}},
            )
            yield Env(
                ws,
                admin,
                connect(ws, employee),
                connect(ws, standard),
                employee,
                standard,
                volume["id"],
                site["id"],
            )
    finally:
        os.environ.update(saved)


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


# -- login ---------------------------------------------------------------------------------------


def test_login_over_https_gives_id_and_role(env: Env) -> None:
    assert env.admin._role == "admin"
    assert ID_RE.match(env.admin._uid)
    assert env.employee._role == "employee"
    assert env.standard._role == "standard"
    assert env.admin._session_id


def test_login_with_a_bad_key_or_workspace_fails_clearly(env: Env) -> None:
    bad = Account(env.ws.admin.email, "rsk_" + "0" * 64, env.ws.admin.id)
    with pytest.raises(AccsynException, match="invalid or expired API key"):
        env.session(bad)
    wrong_user = Account(env.employee_account.email, env.ws.admin.api_key, "")
    with pytest.raises(AccsynException, match="invalid or expired API key"):
        env.session(wrong_user)
    with pytest.raises(AccsynException, match=f"hosts workspace '{env.ws.code}'"):
        env.session(env.ws.admin, workspace="otherpost")


# -- the tutorial's queue and the seeded queues --------------------------------------------------


def test_tutorial_creates_a_project_queue_as_a_job_of_type_2(env: Env) -> None:
    code = unique("proj")
    queue = env.admin.create("job", {"type": 2, "code": code})
    assert isinstance(queue, dict)
    assert ID_RE.match(queue["id"])
    assert queue["code"] == code
    assert queue["type"] == 2
    assert env.admin.find_one(f"Queue WHERE code={code}")["id"] == queue["id"]
    assert env.admin.get_entity("queue", queue["id"])["code"] == code
    assert queue["id"] in [q["id"] for q in env.admin.find("Job WHERE type=2")]
    with pytest.raises(AccsynException, match="already exists"):
        env.admin.create("job", {"type": 2, "code": code})


def test_seeded_queues(env: Env) -> None:
    medium = env.employee.find("Queue WHERE name='medium'")
    assert len(medium) == 1
    assert medium[0]["priority"] == 500
    assert medium[0]["default"] is True
    high = env.employee.find_one("Queue WHERE code=high")
    assert high["priority"] == 999
    assert "high" in [
        q["code"] for q in env.employee.find("Queue WHERE priority>=500 AND default=false")
    ]
    assert "medium" not in [
        q["code"] for q in env.employee.find("Queue WHERE priority>=500 AND default=false")
    ]


# -- find, find_one, get_entity on every entity --------------------------------------------------


def test_users(env: Env) -> None:
    me = env.admin.find_one(f"User WHERE code={env.employee_account.email}")
    assert me["id"] == env.employee_account.id
    assert me["role"] == "employee"
    assert env.admin.get_entity("user", me["id"])["code"] == env.employee_account.email
    assert {u["code"] for u in env.admin.find("User WHERE role=standard")} >= {"lisa@vendor.com"}
    # An employee sees themselves and standard users, not admins.
    assert env.employee.find_one(f"User WHERE code={env.ws.admin.email}") is None
    assert env.employee.find_one("User WHERE code=lisa@vendor.com")["role"] == "standard"
    # Create, deactivate (hidden), activate (by e-mail), delete.
    email = f"{unique('temp')}@acmepost.com"
    user = env.admin.create("user", {"code": email, "role": "employee", "name": "Temp"})
    assert user["role"] == "employee"
    assert env.admin.deactivate_one("user", user["id"]) is True
    assert env.admin.find_one(f"User WHERE code={email}") is None
    assert env.admin.get_entity("user", user["id"])["inactive"] is True
    assert env.admin.find_one(f"User WHERE code={email}", inactive=True)["id"] == user["id"]
    assert env.admin.activate_one("user", email) is True
    assert env.admin.find_one(f"User WHERE code={email}")["status"] == "enabled"
    assert env.admin.update("user", user["id"], {"name": "Renamed"})["name"] == "Renamed"
    assert env.admin.delete_one("user", user["id"]) is True
    assert env.admin.get_entity("user", user["id"]) is None


def test_volumes_and_shares(env: Env) -> None:
    volume = env.admin.find_one("Volume WHERE code=projects")
    assert volume["id"] == env.volume_id
    assert volume["default"] is True
    assert volume["type"] == "volume"
    assert env.admin.find_one("Share where default=true")["id"] == env.volume_id
    assert env.admin.get_entity("volume", env.volume_id)["code"] == "projects"
    assert env.admin.get_entity("share", env.volume_id)["code"] == "projects"
    assert env.admin.find("Folder WHERE parent=projects") == []
    # Without an ACL an employee does not see the volume (None, not an error).
    assert env.standard.find_one("Volume WHERE code=projects") is None
    assert env.admin.assignments("volume", env.volume_id) == []


def test_sites(env: Env) -> None:
    london = env.employee.find_one("Site WHERE code=london")
    assert london["id"] == env.site_id
    assert london["main"] is False
    assert env.employee.find_one("Site WHERE main=true")["code"] == "hq"
    assert env.employee.get_entity("site", env.site_id)["name"] == "London"
    code = unique("s")
    site = env.admin.create("site", {"code": code})
    assert env.admin.update("site", site["id"], {"status": "disabled"})["status"] == "disabled"
    assert env.admin.find_one(f"Site WHERE code={code}") is None
    assert env.admin.activate_one("site", site["id"]) is True
    assert env.admin.delete_one("site", site["id"]) is True


def test_servers_and_clients(env: Env) -> None:
    assert env.admin.find(f"Client WHERE user={env.ws.admin.id} AND type in 0,2") == []
    assert env.admin.find_one("App") is None
    assert env.admin.app_is_running() is None
    assert env.admin.daemon_is_running() is None
    # A site server enrolled at london (what `reelsync agent enroll` does).
    actor = env.ws.actor()
    _, token = servers.create_enrollment_token(env.ws.db, actor, "london")
    enrolled, _ = servers.enroll_server(env.ws.db, token, hostname="ldn-store-01", version="0.1.0")
    found = env.employee.find("Server WHERE roles CONTAINS storage AND site=london")
    assert [s["id"] for s in found] == [enrolled.id]
    assert found[0]["code"] == "ldn-store-01"
    assert found[0]["type"] == 1
    assert env.admin.find_one("Client WHERE code=ldn-store-01")["site_hr"] == "london"
    assert env.admin.get_entity("server", enrolled.id)["status"] == "init"
    assert [s["id"] for s in env.admin.assignments("volume", env.volume_id)] == [enrolled.id]
    assert env.admin.update("server", enrolled.id, {"status": "disabled"})["status"] == "disabled"
    with pytest.raises(AccsynException, match="only an admin"):
        env.employee.update("server", enrolled.id, {"status": "enabled"})
    # One storage server per volume: a second london server is assigned an other volume only,
    # so it no longer serves projects; the first (no assignments) serves every volume there.
    _, token = servers.create_enrollment_token(env.ws.db, actor, "london")
    second, _ = servers.enroll_server(env.ws.db, token, hostname="ldn-store-02")
    other = env.admin.create("volume", {"code": unique("v"), "paths": {"london": "/data/x"}})
    both = {enrolled.id, second.id}
    assert {s["id"] for s in env.admin.assignments("volume", env.volume_id)} == both
    pair = {"volume": other["id"], "server": second.id}
    assert env.admin.assign("volume", "server", pair) is True
    assert [s["id"] for s in env.admin.assignments("volume", env.volume_id)] == [enrolled.id]
    assert {s["id"] for s in env.admin.assignments("volume", other["id"])} == both
    assert env.admin.deassign("volume", "server", pair) is True
    assert {s["id"] for s in env.admin.assignments("volume", env.volume_id)} == both
    with pytest.raises(AccsynException, match="is not assigned to volume"):
        env.admin.deassign("volume", "server", pair)
    hq_only = env.admin.create("volume", {"code": unique("v"), "paths": {"hq": "/data/y"}})
    with pytest.raises(AccsynException, match="has no path at site london"):
        env.admin.assign("volume", "server", {"volume": hq_only["id"], "server": second.id})
    # A server's notes, and what it reports of itself.
    noted = env.admin.update("server", second.id, {"description": "rack 2", "metadata": {"u": 2}})
    assert (noted["description"], noted["metadata"]) == ("rack 2", {"u": 2})
    assert {"os", "username", "wan_ip", "description"} <= set(noted)
    for volume in (other, hq_only):
        env.admin.delete_one("volume", volume["id"])
    assert env.admin.delete_one("server", second.id) is True
    assert env.admin.delete_one("server", enrolled.id) is True
    assert env.admin.get_entity("server", enrolled.id) is None


# -- jobs ----------------------------------------------------------------------------------------


def src(name: str) -> str:
    return f"share=projects/proj001/sc0010/{name}"


def submit(session: Session, name: str, *files: str, **extra: Any) -> dict[str, Any]:
    job = session.create(
        "transfer",
        {
            "name": name,
            "tasks": [{"source": src(f), "destination": "site=london"} for f in files],
            **extra,
        },
    )
    assert isinstance(job, dict)
    return job


def tasks_of(session: Session, job_id: str, where: str = "") -> list[dict[str, Any]]:
    query = f"Task WHERE job.id={job_id}" + (f" AND {where}" if where else "")
    return session.find(query)


def test_job_forms_a_b_c(env: Env) -> None:
    a = env.admin.create(
        "job", {"name": unique("formA "), "source": src("a.exr"), "destination": "site=london"}
    )
    assert ID_RE.match(a["id"])
    assert a["status"] == "waiting"
    assert a["type"] == 1
    assert a["user"] == env.ws.admin.id
    assert [t["uri"] for t in tasks_of(env.admin, a["id"])] == ["0"]

    b = env.admin.create(
        "transfer",
        {
            "name": unique("formB "),
            "queue": "High",
            "tasks": [
                {"source": src("b1.exr"), "destination": "site=london"},
                {"source": src("b2.exr"), "destination": "site=london"},
            ],
        },
    )
    assert b["queue_hr"] == "high"
    tasks = tasks_of(env.admin, b["id"])
    assert [t["uri"] for t in tasks] == ["0", "1"]
    assert tasks[1]["source"]["path"] == "proj001/sc0010/b2.exr"
    assert tasks[1]["job_hr"] == b["name"]
    assert tasks[1]["time"] is not None
    assert tasks[1]["destination"]["path"] == "proj001/sc0010/b2.exr"  # mirrored

    c = env.admin.create(
        "job",
        {
            "name": unique("formC "),
            "tasks": {
                "0": {"source": src("c0.exr"), "destination": "site=london"},
                "7": {"source": src("c7.exr"), "destination": "site=london"},
            },
        },
    )
    assert sorted(t["uri"] for t in tasks_of(env.admin, c["id"])) == ["0", "7"]
    # find, find_one, get_entity
    assert env.admin.find_one(f'Transfer WHERE name="{c["name"]}"')["id"] == c["id"]
    assert env.admin.get_entity("job", c["id"])["name"] == c["name"]
    assert c["id"] in [j["id"] for j in env.admin.find("Job WHERE type=1")]
    assert env.admin.find(f"Transfer WHERE id={b['id']}")[0]["queue"] == b["queue"]
    assert b["id"] in [
        j["id"] for j in env.admin.find("Job WHERE destination=london AND queue=high")
    ]
    assert b["id"] in [j["id"] for j in env.admin.find(f"Job WHERE user={env.ws.admin.email}")]
    task = env.admin.find_one(f"Task WHERE job.id={c['id']} AND uri=7")
    assert task["source"]["path"] == "proj001/sc0010/c7.exr"
    names = {j["name"] for j in env.admin.find("Transfer WHERE name contains 'form'")}
    assert {a["name"], b["name"], c["name"]} <= names


def test_the_site_sync_scripts_jobs(env: Env) -> None:
    """The spec's remote-office sync job, pushed to london and pulled back, found again by name."""
    queue = env.admin.find_one("Queue WHERE code=proj001") or env.admin.create(
        "job", {"type": 2, "code": "proj001"}
    )
    name = unique("proj001 download london ")
    down = env.admin.create(
        "Transfer",
        {
            "name": name,
            "queue": "proj001",
            "mirror_paths": True,
            "tasks": [
                {
                    "source": "share=projects/proj001/sc0010/sh0010/scans",
                    "destination": "site=london",
                }
            ],
        },
    )
    assert down["queue"] == queue["id"]
    assert down["destination_hr"] == "site=london"
    assert env.admin.find_one(f'Transfer WHERE name="{name}"')["id"] == down["id"]
    up = env.admin.create(
        "Transfer",
        {
            "name": unique("proj001 upload london "),
            "queue": "proj001",
            "tasks": [{"source": "site=london:share=projects/proj001/sc0010/sh0010/comp/"}],
            "destination": "site=hq",
        },
    )
    task = tasks_of(env.admin, up["id"])[0]
    assert task["source"]["site"] == "london"
    assert task["destination"]["site"] == "hq"
    assert task["destination"]["path"] == "proj001/sc0010/sh0010/comp"


def test_append_continues_uris_and_applies_the_duplicate_rule(env: Env) -> None:
    job = submit(env.admin, unique("append "), "x0.exr", "x1.exr")
    added = env.admin.create(
        "task", {"tasks": [{"source": src("x2.exr"), "destination": "site=london"}]}, job["id"]
    )
    assert added["uri"] == "2"
    assert added["job"] == job["id"]
    # The same file again re-queues the existing task instead of adding one.
    env.admin.update_many("task", job["id"], [{"uri": "0", "status": "done"}])
    again = env.admin.create(
        "task", {"source": src("x0.exr"), "destination": "site=london"}, job["id"]
    )
    assert again["uri"] == "0"
    assert again["status"] == "queued"
    assert len(tasks_of(env.admin, job["id"])) == 3
    # allow_duplicates=False: an error, and nothing changes.
    with pytest.raises(AccsynException, match="(?i)duplicate|already"):
        env.admin.create(
            "task",
            [
                {"source": src("x3.exr"), "destination": "site=london"},
                {"source": src("x1.exr"), "destination": "site=london"},
            ],
            job["id"],
            allow_duplicates=False,
        )
    assert [t["uri"] for t in tasks_of(env.admin, job["id"])] == ["0", "1", "2"]
    # append:true on a new submit goes to the same job.
    more = env.admin.create(
        "transfer",
        {"append": True, "tasks": [{"source": src("x4.exr"), "destination": "site=london"}]},
    )
    assert more["id"] == job["id"]
    assert [t["uri"] for t in tasks_of(env.admin, job["id"])] == ["0", "1", "2", "3"]


def test_update_many_by_uri_and_the_job_status_rules(env: Env) -> None:
    job = submit(env.admin, unique("rules "), "r0.exr", "r1.exr", "r2.exr")
    changed = env.admin.update_many("task", job["id"], [{"uri": "2", "status": "onhold"}])
    assert [(t["uri"], t["status"]) for t in changed] == [("2", "onhold")]
    env.admin.update_many(
        "task", job["id"], [{"uri": "0", "status": "excluded"}, {"uri": "1", "status": "excluded"}]
    )
    # Only on-hold tasks left: the job is paused.
    assert env.admin.get_entity("job", job["id"])["status"] == "paused"
    assert [t["uri"] for t in tasks_of(env.admin, job["id"], "status!=excluded")] == ["2"]
    env.admin.update_many("task", job["id"], [{"uri": "2", "status": "excluded"}])
    # Only excluded tasks left: done, so a plain find leaves it out, find_one still sees it.
    assert env.admin.get_entity("job", job["id"])["status"] == "done"
    assert job["id"] not in [j["id"] for j in env.admin.find("Transfer")]
    assert env.admin.find_one(f"Transfer WHERE id={job['id']}")["status"] == "done"
    assert job["id"] in [j["id"] for j in env.admin.find("Transfer", finished=True)]
    # New tasks revive it.
    env.admin.create("task", {"source": src("r3.exr"), "destination": "site=london"}, job["id"])
    assert env.admin.get_entity("job", job["id"])["status"] != "done"
    with pytest.raises(AccsynException, match="priority"):
        env.admin.update_many("task", job["id"], [{"uri": "3", "priority": 5000}])


def test_job_status_edits(env: Env) -> None:
    job = submit(env.admin, unique("status "), "s0.exr")
    assert env.admin.update("job", job["id"], {"status": "paused"})["status"] == "paused"
    assert env.admin.update("job", job["id"], {"status": "waiting"})["status"] == "waiting"
    with pytest.raises(AccsynException, match="cannot be set to 'running'"):
        env.admin.update("job", job["id"], {"status": "running"})
    assert env.admin.get_entity("job", job["id"])["status"] == "waiting"
    assert env.admin.update("job", job["id"], {"status": "aborted"})["status"] == "aborted"
    assert env.admin.find_one(f"Job WHERE id={job['id']}")["status"] == "aborted"
    assert env.admin.update("job", job["id"], {"status": "waiting"})["status"] == "waiting"
    assert env.admin.delete_one("transfer", job["id"], {"force": True}) is True
    assert env.admin.get_entity("job", job["id"]) is None


# -- ACLs ----------------------------------------------------------------------------------------


def test_grant_access_revoke(env: Env) -> None:
    employee = env.employee_account
    assert env.employee.find_one("Volume WHERE code=projects") is None
    with pytest.raises(AccsynException, match="no read access|no write access|permission|access"):
        submit(env.employee, unique("denied "), "e0.exr")
    acl = env.admin.grant(
        "user", employee.email, "volume", "projects", {"read": True, "write": True}
    )
    assert ID_RE.match(acl["id"])
    assert acl["entity"] == f"user:{employee.id}"
    assert acl["target"] == f"share:{env.volume_id}"
    assert acl["read"] is True
    assert acl["write"] is True
    assert acl["path"] == "/"
    assert "created" in acl
    assert env.admin.get_entity("acl", acl["id"])["entity_hr"] == employee.email
    assert env.admin.find_one(f"acl WHERE entity=user:{employee.email}")["id"] == acl["id"]
    # The same access again changes nothing and answers the ACL; a change answers true.
    assert env.admin.grant("user", employee.id, "volume", env.volume_id)["id"] == acl["id"]
    changed = env.admin.grant(
        "user", employee.id, "volume", env.volume_id, {"read": True, "write": False}
    )
    assert changed is True
    assert env.admin.get_entity("acl", acl["id"])["write"] is False
    assert env.admin.grant("user", employee.id, "volume", env.volume_id) is True
    access = env.admin.access("volume", env.volume_id)
    mine = [a for a in access if a["user"] == employee.id]
    assert len(mine) == 1
    assert mine[0]["user_hr"] == employee.email
    # Now the employee sees the volume and may transfer from it.
    assert env.employee.find_one("Volume WHERE code=projects")["id"] == env.volume_id
    job = submit(env.employee, unique("granted "), "e1.exr")
    assert job["user_hr"] == employee.email
    assert env.standard.get_entity("job", job["id"]) is None  # not theirs
    # A standard user with read access on a sub-path.
    lisa = env.standard_account
    sub = env.admin.grant(
        "user", lisa.email, "volume", env.volume_id, {"read": True, "path": "proj001/sc0010"}
    )
    assert sub["path"] == "/proj001/sc0010"
    assert env.standard.find_one("Volume WHERE code=projects")["id"] == env.volume_id
    # Only an admin grants.
    with pytest.raises(AccsynException, match="only an admin"):
        env.employee.grant("user", lisa.email, "volume", env.volume_id)
    assert env.admin.revoke("user", lisa.email, "volume", env.volume_id) is True
    assert env.standard.find_one("Volume WHERE code=projects") is None
    assert env.admin.revoke("user", employee.id, "volume", env.volume_id) is True
    assert env.employee.find_one("Volume WHERE code=projects") is None
    assert env.admin.revoke("user", employee.id, "volume", env.volume_id) is False


def test_grant_invites_unknown_emails(env: Env) -> None:
    email = f"{unique('vendor')}@example.com"
    acl = env.admin.grant("user", email, "volume", "projects", {"read": True})
    assert acl["entity_hr"] == email
    invited = env.admin.find_one(f"User WHERE code={email}")
    assert invited["role"] == "standard"
    email = f"{unique('bad')}@example.com"
    with pytest.raises(AccsynException, match=r"'\.\.' is not allowed"):
        env.admin.grant("user", email, "volume", "projects", {"read": True, "path": "../x"})
    assert env.admin.find_one(f"User WHERE code={email}", inactive=True) is None
    with pytest.raises(AccsynException, match="invite"):
        env.admin.grant(
            "user",
            f"{unique('x')}@example.com",
            "volume",
            "projects",
            {"read": True, "invite": False},
        )


# -- errors: one clear message, nothing changed ---------------------------------------------------


def test_errors_change_nothing(env: Env) -> None:
    jobs_before = len(env.admin.find("Transfer", finished=True))
    with pytest.raises(AccsynException, match="no queue 'nosuchqueue'"):
        submit(env.admin, unique("bad queue "), "q.exr", queue="nosuchqueue")
    with pytest.raises(AccsynException, match="volume"):
        env.admin.create(
            "transfer", {"source": "share=nosuchvolume/a", "destination": "site=london"}
        )
    with pytest.raises(AccsynException, match="site"):
        env.admin.create("transfer", {"source": src("a"), "destination": "site=nowhere"})
    with pytest.raises(AccsynException, match=r"\.\."):
        env.admin.create(
            "transfer", {"source": "share=projects/../etc/passwd", "destination": "site=london"}
        )
    assert len(env.admin.find("Transfer", finished=True)) == jobs_before
    # Unknown ids.
    assert env.admin.get_entity("job", "0" * 24) is None
    with pytest.raises(AccsynException, match="no job"):
        env.admin.update("job", "0" * 24, {"status": "paused"})
    with pytest.raises(AccsynException, match="no user"):
        env.admin.update("user", "not-an-id", {"name": "x"})
    # Malformed queries say where they fail.
    with pytest.raises(AccsynException, match="query syntax error at (position|the end)"):
        env.admin.find("Job WHERE code=='x' AND")
    with pytest.raises(AccsynException, match="query syntax error"):
        env.admin.find("Job WHERE (code=x")
    # Missing permission.
    sites_before = len(env.admin.find("Site", inactive=True))
    with pytest.raises(AccsynException, match="only an admin"):
        env.employee.create("site", {"code": "rogue"})
    with pytest.raises(AccsynException, match="only an admin"):
        env.employee.create("job", {"type": 2, "code": "rogue"})
    with pytest.raises(AccsynException, match="(?i)standard users may not"):
        submit(env.standard, unique("std "), "s.exr")
    assert len(env.admin.find("Site", inactive=True)) == sites_before
    assert env.admin.find_one("Queue WHERE code=rogue") is None


def test_unsupported_features_say_so(env: Env) -> None:
    with pytest.raises(AccsynException, match="deliveries are not supported"):
        env.admin.create("delivery", {"tasks": [src("d.exr")]})
    with pytest.raises(AccsynException, match="not supported"):
        env.admin.find("Compute")
    assert env.admin.metrics("Job WHERE code=x") == {}  # jobs have metrics; none match
    with pytest.raises(AccsynException, match="not supported"):
        env.admin.metrics("Site WHERE code=hq")
    with pytest.raises(AccsynException, match="not supported"):
        env.admin.get_api_key()
    with pytest.raises(AccsynException, match="no agent serves volume 'projects'"):
        env.admin.ls("share=projects/proj001")
    with pytest.raises(AccsynException, match="no agent serves volume 'projects'"):
        env.admin.exists("share=projects/proj001")
    with pytest.raises(AccsynException, match="folders and homes are not supported"):
        env.admin.create("folder", {"parent": env.volume_id, "path": "x", "code": "x"})


# -- discovery, settings, logs -------------------------------------------------------------------


def test_workspace(env: Env) -> None:
    ws = env.standard.find_one("Workspace")
    assert ws["code"] == env.ws.code
    assert env.admin.get_entity("workspace", ws["id"])["code"] == env.ws.code


def test_entitytypes_and_attributes(env: Env) -> None:
    for session in (env.admin, env.employee, env.standard):
        types = session.find("entitytypes")
        assert "user" in types
        assert len(types) > 2
    assert "code" in env.employee.find("attributes WHERE entitytype=job")
    assert "priority" in env.admin.find("attributes WHERE entitytype=queue", create=True)
    assert "status" in env.admin.find("attributes WHERE entitytype=task", update=True)


def test_settings(env: Env) -> None:
    medium = env.admin.find_one("Queue WHERE name='medium'")
    assert env.admin.set_setting("job", "compute_avoid", "render01", entityid=medium["id"]) is True
    assert env.admin.get_setting("compute_avoid", "job", medium["id"]) == "render01"
    assert env.admin.get_settings("queue", medium["id"])["compute_avoid"] == "render01"
    assert env.admin.set_setting("workspace", "transfer_speedlimit", "100") is True
    assert env.admin.get_setting("transfer_speedlimit") == "100"
    assert env.admin.delete_setting("job", "compute_avoid", entityid=medium["id"]) is True
    assert "compute_avoid" not in env.admin.get_settings("queue", medium["id"])
    assert env.employee.set_setting("user", "email_opt_out", "true") is True
    assert env.employee.get_setting("email_opt_out", "user") == "true"
    assert env.admin.get_setting("email_opt_out", "user", env.employee_account.id) == "true"
    with pytest.raises(AccsynException, match="another user's settings"):
        env.standard.get_setting("email_opt_out", "user", env.employee_account.id)
    with pytest.raises(AccsynException, match="only an admin"):
        env.employee.set_setting("workspace", "transfer_speedlimit", "1")
    assert env.admin.get_setting("transfer_speedlimit") == "100"


def test_logs(env: Env) -> None:
    job = submit(env.admin, unique("logged "), "l.exr")
    reply = env.admin.logs("job", job["id"])
    assert reply["result"][0]["message"].startswith(f"job {job['name']!r} submitted")
    assert "date" in reply["result"][0]
    assert isinstance(env.admin.logs(search="submitted", pagination_limit=2)["result"], list)


def test_big_payloads_are_gzipped_by_the_client(env: Env) -> None:
    files = [f"frame_{'x' * 60}.{i:05d}.exr" for i in range(1500)]
    job = submit(env.admin, unique("big "), *files)
    tasks = tasks_of(env.admin, job["id"])
    assert len(tasks) == 1500
    assert tasks[-1]["uri"] == "1499"


# -- the wire itself, and the 3.0/3.1 variants ----------------------------------------------------


def raw(
    env: Env,
    verb: str,
    envelope: dict[str, Any] | None,
    *,
    account: Account | None = None,
    uri: str = "/event",
    body: bytes | None = None,
) -> dict[str, Any]:
    account = account or env.ws.admin
    b64 = Session._base64_encode
    headers = {
        "Authorization": f"basic {b64(account.email)}:{b64(account.api_key)}",
        "X-Accsyn-Workspace": env.ws.code,
    }
    url = f"https://127.0.0.1:{env.port}/api/v3{uri}"
    with httpx.Client(verify=False, timeout=30) as client:  # noqa: S501 - self-signed, like the client
        if verb in ("GET", "DELETE"):
            query = Session._url_quote(envelope) if envelope is not None else ""
            response = client.request(verb, f"{url}?{query}" if query else url, headers=headers)
        else:
            content = body if body is not None else Session._safe_dumps(envelope).encode()
            response = client.request(verb, url, content=content, headers=headers)
    reply = response.json()
    assert isinstance(reply, dict)
    assert ("result" in reply) != ("message" in reply)
    return reply


def test_older_clients_domain_key_and_job_task_uris(env: Env) -> None:
    login = raw(env, "PUT", {"session_id": None}, uri="/api/login")
    assert login["result"]["role"] == "admin"
    code = unique("old")
    queue = raw(
        env,
        "POST",
        {
            "domain": env.ws.code,
            "uri": "job/create",
            "data": {"type": 2, "code": code, "allow_duplicates": True},
        },
    )
    assert queue["result"][0]["type"] == 2
    found = raw(
        env,
        "GET",
        {"domain": env.ws.code, "uri": "job/find", "data": {"type": 2}, "query": f"code={code}"},
    )
    assert [q["id"] for q in found["result"]] == [queue["result"][0]["id"]]
    job = submit(env.admin, unique("old "), "o0.exr")
    added = raw(
        env,
        "POST",
        {
            "domain": env.ws.code,
            "uri": "job/task/create",
            "query": job["id"],
            "data": {
                "tasks": [{"source": src("o1.exr"), "destination": "site=london"}],
                "allow_duplicates": True,
            },
        },
    )
    assert added["result"][0]["uri"] == "1"
    listed = raw(
        env, "GET", {"domain": env.ws.code, "uri": "job/task/find", "query": job["id"], "data": {}}
    )
    assert [t["uri"] for t in listed["result"]] == ["0", "1"]
    edited = raw(
        env,
        "PUT",
        {
            "domain": env.ws.code,
            "uri": "job/task/edit",
            "id": job["id"],
            "data": [{"uri": "1", "status": "onhold"}],
        },
    )
    assert edited["result"][0]["status"] == "onhold"
    medium = env.admin.find_one("Queue WHERE code=medium")
    setting = {"scope": "queue", "name": "transfer_mode", "ident": medium["id"], "value": "copy"}
    assert raw(env, "PUT", {"domain": env.ws.code, "uri": "setting", "data": setting})["result"]
    read = {k: v for k, v in setting.items() if k != "value"}
    got = raw(env, "GET", {"domain": env.ws.code, "uri": "setting", "data": read})
    assert got["result"] == "copy"
    email = f"{unique('off')}@acmepost.com"
    user = env.admin.create("user", {"code": email})
    assert (
        raw(
            env,
            "DELETE",
            {"domain": env.ws.code, "uri": "user/offline", "id": user["id"], "data": {}},
        )["result"]
        is True
    )
    assert env.admin.find_one(f"User WHERE code={email}", offline=True)["id"] == user["id"]


def test_wire_errors_are_messages(env: Env) -> None:
    assert "unknown accsyn endpoint" in raw(env, "GET", None, uri="/nothing")["message"]
    assert "no event" in raw(env, "GET", None)["message"]
    assert "not valid JSON" in raw(env, "POST", None, body=b"{oops")["message"]
    assert (
        "unknown entity type 'spaceship'"
        in raw(env, "GET", {"workspace": env.ws.code, "uri": "spaceship/find"})["message"]
    )
    assert (
        "unknown operation"
        in raw(env, "GET", {"workspace": env.ws.code, "uri": "queue/explode"})["message"]
    )
    wrong = raw(env, "GET", {"workspace": "other", "uri": "queue/find"})
    assert f"hosts workspace '{env.ws.code}'" in wrong["message"]
    assert wrong["message_hr"]
    lookup = raw(env, "GET", {"ident": env.ws.code}, uri="/J3PKTtDvolDMBtTy6AFGA")
    assert lookup["result"]["port"] == env.port


def test_long_get_envelopes_fit_in_the_request_line(env: Env) -> None:
    # GET sends the whole envelope in the query string: a long query must still be served.
    names = ",".join(f"proj{i:05d}" for i in range(4000))
    assert len(names) > 32_000
    found = env.admin.find(f"Queue WHERE code in {names},medium")
    assert [q["code"] for q in found] == ["medium"]


# -- the pre-submit hook ---------------------------------------------------------------------------


def test_the_pre_submit_hook_judges_accsyn_submits(env: Env) -> None:
    """The server's real pre-submit hook (the admin's command, ``hook_pre_submit`` on a queue) runs
    for jobs the official client creates, in each job form: a refusal reaches the client as the
    hook's own message and writes nothing; an accepted job is created as submitted."""
    tmp = env.ws.tmp
    seen = tmp / "hook-seen.jsonl"
    script = tmp / "pre_submit.py"
    script.write_text(
        "import json, sys\n"
        "job = json.load(open(sys.argv[1]))\n"
        f"open({str(seen)!r}, 'a').write(json.dumps(job) + '\\n')\n"
        "if 'forbidden' in job['name']:\n"
        "    sys.stderr.write('job names with forbidden are not allowed on hooked\\n')\n"
        "    sys.exit(3)\n"
    )
    queue = env.admin.create("queue", {"code": unique("hooked"), "priority": 300})
    actor = env.ws.actor()
    settings.set_setting(
        env.ws.db, actor, scope="queue", target=queue["code"], key="hook_pre_submit",
        value=f"{sys.executable} {script} ${{PATH_JSON_INPUT}}",
    )  # fmt: skip
    forms = [
        ("job", {"source": src("h.exr"), "destination": "site=london"}),
        ("transfer", {"tasks": [{"source": src("h1.exr"), "destination": "site=london"}]}),
        ("job", {"tasks": {"4": {"source": src("h4.exr"), "destination": "site=london"}}}),
    ]
    for kind, form in forms:
        name = unique("forbidden ")
        with pytest.raises(AccsynException) as refused:
            env.admin.create(kind, {"name": name, "queue": queue["code"], **form})
        assert (
            str(refused.value).count(
                "the pre-submit hook rejected the job: job names with forbidden are not allowed on "
                "hooked"
            )
            == 1
        ), str(refused.value)
        assert env.admin.find(f'Job WHERE name="{name}"') == []  # nothing written
        fine = env.admin.create(kind, {"name": unique("fine "), "queue": queue["code"], **form})
        assert fine["status"] == "waiting"
        assert len(tasks_of(env.admin, fine["id"])) == 1
    documents = [json.loads(line) for line in seen.read_text().splitlines()]
    assert len(documents) == 6  # every submit went through the hook, refused or not
    assert {d["user"] for d in documents} == {env.ws.admin.email}
    assert {d["queue"] for d in documents} == {queue["code"]}
    assert {d["hook"] for d in documents} == {"pre-submit"}
    assert all(len(d["tasks"]) == 1 for d in documents)
    # a queue without the hook is not judged by it
    other = env.admin.create(
        "job", {"name": unique("forbidden "), "source": src("o.exr"), "destination": "site=london"}
    )
    assert other["status"] == "waiting"
    assert len(seen.read_text().splitlines()) == 6


def test_a_refused_note_leaves_the_create_or_edit_undone(env: Env) -> None:
    """description/metadata are written in the create's or edit's own transaction."""
    bad = {"metadata": ["not", "an", "object"]}
    site, user, volume = unique("s"), f"{unique('u')}@example.com", unique("v")
    with pytest.raises(AccsynException, match="metadata must be a JSON object"):
        env.admin.create("site", {"code": site, **bad})
    assert env.admin.find_one(f"Site WHERE code={site}", inactive=True) is None
    with pytest.raises(AccsynException, match="metadata must be a JSON object"):
        env.admin.create("user", {"code": user, "role": "employee", **bad})
    assert env.admin.find_one(f"User WHERE code='{user}'", inactive=True) is None
    with pytest.raises(AccsynException, match="metadata must be a JSON object"):
        env.admin.create("volume", {"code": volume, "paths": {"hq": "/x"}, **bad})
    assert env.admin.find_one(f"Volume WHERE code={volume}", inactive=True) is None
    queue = unique("q")
    with pytest.raises(AccsynException, match="metadata must be a JSON object"):
        env.admin.create("job", {"type": 2, "code": queue, **bad})
    assert env.admin.find_one(f"Queue WHERE code={queue}") is None
    # An edit whose description is refused keeps the old name.
    made = env.admin.create("site", {"code": site, "name": "Before"})
    with pytest.raises(AccsynException, match="description"):
        env.admin.update("site", made["id"], {"name": "After", "description": "x" * 5000})
    assert env.admin.get_entity("site", made["id"])["name"] == "Before"
    assert env.admin.delete_one("site", made["id"]) is True
