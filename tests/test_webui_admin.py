"""The web UI's set-up pages and job tools in-process (httpx over ASGI with a cookie jar), on SQLite
and PostgreSQL: every set-up form does what the API would (and only for admins), secrets are
shown once, the job page puts failed files first and retries one, notes say why files wait,
filters and search, server push, the mail's old link, the SMTP warning. The real-browser story is
test_webui_setup.py."""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import httpx
import pytest
from fastapi.routing import APIRoute
from sqlalchemy import func, select, update

from reelsync.config import ServerConfig, SmtpConfig
from reelsync.db import Database
from reelsync.db import models as m
from reelsync.domain.fileops import FileOp, FileRequest
from reelsync.domain.records import Actor, ServerStatus
from reelsync.errors import NotFoundError
from reelsync.server.app import create_app
from reelsync.server.ui import admin as ui_admin
from reelsync.server.ui import events as ui_events
from reelsync.server.ui import pages as ui_pages
from reelsync.server.ui import transfer as ui_transfer
from reelsync.server.ui.sessions import COOKIE_NAME
from reelsync.services import (
    acls,
    agents,
    apikeys,
    auth,
    jobs,
    queues,
    servers,
    settings,
    sites,
    users,
    volumes,
)
from support.servers import RunningServer
from test_webui import BASE, World, csrf_of, sign_in
from test_webui import world as world  # noqa: F401  (the shared fixture)

FORM = {"Origin": BASE}


@pytest.fixture
async def browser(database: Database, world: World) -> AsyncIterator[httpx.AsyncClient]:
    world.app_data.mkdir()
    config = ServerConfig(
        data_dir=world.app_data, database_url=database.url, public_url="https://hq.acme.test"
    )
    app = create_app(config, database)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=BASE, headers={"Accept": "text/html"}
    ) as client:
        yield client


async def post(client: httpx.AsyncClient, page: str, action: str, **fields: str) -> httpx.Response:
    """Submit a form of ``page`` (its CSRF token) to ``action``."""
    token = csrf_of((await client.get(page)).text)
    return await client.post(action, data={"csrf": token, **fields}, headers=FORM)


