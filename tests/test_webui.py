"""The web UI in-process (httpx over ASGI, like a browser with a cookie jar), on SQLite and
PostgreSQL: sign-in and the session cookie, what each user sees, job controls with CSRF, escaping,
the security headers. Real-browser tests are in test_webui_browser.py."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from reelsync.config import ServerConfig
from reelsync.db import Database
from reelsync.db import models as m
from reelsync.domain.records import Actor, Role
from reelsync.server.app import create_app
from reelsync.server.ui.formats import duration, size
from reelsync.server.ui.sessions import COOKIE_NAME, KEY_FILE, SessionSigner, load_or_create_key
from reelsync.services import acls, agents, apikeys, jobs, servers, sites, tasks, users, volumes
from reelsync.services.bootstrap import InitResult

BASE = "https://reelsync.test"
EVIL_NAME = '<script>alert("x")</script> & <b>bold</b>'


@dataclass
class World:
    app_data: Path
    admin_key: str
    alice_key: str
    bob_key: str
    alice_job: str
    bob_job: str
    bob_key_id: str


@pytest.fixture
def world(database: Database, workspace: InitResult, admin: Actor, tmp_path: Path) -> World:
    sites.create_site(database, admin, code="london")
    volumes.create_volume(
        database, admin, code="projects", paths={"hq": "/mnt/projects", "london": "/data/p"}
    )
    keys = {}
    for name, project in (("alice", "proj001"), ("bob", "proj002")):
        email = f"{name}@acmepost.com"
        users.create_user(database, admin, email=email, role=Role.EMPLOYEE)
        acls.grant(database, admin, user=email, volume="projects", path=project, write=True)
        keys[name] = apikeys.create_api_key(database, admin, email, description="ui")
    alice = users.get_user(database, admin, "alice@acmepost.com")
    bob = users.get_user(database, admin, "bob@acmepost.com")
    alice_actor = Actor(user_id=alice.id, email=alice.email, role=alice.role)
    bob_actor = Actor(user_id=bob.id, email=bob.email, role=bob.role)
    a_job = jobs.submit_job(
        database,
        alice_actor,
        {
            "name": EVIL_NAME,
            "tasks": ["proj001/a.exr", "proj001/b.exr"],
            "destination": "site=london",
        },
    )
    b_job = jobs.submit_job(
        database,
        bob_actor,
        {"name": "proj002 secret delivery", "source": "proj002/x", "destination": "site=london"},
    )
    return World(
        app_data=tmp_path / "data",
        admin_key=workspace.api_key,
        alice_key=keys["alice"][1],
        bob_key=keys["bob"][1],
        alice_job=a_job.id,
        bob_job=b_job.id,
        bob_key_id=keys["bob"][0].id,
    )


@pytest.fixture
async def browser(database: Database, world: World) -> AsyncIterator[httpx.AsyncClient]:
    world.app_data.mkdir()
    app = create_app(ServerConfig(data_dir=world.app_data, database_url=database.url), database)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url=BASE,
        headers={"Accept": "text/html"},
    ) as client:
        yield client


async def sign_in(
    client: httpx.AsyncClient, key: str, email: str | None = None, next_path: str = "/ui/"
) -> httpx.Response:
    form = {"api_key": key, "next": next_path}
    if email is not None:
        form["email"] = email
    return await client.post("/ui/login", data=form, headers={"Origin": BASE})


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


async def test_sign_in_sets_a_strict_session_cookie_and_sign_out_ends_it(
    browser: httpx.AsyncClient, world: World
) -> None:
    first = await browser.get("/ui/")
    assert first.status_code == 303
    assert first.headers["location"] == "/ui/login?next=/ui/"
    login = await browser.get("/ui/login?next=/ui/agents")
    assert login.status_code == 200
    assert 'type="password"' in login.text
    assert 'value="/ui/agents"' in login.text

    bad = await sign_in(browser, "rsk_wrong")
    assert bad.status_code == 401
    assert "invalid or expired API key" in bad.text
    assert "set-cookie" not in bad.headers
    wrong_owner = await sign_in(browser, world.alice_key, email="bob@acmepost.com")
    assert wrong_owner.status_code == 401

    done = await sign_in(
        browser, world.alice_key, email="Alice@acmepost.com", next_path="/ui/agents"
    )
    assert (done.status_code, done.headers["location"]) == (303, "/ui/agents")
    cookie = done.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE_NAME}=")
    for attribute in ("HttpOnly", "Secure", "SameSite=strict", "Path=/", "Max-Age=43200"):
        assert attribute.lower() in cookie.lower(), cookie
    assert "Domain" not in cookie
    assert world.alice_key not in cookie
    assert world.alice_key not in done.headers["location"]

    page = await browser.get("/ui/")
    assert page.status_code == 200
    assert "alice@acmepost.com" in page.text
    assert (await browser.get("/ui/login")).headers["location"] == "/ui/"  # already signed in

    copy = browser.cookies[COOKIE_NAME]
    out = await browser.post(
        "/ui/logout", data={"csrf": csrf_of(page.text)}, headers={"Origin": BASE}
    )
    assert (out.status_code, out.headers["location"]) == (303, "/ui/login")
    assert "max-age=0" in out.headers["set-cookie"].lower()
    assert (await browser.get("/ui/")).status_code == 303
    browser.cookies.set(COOKIE_NAME, copy, domain="reelsync.test")  # a copy kept from before
    assert (await browser.get("/ui/")).status_code == 303  # sign-out ended it server-side


async def test_sign_in_redirects_only_inside_the_ui(
    browser: httpx.AsyncClient, world: World
) -> None:
    for target in (
        "https://evil.test/",
        "//evil.test/ui/",
        "/api/v1/me",
        "/ui\\..",
        "/ui/login",
        "/ui/..//evil.test",
        "/ui//evil.test",
    ):
        done = await sign_in(browser, world.admin_key, next_path=target)
        assert done.headers["location"] == "/ui/", target


async def test_each_user_sees_what_the_services_allow(
    browser: httpx.AsyncClient, world: World, database: Database, admin: Actor
) -> None:
    await sign_in(browser, world.alice_key)
    mine = await browser.get("/ui/")
    assert f"/ui/jobs/{world.alice_job}" in mine.text
    assert world.bob_job not in mine.text
    assert "proj002 secret delivery" not in mine.text
    hidden = await browser.get(f"/ui/jobs/{world.bob_job}")
    assert hidden.status_code == 404
    assert "no job" in hidden.text
    assert "proj002 secret delivery" not in hidden.text
    await browser.post(
        f"/ui/jobs/{world.bob_job}/pause",
        data={"csrf": csrf_of(mine.text)},
        headers={"Origin": BASE},
    )
    assert jobs.get_job(database, admin, world.bob_job).status == "waiting"

    browser.cookies.clear()
    await sign_in(browser, world.admin_key)
    everything = await browser.get("/ui/")
    assert world.alice_job in everything.text
    assert world.bob_job in everything.text
    assert "bob@acmepost.com" in everything.text  # admins see the user column


async def test_job_names_and_errors_are_escaped(browser: httpx.AsyncClient, world: World) -> None:
    await sign_in(browser, world.alice_key)
    for url in ("/ui/", f"/ui/jobs/{world.alice_job}"):
        html = (await browser.get(url)).text
        assert EVIL_NAME not in html
        assert (
            "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in html
        )
        assert "<script>" not in html.replace('<script src="/ui/static/ui.js" defer></script>', "")
    missing = await browser.get("/ui/jobs/%3Cimg%20src%3Dx%3E")
    assert missing.status_code == 404
    assert "<img src=x>" not in missing.text
    assert "&lt;img src=x&gt;" in missing.text


async def test_job_page_controls_pause_resume_abort_retry(
    browser: httpx.AsyncClient, world: World, database: Database
) -> None:
    await sign_in(browser, world.alice_key)
    url = f"/ui/jobs/{world.alice_job}"
    page = await browser.get(url)
    assert 'id="action-pause"' in page.text
    assert 'id="action-abort"' in page.text
    assert 'id="action-resume"' not in page.text
    assert page.text.count('class="group"') == 2  # a.exr and b.exr of folder proj001
    files = await browser.get(url, params={"folder": "proj001"})
    assert files.text.count('class="task"') == 2
    token = csrf_of(page.text)

    async def act(action: str) -> str:
        done = await browser.post(f"{url}/{action}", data={"csrf": token}, headers={"Origin": BASE})
        assert (done.status_code, done.headers["location"]) == (303, url), done.text
        return (await browser.get(url)).text

    paused = await act("pause")
    assert 'id="job-status">paused<' in paused
    assert 'id="action-resume"' in paused
    assert 'id="action-pause"' not in paused
    resumed = await act("resume")
    assert 'id="job-status">waiting<' in resumed
    aborted = await act("abort")
    assert 'id="job-status">aborted<' in aborted
    assert 'id="action-retry"' in aborted
    refused = await browser.post(f"{url}/pause", data={"csrf": token}, headers={"Origin": BASE})
    assert refused.status_code == 409  # the service's transition rules, as an HTML page
    assert "cannot be set to paused" in refused.text
    retried = await act("retry")
    assert 'id="job-status">waiting<' in retried
    unknown = await browser.post(f"{url}/explode", data={"csrf": token}, headers={"Origin": BASE})
    assert unknown.status_code == 404


async def test_posts_need_the_csrf_token_and_this_origin(
    browser: httpx.AsyncClient, world: World
) -> None:
    await sign_in(browser, world.alice_key)
    url = f"/ui/jobs/{world.alice_job}"
    token = csrf_of((await browser.get(url)).text)
    for data, headers in (
        ({"other": "1"}, {"Origin": BASE}),
        ({"csrf": "forged"}, {"Origin": BASE}),
        ({"csrf": token}, {"Origin": "https://evil.test"}),
        ({"csrf": token}, {"Sec-Fetch-Site": "cross-site"}),
    ):
        refused = await browser.post(f"{url}/pause", data=data, headers=headers)
        assert refused.status_code == 403, (data, headers)
        assert "text/html" in refused.headers["content-type"]
    assert 'id="job-status">waiting<' in (await browser.get(url)).text
    cross_login = await browser.post(
        "/ui/login", data={"api_key": world.alice_key}, headers={"Origin": "https://evil.test"}
    )
    assert cross_login.status_code == 403
    json_post = await browser.post(f"{url}/pause", json={"csrf": token}, headers={"Origin": BASE})
    assert json_post.status_code == 400


async def test_session_cookie_is_checked_every_request(
    browser: httpx.AsyncClient, world: World, database: Database, admin: Actor
) -> None:
    await sign_in(browser, world.bob_key)
    good = browser.cookies[COOKIE_NAME]
    assert (await browser.get("/ui/")).status_code == 200

    body, _, mac = good.rpartition(".")
    version, session_id, _expires = body.split(".")
    forged = ".".join([version, session_id, "9999999999"])
    signer = SessionSigner(load_or_create_key(world.app_data / KEY_FILE))
    for value in (
        f"{body}.{mac[:-2]}xx",  # a bad signature
        f"{forged}.{mac}",  # a longer life, not signed
        signer.issue(session_id, int(time.time()) - 1),  # expired
        signer.issue("0" * 24, int(time.time()) + 600),  # well signed, no such session
        "garbage",
        "",
    ):
        browser.cookies.set(COOKIE_NAME, value, domain="reelsync.test")
        refused = await browser.get("/ui/")
        assert refused.status_code == 303, value

    browser.cookies.set(COOKIE_NAME, good, domain="reelsync.test")
    assert (await browser.get("/ui/")).status_code == 200
    apikeys.revoke_api_key(database, admin, "bob@acmepost.com", world.bob_key_id)
    ended = await browser.get("/ui/jobs/x?y=1")
    assert (ended.status_code, ended.headers["location"]) == (
        303,
        "/ui/login?next=/ui/jobs/x%3Fy%3D1",
    )
    assert "max-age=0" in ended.headers["set-cookie"].lower()


async def test_agents_queues_and_sites_pages(
    browser: httpx.AsyncClient, world: World, database: Database, admin: Actor
) -> None:
    _, token = servers.create_enrollment_token(database, admin, "london")
    server, _ = servers.enroll_server(database, token, hostname="render-07")
    agents.heartbeat(
        database, server.id, version="0.1.0", rate_sent=2.5 * 2**20, applied_limit=10.0 * 2**20
    )
    await sign_in(browser, world.alice_key)
    page = (await browser.get("/ui/agents")).text
    assert "render-07" in page
    assert "london" in page
    assert "online" in page
    assert '<span class="tag">projects</span>' in page  # alice's ACL shows her the volume
    assert '<td class="num rate-sent" data-label="Sending">2.5 MiB/s</td>' in page  # sending
    assert '<td class="num" data-label="Limit">10.0 MiB/s</td>' in page  # the limit it applies
    assert "just now" in page or " ago" in page
    queues_page = (await browser.get("/ui/queues")).text
    for code, priority in (("high", 999), ("medium", 500), ("low", 1)):
        assert re.search(
            rf"<td>{code}</td>\s*<td>\w+</td>\s*<td class=\"num\">{priority}</td>", queues_page
        )
    sites_page = (await browser.get("/ui/sites")).text
    assert "london" in sites_page
    volumes_page = (await browser.get("/ui/volumes")).text
    assert "/data/p" in volumes_page
    # alice sees, and may change, nothing of the set-up
    for text in ("/ui/agents/token", 'action="/ui/sites"', "/ui/grants", "render-07/revoke"):
        assert text not in page + sites_page + volumes_page + queues_page
    assert "/mnt/projects" in volumes_page

    browser.cookies.clear()
    await sign_in(browser, world.admin_key)
    volumes.create_volume(database, admin, code="finance", paths={"hq": "/mnt/fin"})
    assert "finance" in (await browser.get("/ui/volumes")).text
    browser.cookies.clear()
    await sign_in(browser, world.alice_key)
    assert "finance" not in (await browser.get("/ui/volumes")).text
    assert "finance" not in (await browser.get("/ui/agents")).text


async def test_jobs_filter_active_and_all(
    browser: httpx.AsyncClient, world: World, database: Database, admin: Actor
) -> None:
    jobs.update_job(database, admin, world.bob_job, status="aborted")
    await sign_in(browser, world.admin_key)
    active = (await browser.get("/ui/")).text
    assert world.alice_job in active
    assert world.bob_job not in active
    everything = (await browser.get("/ui/?show=all")).text
    assert world.bob_job in everything
    assert (await browser.get("/ui/?show=nonsense")).status_code == 400
    tasks.update_tasks(database, admin, world.alice_job, [{"uri": "0", "status": "done"}])
    assert "50.0%" in (await browser.get("/ui/")).text


async def test_security_headers_root_redirect_and_static(
    browser: httpx.AsyncClient, world: World
) -> None:
    root = await browser.get("/")
    assert (root.status_code, root.headers["location"]) == (303, "/ui/")
    api_root = await browser.get("/", headers={"Accept": "application/json"})
    assert api_root.status_code == 404
    assert api_root.json()["error"]["code"] == "not_found"
    assert (await browser.get("/ui")).headers["location"] == "/ui/"
    await sign_in(browser, world.admin_key)
    page = await browser.get("/ui/")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["content-type"].startswith("text/html")
    script = await browser.get("/ui/static/ui.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert script.headers["cache-control"] == "no-cache"
    assert (await browser.get("/ui/static/ui.css")).status_code == 200
    lost = await browser.get("/ui/no/such/<page>")
    assert lost.status_code == 404
    assert "text/html" in lost.headers["content-type"]
    assert "no page /ui/no/such/&lt;page&gt;" in lost.text
    assert (await browser.get("/ui/static/missing.js")).status_code == 404
    api = await browser.get("/api/v1/health")
    assert "content-security-policy" not in api.headers  # the API is left as it was
    spec = (await browser.get("/api/v1/openapi.json")).json()
    assert not [p for p in spec["paths"] if p.startswith("/ui")]


def test_formats() -> None:
    assert size(None) == "-"
    assert size(999) == "999 B"
    assert size(1536 * 2**20) == "1.5 GiB"
    assert size(24_000_000) == "22.9 MiB"  # as the mail and the CLI write it
    assert duration(None) == "-"
    assert duration(42) == "42s"
    assert duration(187) == "3m 07s"
    assert duration(7500) == "2h 05m"
    assert duration(90000) == "1d 01h"


def test_session_key_file_is_private_and_stable(tmp_path: Path) -> None:
    path = tmp_path / KEY_FILE
    key = load_or_create_key(path)
    assert len(key) == 32
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_or_create_key(path) == key
    signer = SessionSigner(key)
    token = signer.issue("s1", int(time.time()) + 60)
    claims = signer.verify(token)
    assert claims is not None
    assert claims.session_id == "s1"
    assert SessionSigner(b"x" * 32).verify(token) is None
    assert signer.check_csrf(claims, signer.csrf_token(claims))
    assert not signer.check_csrf(claims, None)


async def test_jobs_show_size_speed_and_eta(
    browser: httpx.AsyncClient, world: World, database: Database
) -> None:
    # What the scheduler writes from agent reports (speed in bytes/s, etr in seconds).
    with database.session() as session:
        job = session.get(m.Job, world.alice_job)
        assert job is not None
        job.size, job.bytes_done, job.progress = 3 * 2**30, 3 * 2**29, 50.0
        job.speed, job.etr = 12.5 * 2**20, 125
    await sign_in(browser, world.alice_key)
    row = (await browser.get("/ui/")).text
    for text in ("3.0 GiB", "12.5 MiB/s", "2m 05s", "50.0%", 'value="50.0"'):
        assert text in row, text
    page = (await browser.get(f"/ui/jobs/{world.alice_job}")).text
    assert "1.5 GiB of 3.0 GiB" in page
    assert "12.5 MiB/s" in page


async def test_forms_from_the_public_url_pass_behind_a_proxy(
    database: Database, world: World
) -> None:
    world.app_data.mkdir()
    config = ServerConfig(
        data_dir=world.app_data, database_url=database.url, public_url="https://sync.acme.test"
    )
    app = create_app(config, database)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        form = {"api_key": world.alice_key}
        # the proxy rewrote Host to reelsync.test; the browser's Origin is the public URL
        done = await client.post(
            "/ui/login", data=form, headers={"Origin": "https://sync.acme.test"}
        )
        assert done.status_code == 303
        other = await client.post("/ui/login", data=form, headers={"Origin": "https://acme.test"})
        assert other.status_code == 403
