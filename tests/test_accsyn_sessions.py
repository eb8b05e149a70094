"""Every public method of the published accsyn client's ``Session`` (accsyn-python-api 3.4.0),
called as a studio script would, against a real control plane (HTTPS, self-signed) with real
agents at ``hq`` and ``london``. ``test_every_public_method_is_called`` keeps the list honest:
a method the client gains fails it until a test here calls it.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import webbrowser
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from accsyn_api.session import AccsynException, Session

from support.agents import RunningAgent, running_agent, wait_until
from support.servers import RunningServer, running_server

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning"),
]


@dataclass
class Studio:
    server: RunningServer
    admin: Session
    employee: Session
    employee_id: str
    roots: dict[str, Path]
    agents: dict[str, RunningAgent]

    def wait_job(self, job_id: str, status: str = "done") -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            job = self.admin.get_entity("transfer", job_id)
            assert job["status"] not in ("failed", "aborted") or status in ("failed", "aborted")
            return job if job["status"] == status else None

        found: dict[str, Any] = wait_until(check, 120, f"job {job_id} {status}")
        return found


def _session(server: RunningServer, email: str, key: str, tmp: Path) -> Session:
    return Session(
        workspace=server.workspace,
        username=email,
        api_key=key,
        hostname="127.0.0.1",
        port=server.port,
        path_envfile=str(tmp / "no.env"),
    )


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Studio]:
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith(("ACCSYN_", "AS_DEV"))}
    tmp = tmp_path_factory.mktemp("sessions")
    roots = {site: tmp / f"{site}-root" for site in ("hq", "london")}
    for root in roots.values():
        root.mkdir()
    try:
        with running_server(tmp / "cp") as server:
            with server.session() as native:
                native.create("site", {"code": "london"})
                paths = {s: str(r) for s, r in roots.items()}
                native.create("volume", {"code": "projects", "default": True, "paths": paths})
            made = server.cli("user", "create", "coord@acme.test", "--role", "employee", "--json")
            assert made.returncode == 0, made.stderr
            key = server.cli("user", "apikey", "create", "coord@acme.test", "--json")
            assert key.returncode == 0, key.stderr
            employee_id = json.loads(made.stdout)["id"]
            employee_key = json.loads(key.stdout)["api_key"]
            with (
                running_agent(server, "hq", tmp / "hq-agent") as hq,
                running_agent(server, "london", tmp / "london-agent") as london,
            ):
                hq.wait_online()
                london.wait_online()
                yield Studio(
                    server,
                    _session(server, server.admin, server.api_key, tmp),
                    _session(server, "coord@acme.test", employee_key, tmp),
                    employee_id,
                    roots,
                    {"hq": hq, "london": london},
                )
    finally:
        os.environ.update(saved)


def _quietly(call: Any, *args: Any) -> Any:
    try:
        return call(*args)
    except AccsynException:
        return None


def _frames(root: Path, folder: str, frames: list[int]) -> None:
    (root / folder).mkdir(parents=True, exist_ok=True)
    for frame in frames:
        (root / folder / f"plate.{frame:04d}.exr").write_bytes(b"f%d" % frame * 100)


def test_session_basics(studio: Studio) -> None:
    admin = studio.admin
    assert Session.get_hostname()
    assert admin.username == studio.server.admin
    assert admin.timeout > 0
    assert admin.connect_timeout > 0
    assert "user" in admin.find("entitytypes")
    assert "description" in admin.find("attributes WHERE entitytype=site")
    with pytest.raises(AccsynException, match="job has no attribute 'colour'"):
        admin.find("Job WHERE colour=red")
    assert admin.get_last_message() is None  # 3.4.0 never sets it
    assert '"a": 1' in Session.dump({"a": 1})
    assert '"a": 1' in Session.str({"a": 1})
    opened: list[str] = []
    original = webbrowser.open
    webbrowser.open = lambda url, *a, **k: opened.append(url) or True  # type: ignore[assignment]
    try:
        admin.help()
    finally:
        webbrowser.open = original
    assert opened == ["https://accsyn-python-api.readthedocs.io/en/latest/"]
    # No desktop apps or user servers in reelsync: the checks answer None, not an error.
    assert admin.app_is_running() is None
    assert admin.gui_is_running() is None
    assert admin.daemon_is_running() is None
    assert admin.server_is_running() is None


def test_entities_notes_and_workspace(studio: Studio) -> None:
    admin = studio.admin
    site = admin.create("Site", {"name": "Stockholm", "description": "Nordic office"})
    assert (site["code"], site["description"]) == ("stockholm", "Nordic office")
    assert site["creator"] == admin.find_one(f"User WHERE code='{studio.server.admin}'")["id"]
    edited = admin.update("site", site["id"], {"metadata": {"floor": 3}})
    assert edited["metadata"] == {"floor": 3}
    assert edited["modifier"] == site["creator"]
    assert admin.find_one("Site WHERE description='nordic office'")["id"] == site["id"]
    assert (
        admin.update_one("site", site["id"], {"description": "Nordic"})["description"] == "Nordic"
    )
    queue = admin.create("job", {"type": 2, "code": "proj001", "description": "Project 1"})
    assert admin.find_one("Queue WHERE code=proj001")["description"] == "Project 1"
    user = admin.find_one("User WHERE code='coord@acme.test'")
    noted = admin.update("user", user["id"], {"description": "coordinator", "metadata": {"k": 1}})
    assert (noted["description"], noted["metadata"]) == ("coordinator", {"k": 1})
    ws = admin.update("workspace", admin.find_one("Workspace")["id"], {"name": "Acme Post"})
    assert ws["name"] == "Acme Post"
    # accsyn's per-OS volume paths: the hq agent (linux) serves the linux one.
    refs_root = studio.roots["hq"].parent / "refs-linux"
    refs_root.mkdir()
    (refs_root / "ref.jpg").write_bytes(b"r" * 10)
    refs = admin.create(
        "Volume",
        {"code": "refs", "paths": {"linux": str(refs_root), "windows": "R:\\refs"},
         "email": ["vfx@acme.test"], "description": "references"},
    )  # fmt: skip
    assert (refs["path"], refs["email"]) == (str(refs_root), ["vfx@acme.test"])
    renamed = admin.update("volume", refs["id"], {"code": "references"})
    assert renamed["code"] == "references"
    # The agent learns the new code at its next heartbeat.
    assert wait_until(lambda: _quietly(admin.exists, "volume=references/ref.jpg"), 60, "served")
    admin.delete_one("volume", refs["id"])
    admin.delete_one("job", queue["id"])
    assert admin.offline_one("site", site["id"]) is True
    assert admin.find_one("Site WHERE code=stockholm") is None
    assert admin.activate_one("site", site["id"]) is True
    assert admin.deactivate_one("site", site["id"]) is True
    assert admin.delete_one("site", site["id"]) is True


def test_files_on_the_agents(studio: Studio) -> None:
    admin = studio.admin
    assert admin.mkdir("share=projects/files") is True
    with pytest.raises(AccsynException, match="already exists"):
        admin.mkdir("share=projects/files")
    (studio.roots["hq"] / "files" / "a.exr").write_bytes(b"a" * 100)
    (studio.roots["hq"] / "files" / "b.dpx").write_bytes(b"b" * 50)
    assert admin.exists("share=projects/files/a.exr") is True
    assert admin.getsize("share=projects/files") == 150
    assert admin.getsize("share=projects/files", include="*.exr") == 100
    names = {i["filename"] for i in admin.ls("share=projects/files")}
    assert names == {"a.exr", "b.dpx"}
    assert admin.rename("share=projects/files/a.exr", "share=projects/files/c.exr") is True
    assert admin.mv("share=projects/files/c.exr", "share=projects/files/d.exr") is True
    assert admin.delete("share=projects/files/d.exr") is True
    assert admin.exists("share=projects/files/d.exr") is False
    assert admin.delete("share=projects/files", force=True) is True


def test_jobs_tasks_reports(studio: Studio) -> None:
    admin = studio.admin
    _frames(studio.roots["hq"], "proj001/sc0010/plates", [1001, 1002, 1003, 1005])
    # A sequence without its range: every frame present at the source.
    job = admin.create(
        "Transfer",
        {"name": "plates to london", "destination": "site=london", "status": "paused",
         "source": "share=projects/proj001/sc0010/plates/plate.%04d.exr"},
    )  # fmt: skip
    # Its size is known though it is paused: measured at the source agent at submit.
    sizes = [len(b"f%d" % f * 100) for f in (1001, 1002, 1003, 1005)]
    assert job["size"] == sum(sizes)
    assert admin.find_one(f"Transfer WHERE id={job['id']} AND size>0")["status"] == "paused"
    assert job["source"].startswith("site:")
    assert job["source_hr"] == "site=hq"
    tasks = admin.find("Task", entityid=job["id"])
    assert len(tasks) == 4
    assert {t["source"]["path"].rsplit(".", 2)[-2] for t in tasks} == {
        "1001",
        "1002",
        "1003",
        "1005",
    }
    assert admin.find_one(f"Transfer WHERE id={job['id']} AND source=hq")["id"] == job["id"]
    assert admin.find_one(f"Transfer WHERE id={job['id']} AND source={studio.server.workspace}")
    assert admin.find(f"Transfer WHERE id={job['id']} AND status in 'waiting,paused'")
    report = admin.report(f"Transfer WHERE id={job['id']}")
    assert "plates to london" in report
    assert "queued 4" in report
    admin.update_many("task", job["id"], [{"uri": "3", "status": "onhold"}])
    assert admin.update("transfer", job["id"], {"status": "waiting"})["status"] == "waiting"
    admin.update_many("task", job["id"], [{"uri": "3", "status": "queued"}])
    done = studio.wait_job(job["id"])
    assert done["size"] == sum(len(b"f%d" % f * 100) for f in (1001, 1002, 1003, 1005))
    assert (studio.roots["london"] / "proj001/sc0010/plates/plate.1005.exr").exists()
    figures = admin.metrics(f"Transfer WHERE id={job['id']}", attributes=["progress", "tasks"])
    assert figures[job["id"]] == {"progress": 100.0, "tasks": {"done": 4}}
    # Appending by name goes to the job of that name, and revives it.
    _frames(studio.roots["hq"], "proj001/sc0010/plates", [1006])
    again = admin.create(
        "Job",
        {"name": "Plates to London", "append": True, "destination": "site=london",
         "source": "share=projects/proj001/sc0010/plates/plate.1006.exr"},
    )  # fmt: skip
    assert again["id"] == job["id"]
    assert again["size"] == sum(sizes) + len(b"f%d" % 1006 * 100)  # the new file sized at once
    appended = studio.roots["london"] / "proj001/sc0010/plates/plate.1006.exr"
    wait_until(appended.exists, 120, "the appended frame at london")  # a small file moves fast
    assert studio.wait_job(job["id"])["status"] == "done"
    added = admin.create(
        "task", {"tasks": ["share=projects/proj001/sc0010/plates/plate.1001.exr"]}, job["id"]
    )
    assert added["uri"] == "0"  # the same file again: its task re-queued
    studio.wait_job(job["id"])
    rows = admin.logs("job", job["id"])["result"]
    assert any("submitted" in r["message"] for r in rows)
    with pytest.raises(AccsynException, match="collection"):
        admin.delete_many("collection", job["id"], {"files": ["x"]})
    assert admin.delete_one("transfer", job["id"]) is True


def test_access_assignments_settings(studio: Studio) -> None:
    admin, employee = studio.admin, studio.employee
    volume = admin.find_one("Volume WHERE code=projects")
    acl = admin.grant("user", "coord@acme.test", "volume", volume["id"], {"read": True})
    assert acl["entity"] == f"user:{studio.employee_id}"
    assert (
        admin.grant("user", "coord@acme.test", "volume", volume["id"], {"read": True})["id"]
        == acl["id"]
    )
    assert len(admin.access("volume", volume["id"])) == 1
    assert employee.find_one("Volume WHERE code=projects")["id"] == volume["id"]
    assert admin.revoke("user", "coord@acme.test", "volume", volume["id"]) is not None
    assert employee.find_one("Volume WHERE code=projects") is None
    london = studio.agents["london"].server_id
    assert london in {s["id"] for s in admin.assignments("volume", volume["id"])}
    assert admin.assign("volume", "server", {"volume": volume["id"], "server": london}) is True
    assert admin.deassign("volume", "server", {"volume": volume["id"], "server": london}) is True
    server = admin.get_entity("server", london)
    assert (server["os"], server["status"]) == ("linux", "online")
    assert server["wan_ip"]
    site = admin.find_one("Site WHERE code=london")
    assert admin.set_setting("site", "transfer_speedlimit", "100", entityid=site["id"]) is True
    assert admin.get_setting("transfer_speedlimit", "site", site["id"]) == "100"
    assert admin.set_setting("server", "note", "rack 2", entityid=london) is True
    assert (
        admin.get_settings("server", entityid=london, upstream=True)["transfer_speedlimit"] == "100"
    )
    assert admin.delete_setting("site", "transfer_speedlimit", entityid=site["id"]) is True
    assert admin.delete_setting("site", "never_set", entityid=site["id"]) is True
    medium = admin.find_one("Queue WHERE name='medium'")
    assert admin.set_setting("job", "compute_avoid", "disable", entityid=medium["id"]) is True
    assert "compute_avoid" in admin.get_settings("job", entityid=medium["id"], upstream=False)
    assert admin.delete_setting("job", "compute_avoid", entityid=medium["id"]) is True


def test_what_reelsync_does_not_offer_says_so(studio: Studio) -> None:
    admin = studio.admin
    with pytest.raises(AccsynException, match="shows a key once"):
        admin.get_api_key()
    with pytest.raises(AccsynException, match="publishing"):
        admin.prepublish([{"filename": "a.exr", "size": 1}])
    with pytest.raises(AccsynException, match="integrations"):
        admin.integration("ftrack", "sync", {})
    with pytest.raises(AccsynException, match="deliveries"):
        admin.create("Delivery", {"name": "refs"})


def test_deleting_a_user_with_jobs(studio: Studio) -> None:
    admin = studio.admin
    volume = admin.find_one("Volume WHERE code=projects")
    admin.grant("user", "lisa@acme.test", "volume", volume["id"], {"read": True, "write": True})
    lisa = admin.find_one("User WHERE code='lisa@acme.test'")  # invited by the grant
    assert admin.update("user", lisa["id"], {"role": "employee"})["role"] == "employee"
    key = studio.server.cli("user", "apikey", "create", "lisa@acme.test", "--json")
    session = _session(
        studio.server, "lisa@acme.test", json.loads(key.stdout)["api_key"], Path(".")
    )
    _frames(studio.roots["hq"], "lisa", [1])
    job = session.create(
        "Transfer",
        {"source": "share=projects/lisa/plate.0001.exr", "destination": "site=london",
         "status": "paused"},
    )  # fmt: skip
    mine = admin.logs("user", lisa["id"])["result"]
    assert [r["entityid"] for r in mine] == [job["id"]]
    assert admin.delete_one("User", lisa["id"]) is True
    trail = admin.logs(search="user.deleted")["result"]
    assert [r["entityid"] for r in trail] == [lisa["id"]]
    assert admin.find_one(f"User WHERE id={lisa['id']}") is None
    handed = admin.get_entity("transfer", job["id"])
    assert handed["status"] == "aborted"
    assert handed["user_hr"] == studio.server.admin


def test_every_public_method_is_called() -> None:
    """Each public name of Session is used by a test above, on a session or on the class."""
    source = Path(__file__).read_text()
    used = set(re.findall(r"(?:admin|employee|session|Session)\.(\w+)\b", source))
    public = {n for n, _ in inspect.getmembers(Session) if not n.startswith("_")}
    missing = sorted(public - used)
    assert missing == [], f"Session methods no test calls: {missing}"