async def test_an_admin_does_the_whole_set_up_with_forms(
    browser: httpx.AsyncClient, world: World, database: Database, admin: Actor
) -> None:
    await sign_in(browser, world.admin_key)
    done = await post(browser, "/ui/sites", "/ui/sites", code="paris", name="Paris")
    assert (done.status_code, done.headers["location"]) == (303, "/ui/sites?done=site-created")
    assert "Site created." in (await browser.get(done.headers["location"])).text
    await post(browser, "/ui/sites", "/ui/sites/paris", name="Paris office")  # not enabled
    paris = sites.get_site(database, admin, "paris")
    assert (paris.name, paris.enabled) == ("Paris office", False)

    made = await post(browser, "/ui/agents", "/ui/agents/token", site="paris", hours="2")
    assert made.status_code == 200
    line = re.search(r'<code id="enroll-line">([^<]+)</code>', made.text)
    assert line is not None
    token = line.group(1).split("--token ")[1].split()[0]
    assert line.group(1) == (
        f"reelsync agent enroll --server https://hq.acme.test --ca-file ca.crt --token {token}"
        " --data-dir /var/lib/reelsync-agent"
    )
    server, _ = servers.enroll_server(database, token, hostname="render-01")
    assert server.site == "paris"
    again = await browser.get("/ui/agents")
    assert token not in again.text  # shown once
    assert server.id in again.text  # agents show their id
    await post(browser, "/ui/agents", f"/ui/agents/{server.id}", limit_mib_s="4", enabled="on")
    limited = servers.get_server(database, admin, server.id)
    assert limited.bandwidth_limit == 4 * 2**20
    assert "4.0 MiB/s" in (await browser.get("/ui/agents")).text  # no "4.2 MB/s"
    await post(browser, "/ui/agents", f"/ui/agents/{server.id}/revoke")
    assert servers.get_server(database, admin, server.id).status is ServerStatus.REVOKED

    await post(
        browser, "/ui/volumes", "/ui/volumes",
        code="finance", **{"path:hq": "/mnt/finance", "path:paris": "/srv/finance"},
    )  # fmt: skip
    assert volumes.get_volume(database, admin, "finance").paths == {
        "hq": "/mnt/finance", "paris": "/srv/finance",
    }  # fmt: skip
    await post(
        browser, "/ui/volumes", "/ui/volumes/finance",
        enabled="on", **{"path:hq": "/mnt/fin2", "path:paris": "", "path:london": ""},
    )  # fmt: skip
    assert volumes.get_volume(database, admin, "finance").paths == {"hq": "/mnt/fin2"}

    await post(browser, "/ui/queues", "/ui/queues", code="proj009", priority="800")
    await post(
        browser, "/ui/queues", "/ui/queues/proj009", priority="900", paused="on",
        queue_weight="3", email_job_done_recipients="lead@acmepost.com",
    )  # fmt: skip
    queue = queues.get_queue(database, admin, "proj009")
    assert (queue.priority, queue.paused) == (900, True)
    own = settings.list_settings(database, admin, scope="queue", target="proj009")
    assert own == {"queue_weight": "3", "email_job_done_recipients": "lead@acmepost.com"}
    await post(browser, "/ui/queues", "/ui/queues/proj009", priority="900")  # cleared, resumed
    assert settings.list_settings(database, admin, scope="queue", target="proj009") == {}
    assert not queues.get_queue(database, admin, "proj009").paused

    created = await post(
        browser, "/ui/users", "/ui/users", email="op@acmepost.com", role="employee", with_key="on"
    )
    key = re.search(r'<code id="new-key">([^<]+)</code>', created.text)
    assert key is not None
    assert auth.authenticate(database, key.group(1)).email == "op@acmepost.com"
    assert key.group(1) not in (await browser.get("/ui/users")).text
    op = users.get_user(database, admin, "op@acmepost.com")
    await post(
        browser, "/ui/users", "/ui/grants",
        user=op.email, volume="finance", path="q4", read="on", write="on", back="users",
    )  # fmt: skip
    (grant,) = acls.list_acls(database, admin, user=op.email)
    assert (grant.volume, grant.path, grant.read, grant.write) == ("finance", "q4", True, True)
    await post(browser, "/ui/users", f"/ui/users/{op.id}", role="standard", email_opt_out="on")
    changed = users.get_user(database, admin, op.id)
    assert (changed.role.value, changed.enabled) == ("standard", False)
    assert users.get_preferences(database, admin, op.id).email_opt_out
    (op_key,) = apikeys.list_api_keys(database, admin, op.id)
    await post(browser, "/ui/users", f"/ui/users/{op.id}/keys/{op_key.id}/revoke")
    assert apikeys.list_api_keys(database, admin, op.id)[0].revoked_at is not None
    await post(browser, "/ui/users", f"/ui/grants/{grant.id}/remove", back="users")
    assert acls.list_acls(database, admin, user=op.email) == []

    await post(browser, "/ui/settings", "/ui/settings", key="job_max_retries", value="7")
    assert settings.list_settings(database, admin, scope="workspace")["job_max_retries"] == "7"
    await post(browser, "/ui/settings", "/ui/settings", key="job_max_retries", remove="on")
    assert "job_max_retries" not in settings.list_settings(database, admin, scope="workspace")


async def test_a_refused_change_shows_the_page_with_the_error(
    browser: httpx.AsyncClient, world: World
) -> None:
    await sign_in(browser, world.admin_key)
    again = await post(browser, "/ui/sites", "/ui/sites", code="london")
    assert again.status_code == 409
    assert 'id="form-error"' in again.text
    assert 'id="new-site"' in again.text  # the page, to correct and retry
    bad = await post(browser, "/ui/queues", "/ui/queues", code="q", priority="high")
    assert bad.status_code == 400
    assert "the priority must be a whole number" in bad.text
    stale = await browser.post("/ui/sites", data={"csrf": "x", "code": "rome"}, headers=FORM)
    assert stale.status_code == 403


async def test_a_refused_form_changes_nothing(
    browser: httpx.AsyncClient, world: World, database: Database, admin: Actor
) -> None:
    """A form that changes a row and its settings is one transaction: a refused part (here the
    weight) leaves the queue as it was."""
    await sign_in(browser, world.admin_key)
    await post(browser, "/ui/queues", "/ui/queues", code="proj010", priority="300")
    weight = await post(
        browser, "/ui/queues", "/ui/queues/proj010", priority="900", paused="on",
        queue_weight="heavy", email_job_done_recipients="lead@acmepost.com",
    )  # fmt: skip
    assert weight.status_code == 400
    assert "the weight must be a number" in weight.text
    queue = queues.get_queue(database, admin, "proj010")
    assert (queue.priority, queue.paused) == (300, False)
    assert settings.list_settings(database, admin, scope="queue", target="proj010") == {}


async def test_an_employee_gets_no_set_up_forms_and_no_set_up_writes(
    browser: httpx.AsyncClient, world: World, database: Database, admin: Actor
) -> None:
    await sign_in(browser, world.alice_key)
    pages = {p: (await browser.get(f"/ui/{p}")).text for p in ("sites", "agents", "volumes",
                                                                  "queues", "users")}  # fmt: skip
    for name, html in pages.items():
        assert "<form" not in html.split("</header>")[1] or name == "users", name
    assert "bob@acmepost.com" not in pages["users"]  # her own account only
    assert "alice@acmepost.com" in pages["users"]
    for action, fields in (
        ("/ui/sites", {"code": "rome"}),
        ("/ui/agents/token", {"site": "london"}),
        ("/ui/volumes", {"code": "loot"}),
        ("/ui/grants", {"user": "alice@acmepost.com", "volume": "projects", "write": "on"}),
        ("/ui/queues", {"code": "mine", "priority": "1000"}),
        ("/ui/users", {"email": "x@acmepost.com", "role": "admin"}),
        ("/ui/settings", {"key": "job_max_retries", "value": "1"}),
    ):
        refused = await post(browser, "/ui/", action, **fields)
        assert refused.status_code == 403, (action, refused.text)
    assert [s.code for s in sites.list_sites(database, admin)] == ["hq", "london"]
    alice = users.get_user(database, admin, "alice@acmepost.com")
    # her own e-mail preference she may change
    await post(browser, "/ui/users", f"/ui/users/{alice.id}", email_opt_out="on")
    assert users.get_preferences(database, admin, alice.id).email_opt_out


async def test_the_job_page_puts_failed_files_first_and_retries_one(
    browser: httpx.AsyncClient, world: World, database: Database, admin: Actor
) -> None:
    frames = [f"proj001/sc0010/sh0010/plate.{n:04d}.exr" for n in range(1001, 1101)]
    job = jobs.submit_job(
        database, admin, {"name": "big", "destination": "site=london", "tasks": frames}
    )
    with database.session() as session:
        rows = session.query(m.Task).filter(m.Task.job_id == job.id).all()
        for row in rows:
            row.status, row.size = "done", 1000
        broken = next(r for r in rows if r.source_path.endswith("1077.exr"))
        broken.status, broken.last_error = "failed", "checksum mismatch on chunk 2"
        session.get(m.Job, job.id).status = "failed"  # type: ignore[union-attr]
    await sign_in(browser, world.admin_key)
    page = (await browser.get(f"/ui/jobs/{job.id}")).text
    assert page.index('id="failed-heading"') < page.index('id="contents-heading"')
    assert "checksum mismatch on chunk 2" in page
    assert page.count('class="group"') == 1  # one row for the 100 frames
    assert "plate.####.exr 1001-1100" in page
    assert "99/100 done" in page
    files = await browser.get(f"/ui/jobs/{job.id}", params={"folder": "proj001/sc0010/sh0010"})
    assert files.text.count('class="task"') == 100
    retry = await post(browser, f"/ui/jobs/{job.id}", f"/ui/jobs/{job.id}/tasks/{broken.id}/retry")
    assert retry.status_code == 303
    again = jobs.get_job(database, admin, job.id)
    assert again.status in ("waiting", "running")
    waiting = (await browser.get(f"/ui/jobs/{job.id}")).text
    assert 'id="failed-heading"' not in waiting
    # queued, and no agent at either site: the note says why, as the CLI does
    assert "waiting for an agent at site hq: none is online (none enrolled)" in waiting


async def test_jobs_filters_search_and_active_as_the_cli_means_it(
    browser: httpx.AsyncClient, world: World, database: Database, admin: Actor
) -> None:
    failed = jobs.submit_job(
        database, admin, {"name": "proj003 upload", "destination": "site=london",
                          "tasks": ["proj003/a.exr"]},
    )  # fmt: skip
    with database.session() as session:
        session.get(m.Job, failed.id).status = "failed"  # type: ignore[union-attr]
    await sign_in(browser, world.admin_key)
    active = (await browser.get("/ui/")).text
    assert failed.id not in active  # failed has ended: `reelsync job list --active` agrees
    assert world.alice_job in active
    assert failed.id in (await browser.get("/ui/?show=failed")).text
    found = (await browser.get("/ui/", params={"show": "all", "q": "UPLOAD proj003"})).text
    assert failed.id in found
    assert world.alice_job not in found
    mine = (await browser.get("/ui/", params={"show": "all", "user": "bob@acmepost.com"})).text
    assert (world.bob_job in mine, world.alice_job in mine) == (True, False)
    today = datetime.now(UTC).date().isoformat()
    dated = await browser.get("/ui/", params={"show": "all", "from": today, "to": today})
    assert failed.id in dated.text
    none = await browser.get("/ui/", params={"show": "all", "to": "2001-01-01", "site": "hq"})
    assert 'id="no-jobs"' in none.text
    wrong = await browser.get("/ui/", params={"from": "yesterday"})
    assert wrong.status_code == 400
    assert "must be a date" in wrong.text


def test_server_push_says_when_a_job_changes(
    server_factory: Callable[..., RunningServer],
) -> None:
    """Against a real server (ASGI in-process buffers whole bodies): the stream of a job says
    ``change`` when the job changes; another user's job is a 404."""
    server = server_factory()
    verify = ssl.create_default_context(cafile=str(server.ca_file))
    with server.session() as admin:
        admin.create("site", {"code": "london"})
        admin.create("volume", {"code": "projects", "default": True,
                                "paths": {"hq": "/mnt/p", "london": "/data/p"}})  # fmt: skip
        job = admin.submit_job({"destination": "site=london", "tasks": ["proj001/a.exr"]})
    with httpx.Client(base_url=server.url, verify=verify, timeout=30) as client:
        signed = client.post(
            "/ui/login", data={"api_key": server.api_key}, headers={"Origin": server.url}
        )
        assert signed.status_code == 303
        page = client.get(f"/ui/jobs/{job['id']}").text
        assert f'data-events="/ui/events/jobs/{job["id"]}"' in page
        with client.stream("GET", f"/ui/events/jobs/{job['id']}") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.iter_lines()
            assert next(lines).startswith("retry:")
            with server.session() as admin:
                admin.update("job", job["id"], {"status": "paused"})
            seen = []
            for line in lines:
                seen.append(line)
                if line == "event: change":
                    break
        assert seen[-1] == "event: change"
        assert client.get("/ui/events/jobs/nope").status_code == 404


async def test_old_mail_links_and_the_smtp_warning(
    browser: httpx.AsyncClient, world: World, database: Database
) -> None:
    old = await browser.get(f"/jobs/{world.alice_job}")
    assert (old.status_code, old.headers["location"]) == (303, f"/ui/jobs/{world.alice_job}")
    await sign_in(browser, world.admin_key)
    home = (await browser.get("/ui/")).text
    assert 'id="smtp-warning"' in home  # no SMTP server in this app's config
    status = (await browser.get("/ui/settings")).text
    assert 'id="mail-pending"' in status
    browser.cookies.clear()
    await sign_in(browser, world.alice_key)
    assert 'id="smtp-warning"' not in (await browser.get("/ui/")).text  # admins only

    configured = create_app(
        ServerConfig(data_dir=world.app_data, database_url=database.url,
                     smtp=SmtpConfig(host="mail.acme.test")),
        database,
    )  # fmt: skip
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=configured), base_url=BASE
    ) as client:
        await sign_in(client, world.admin_key)
        assert 'id="smtp-warning"' not in (await client.get("/ui/")).text


class TreeOperator:
    """The file-operations port in memory: each site's files (path -> size) of volume projects,
    answering ``exists`` and ``ls`` in the accsyn shapes the agents give."""

    def __init__(self, trees: dict[str, dict[str, int]]) -> None:
        self.trees = trees

    async def run(self, request: FileRequest) -> object:
        files = self.trees.get(request.site_code or "hq", {})
        base = f"{request.path}/" if request.path else ""
        inside = {p[len(base) :]: n for p, n in files.items() if p.startswith(base)}
        if request.op is FileOp.EXISTS:
            return request.path in files or bool(inside)
        if request.op is FileOp.GETSIZE:
            return files[request.path] if request.path in files else sum(inside.values())
        if request.path in files:
            return [{"type": 1, "filename": request.path.rsplit("/", 1)[-1],
                     "size": files[request.path]}]  # fmt: skip
        if not inside:
            raise NotFoundError(f"projects:{request.path} does not exist")
        if request.recursive:
            return [{"type": 1, "filename": rel, "size": n} for rel, n in sorted(inside.items())]
        listed: dict[str, dict[str, object]] = {}
        for rel, size in inside.items():
            head, _, rest = rel.partition("/")
            if rest:
                entry = listed.setdefault(head, {"type": 0, "filename": head, "size": 0})
                entry["size"] = int(entry["size"]) + size  # type: ignore[call-overload]
            else:
                listed[head] = {"type": 1, "filename": head, "size": size}
        return list(listed.values())


SHOT = "proj001/sc0010/sh0010/scans"


@pytest.fixture
async def studio(
    database: Database, world: World, admin: Actor
) -> AsyncIterator[tuple[httpx.AsyncClient, TreeOperator]]:
    """The UI with agents online at hq and london and the files of two shots at hq."""
    hq = {f"{SHOT}/plate.{n:04d}.exr": 100 for n in range(1001, 1011)}
    hq.update({"proj001/sc0010/sh0020/scans/notes.txt": 5, "proj002/x.exr": 1})
    trees = TreeOperator({"hq": hq, "london": {f"{SHOT}/plate.1001.exr": 100}})
    for site in ("hq", "london"):
        _, token = servers.create_enrollment_token(database, admin, site)
        server, _ = servers.enroll_server(database, token, hostname=f"agent-{site}")
        agents.heartbeat(database, server.id, version="test")
    world.app_data.mkdir()
    app = create_app(ServerConfig(data_dir=world.app_data, database_url=database.url), database)
    app.state.file_operator = trees
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=BASE, headers={"Accept": "text/html"}
    ) as client:
        yield client, trees


async def test_the_transfer_page_browses_and_sends_as_sync_does(
    studio: tuple[httpx.AsyncClient, TreeOperator], world: World, database: Database,
    admin: Actor,
) -> None:  # fmt: skip
    client, _trees = studio
    await sign_in(client, world.alice_key)
    page = await client.get("/ui/transfer", params={"path": SHOT})
    assert page.status_code == 200
    assert "plate.####.exr 1001-1010" in page.text  # ten frames, one row
    assert "some frames" in page.text  # london has one of them
    sequence = re.search(r'name="pick" value="([^"]+)"', page.text)
    assert sequence is not None
    assert (
        sequence.group(1)
        == f"{SHOT}/plate.####.exr[1001,1002,1003,1004,1005,1006,1007,1008,1009,1010]"
    )
    root = (await client.get("/ui/transfer")).text  # above her grant: only the way down to it
    assert 'data-name="proj001"' in root
    assert 'data-name="proj002"' not in root
    top = await client.get("/ui/transfer", params={"path": "proj001/sc0010"})
    assert "sh0010/" in top.text
    assert "missing" in top.text  # london has no sh0020

    token = csrf_of(page.text)
    form = {"csrf": token, "volume": "projects", "site": "hq", "to": "london", "queue": ""}
    sent = await client.post(
        "/ui/transfer", data={**form, "pick": ["proj001/sc0010/sh0010", "proj001/sc0010/sh0020"]},
        headers=FORM,
    )  # fmt: skip
    assert sent.status_code == 303, sent.text
    assert sent.headers["location"].endswith("?done=sent-default")  # no queue proj001
    job_id = sent.headers["location"].split("/ui/jobs/")[1].split("?")[0]
    job = jobs.get_job(database, admin, job_id)
    assert job.name == f"proj001 download london {datetime.now().date().isoformat()}"
    # one task per folder picked, with its size, as reelsync sync submits them
    assert (job.tasks, job.queue, job.user) == (2, "medium", "alice@acmepost.com")
    assert job.size == 10 * 100 + 5
    frames = await client.post(
        "/ui/transfer", data={**form, "pick": f"{SHOT}/plate.####.exr[1001-1003]"}, headers=FORM
    )
    assert frames.status_code == 303
    assert jobs.get_job(database, admin, job_id).tasks == 5  # a sequence: its frames
    again = await client.post(
        "/ui/transfer", data={**form, "queue": "high", "pick": "proj001/sc0010/sh0020"},
        headers=FORM,
    )  # fmt: skip
    assert again.headers["location"] == f"/ui/jobs/{job_id}?done=sent-moved"  # the same job
    assert jobs.get_job(database, admin, job_id).queue == "high"

    outside = await client.post(
        "/ui/transfer", data={**form, "pick": "proj002/x.exr"}, headers=FORM
    )
    assert outside.status_code == 403  # her grant is proj001
    assert 'id="form-error"' in outside.text
    nothing = await client.post("/ui/transfer", data=form, headers=FORM)
    assert nothing.status_code == 400
    assert "pick at least one" in nothing.text
    london = next(a for a in servers.list_servers(database, admin) if a.site == "london")
    servers.update_server(database, admin, london.id, status="disabled")
    offline = await client.post("/ui/transfer", data={**form, "pick": SHOT}, headers=FORM)
    assert offline.status_code == 503  # said at once, as `reelsync sync` says it
    assert "no agent is online at site london (agent-london disabled)" in offline.text


def _send_form(page: str, *picks: str) -> dict[str, str | list[str]]:
    """The transfer page's send form as the browser submits it (its one-time ``send_key``)."""
    once = re.search(r'name="send_key" value="([0-9a-f]+)"', page)
    assert once is not None
    return {
        "csrf": csrf_of(page), "send_key": once.group(1), "volume": "projects", "site": "hq",
        "to": "london", "queue": "", "pick": list(picks),
    }  # fmt: skip


def _job_of(answer: httpx.Response) -> str:
    assert answer.status_code == 303, answer.text
    return str(answer.headers["location"]).split("/ui/jobs/")[1].split("?")[0]


def _statuses(database: Database, job_id: str) -> dict[str, str]:
    with database.reader() as session:
        rows = session.execute(
            select(m.Task.source_path, m.Task.status).where(m.Task.job_id == job_id)
        )
        return {path.rsplit("/", 1)[-1]: status for path, status in rows}


async def test_a_send_form_submitted_twice_sends_once(
    studio: tuple[httpx.AsyncClient, TreeOperator], world: World, database: Database,
    admin: Actor,
) -> None:  # fmt: skip
    client, _trees = studio
    await sign_in(client, world.alice_key)
    page = (await client.get("/ui/transfer", params={"path": "proj001/sc0010"})).text
    form = _send_form(page, "proj001/sc0010/sh0010")
    count_jobs = select(func.count()).select_from(m.Job)
    with database.reader() as session:
        before = session.scalar(count_jobs)
    # a double click: both posts at once, one job with one task
    first, second = await asyncio.gather(
        client.post("/ui/transfer", data=form, headers=FORM),
        client.post("/ui/transfer", data=form, headers=FORM),
    )
    job_id = _job_of(first)
    assert _job_of(second) == job_id
    with database.reader() as session:
        assert session.scalar(count_jobs) == before + 1
    assert jobs.get_job(database, admin, job_id).tasks == 1

    # the next rendering of the form has its own token; it appends to the day's job, once
    page = (await client.get("/ui/transfer", params={"path": "proj001/sc0010"})).text
    append = _send_form(page, "proj001/sc0010/sh0020")
    assert append["send_key"] != form["send_key"]
    assert _job_of(await client.post("/ui/transfer", data=append, headers=FORM)) == job_id
    assert jobs.get_job(database, admin, job_id).tasks == 2
    with database.session() as session:  # the agents move the files
        session.execute(update(m.Task).where(m.Task.job_id == job_id).values(status="done"))
    again = await client.post("/ui/transfer", data=append, headers=FORM)
    assert _job_of(again) == job_id
    assert _statuses(database, job_id) == {"sh0010": "done", "sh0020": "done"}  # not re-queued
    # a form without a token (a page from before) sends its picks again, as it always did
    untokened = {k: v for k, v in append.items() if k != "send_key"}
    assert _job_of(await client.post("/ui/transfer", data=untokened, headers=FORM)) == job_id
    assert _statuses(database, job_id) == {"sh0010": "done", "sh0020": "queued"}


async def test_only_admins_and_employees_transfer(
    browser: httpx.AsyncClient, world: World, database: Database, admin: Actor
) -> None:
    users.create_user(database, admin, email="viewer@acmepost.com", role="standard")
    _, key = apikeys.create_api_key(database, admin, "viewer@acmepost.com")
    await sign_in(browser, key)
    assert "/ui/transfer" not in (await browser.get("/ui/")).text
    refused = await browser.get("/ui/transfer")
    assert refused.status_code == 403
    browser.cookies.clear()
    await sign_in(browser, world.alice_key)
    no_agent = await browser.get("/ui/transfer")  # no agent serves the volume here
    assert no_agent.status_code == 200
    assert 'id="listing-error"' in no_agent.text
    assert "no agent serves volume" in no_agent.text


def test_server_push_ends_when_the_session_is_signed_out(
    server_factory: Callable[..., RunningServer],
) -> None:
    """Signing out (here from another tab: the same cookie) ends an open stream at its next tick
    with ``event: ended``, long before its 5 minutes; the cookie then opens no stream."""
    server = server_factory()
    verify = ssl.create_default_context(cafile=str(server.ca_file))
    with httpx.Client(base_url=server.url, verify=verify, timeout=30) as client:
        signed = client.post(
            "/ui/login", data={"api_key": server.api_key}, headers={"Origin": server.url}
        )
        assert signed.status_code == 303
        home = client.get("/ui/").text
        cookie = client.cookies.get(COOKIE_NAME)
        assert cookie
        with client.stream("GET", "/ui/events/jobs") as stream:
            lines = stream.iter_lines()
            assert next(lines).startswith("retry:")
            out = client.post(
                "/ui/logout", data={"csrf": csrf_of(home)}, headers={"Origin": server.url}
            )
            assert out.status_code == 303
            seen = list(lines)  # the stream ends by itself; a hang would time out (30 s)
        assert "event: ended" in seen
        client.cookies.clear()
        client.cookies.set(COOKIE_NAME, cookie)  # a copy of the signed-out cookie
        again = client.get("/ui/events/jobs", follow_redirects=False)
        assert again.status_code == 303
        assert again.headers["location"].startswith("/ui/login")


async def test_every_ui_form_refuses_a_post_without_its_csrf_token(
    browser: httpx.AsyncClient, world: World, database: Database
) -> None:
    """Every POST route of the UI's routers (so a new one is covered too) answers 403 to a
    signed-in admin's form without the session's CSRF token; sign-in is the one exception
    (there is no session yet: it is guarded by the origin check)."""
    del database
    posts = sorted(
        route.path
        for module in (ui_admin, ui_events, ui_pages, ui_transfer)
        for route in module.router.routes
        if isinstance(route, APIRoute)
        and route.path.startswith("/ui/")
        and "POST" in route.methods
        and route.path != "/ui/login"
    )
    assert len(posts) >= 15, posts
    await sign_in(browser, world.admin_key)
    for path in posts:
        url = re.sub(r"\{[^}]+\}", "x", path)
        answer = await browser.post(url, data={"csrf": "forged", "code": "x"}, headers=FORM)
        assert answer.status_code == 403, (path, answer.status_code)
        assert "this form is stale" in answer.text, path
    assert (await browser.get("/ui/")).status_code == 200  # still signed in: nothing was done


async def test_an_employee_changes_only_their_own_account(
    browser: httpx.AsyncClient, world: World, database: Database, admin: Actor
) -> None:
    """The account forms go through the services as the signed-in user: another user's e-mail
    preference, API keys and role stay out of an employee's reach."""
    bob = users.get_user(database, admin, "bob@acmepost.com")
    await sign_in(browser, world.alice_key)
    for action, fields in (
        (f"/ui/users/{bob.id}", {"email_opt_out": "on", "role": "admin", "enabled": "on"}),
        (f"/ui/users/{bob.id}/keys", {"description": "mine now"}),
        (f"/ui/users/{bob.id}/keys/{world.bob_key_id}/revoke", {}),
    ):
        refused = await post(browser, "/ui/users", action, **fields)
        assert refused.status_code in (403, 404), (action, refused.status_code)
    assert not users.get_preferences(database, admin, bob.id).email_opt_out
    assert users.get_user(database, admin, bob.id).role == bob.role
    live = [k for k in apikeys.list_api_keys(database, admin, bob.id) if k.revoked_at is None]
    assert [k.id for k in live] == [world.bob_key_id]
    alice = users.get_user(database, admin, "alice@acmepost.com")
    refused = await post(browser, "/ui/users", f"/ui/users/{alice.id}", role="admin")
    assert refused.status_code == 303  # her own preferences saved; the role field is not hers
    assert users.get_user(database, admin, alice.id).role == "employee"
