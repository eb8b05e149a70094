"""The web UI in a real browser: Playwright drives Debian's ``chromium`` against a real
``reelsync server run`` over HTTPS. One employee signs in, sees the job she submitted through the
API and its progress change (auto-refresh), pauses and resumes it, does not see another
project's job, and signs out. An admin watches real agents (``reelsync agent run`` at hq and
london) move a shot: the agents page, then the job reaching done on its own.

The browser is found on PATH (``chromium``; ``scripts/test`` installs it with apt-get when it is
missing and it runs as root). Without it this test FAILS with a message saying so: it is never
skipped.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import ssl
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from playwright.sync_api import Browser, Page, expect, sync_playwright

from support.agents import running_agent
from support.servers import RunningServer
from sync_world import OPERATOR, build_world, make_tree

pytestmark = pytest.mark.slow

EVIL_NAME = "<b>proj001</b> plates & <i>scans</i>"
WAIT_MS = 20_000  # auto-refresh runs every 5 s; generous for a busy 2-core machine


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail(
            "the browser tests need Debian's chromium on PATH and it was not found: "
            "apt-get install -y chromium (scripts/test does this when run as root)"
        )
    return path


def spki_pin(cert_pem: bytes) -> str:
    """base64(SHA-256(SubjectPublicKeyInfo)) of a certificate: what chromium's
    ``--ignore-certificate-errors-spki-list`` accepts, so it trusts exactly this server."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


@dataclass
class Scene:
    server: RunningServer
    api: Callable[[str], httpx.Client]  # an API client with this key
    alice_key: str
    alice_job: str
    bob_job: str


def _populate(server: RunningServer, api: Callable[[str], httpx.Client]) -> Scene:
    """Through the API as the admin: site london, volume projects, employees alice (proj001) and
    bob (proj002) with keys; each submits a job in their project."""
    admin = api(server.api_key)
    for method, path, body in (
        ("POST", "/sites", {"code": "london"}),
        ("POST", "/volumes", {"code": "projects", "paths": {"hq": "/mnt/p", "london": "/data/p"}}),
        ("POST", "/users", {"email": "alice@acme.test", "role": "employee"}),
        ("POST", "/users", {"email": "bob@acme.test", "role": "employee"}),
        (
            "POST",
            "/acls",
            {"user": "alice@acme.test", "volume": "projects", "path": "proj001", "write": True},
        ),
        (
            "POST",
            "/acls",
            {"user": "bob@acme.test", "volume": "projects", "path": "proj002", "write": True},
        ),
    ):
        response = admin.request(method, path, json=body)
        assert response.status_code == 201, response.text
    keys = {}
    for name in ("alice", "bob"):
        made = admin.post(f"/users/{name}@acme.test/apikeys", json={"description": "browser"})
        keys[name] = made.json()["api_key"]
    alice_job = api(keys["alice"]).post(
        "/jobs",
        json={
            "name": EVIL_NAME,
            "destination": "site=london",
            "tasks": ["proj001/plates/a.exr", "proj001/plates/b.exr"],
        },
    )
    bob_job = api(keys["bob"]).post(
        "/jobs",
        json={"name": "proj002 confidential", "source": "proj002/x", "destination": "site=london"},
    )
    assert alice_job.status_code == bob_job.status_code == 201
    return Scene(server, api, keys["alice"], alice_job.json()["id"], bob_job.json()["id"])


@pytest.fixture
def scene(server_factory: Callable[..., RunningServer]) -> Iterator[Scene]:
    server = server_factory()
    verify = ssl.create_default_context(cafile=str(server.ca_file))
    clients: list[httpx.Client] = []

    def api(key: str) -> httpx.Client:
        client = httpx.Client(
            base_url=f"{server.url}/api/v1",
            verify=verify,
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        clients.append(client)
        return client

    try:
        yield _populate(server, api)
    finally:
        for client in clients:
            client.close()


@contextmanager
def chromium_for(server: RunningServer) -> Iterator[Browser]:
    """Chromium trusting exactly ``server``'s certificate (its SPKI pin)."""
    pin = spki_pin((server.data_dir / "tls" / "server.crt").read_bytes())
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path(),
            args=[f"--ignore-certificate-errors-spki-list={pin}"],
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def browser(scene: Scene) -> Iterator[Browser]:
    with chromium_for(scene.server) as browser:
        yield browser


def sign_in(page: Page, base: str, key: str) -> None:
    page.goto(f"{base}/ui/")
    page.fill("#api_key", key)
    page.click("#sign-in")
    expect(page).to_have_url(f"{base}/ui/")


def test_employee_signs_in_watches_pauses_resumes_and_signs_out(
    scene: Scene, browser: Browser
) -> None:
    context = browser.new_context()
    page: Page = context.new_page()
    problems: list[str] = []
    page.on(
        "console",
        lambda msg: problems.append(msg.text) if msg.type in ("error", "warning") else None,
    )
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    base = scene.server.url
    alice = scene.api(scene.alice_key)

    # A browser at / lands on the sign-in page; the key goes in a password field, in a POST.
    page.goto(f"{base}/")
    expect(page).to_have_url(f"{base}/ui/login?next=/ui/")
    page.fill("#email", "alice@acme.test")
    page.fill("#api_key", scene.alice_key)
    page.click("#sign-in")
    expect(page).to_have_url(f"{base}/ui/")
    expect(page.locator("#who")).to_contain_text("alice@acme.test")
    assert scene.alice_key not in page.url

    (cookie,) = context.cookies()
    assert cookie["name"] == "__Host-reelsync-session"
    assert (cookie["httpOnly"], cookie["secure"], cookie["sameSite"]) == (True, True, "Strict")
    assert scene.alice_key not in cookie["value"]
    assert page.evaluate("document.cookie") == ""  # HttpOnly: scripts cannot read it
    assert page.evaluate("window.localStorage.length") == 0

    # Her job, its name shown as text (not markup), and its progress bar.
    row = page.locator(f'tr[data-job-id="{scene.alice_job}"]')
    expect(row.locator("td.name a")).to_have_text(EVIL_NAME)
    assert page.locator("td.name b").count() == 0
    expect(row.locator(".pct")).to_have_text("0.0%")
    expect(row.locator("progress")).to_have_attribute("value", "0.0")

    # Not the other project's job, not even by its address.
    expect(page.locator("tr.job")).to_have_count(1)
    expect(page.get_by_text("proj002 confidential")).to_have_count(0)

    # Progress moves (a task done through the API): the list refreshes itself, no reload.
    page.evaluate("document.body.dataset.marker = 'same page'")
    edited = alice.patch(f"/jobs/{scene.alice_job}/tasks", json=[{"uri": "0", "status": "done"}])
    assert edited.status_code == 200, edited.text
    expect(row.locator(".pct")).to_have_text("50.0%", timeout=WAIT_MS)
    assert page.evaluate("document.body.dataset.marker") == "same page"

    # The job page: pause, then resume; the API agrees each time.
    row.locator("td.name a").click()
    expect(page).to_have_url(f"{base}/ui/jobs/{scene.alice_job}")
    expect(page.locator("#job-name")).to_have_text(EVIL_NAME)
    expect(page.locator("tr.group")).to_have_count(2)
    expect(page.locator("#job-progress")).to_have_text("50.0%")
    page.click("#action-pause")
    expect(page.locator("#job-status")).to_have_text("paused")
    assert alice.get(f"/jobs/{scene.alice_job}").json()["status"] == "paused"
    expect(page.locator("#action-pause")).to_have_count(0)
    page.click("#action-resume")
    expect(page.locator("#job-status")).to_have_text("running")
    assert alice.get(f"/jobs/{scene.alice_job}").json()["status"] == "running"

    response = page.goto(f"{base}/ui/jobs/{scene.bob_job}")
    assert response is not None
    assert response.status == 404
    expect(page.locator("#error-message")).to_contain_text("no job")
    expect(page.get_by_text("proj002 confidential")).to_have_count(0)
    (logged,) = problems  # chromium logs the 404 of the page itself, and nothing else
    assert "404" in logged
    problems.clear()

    # Sign out: the cookie is gone and the pages ask to sign in again.
    page.click("#sign-out")
    expect(page).to_have_url(f"{base}/ui/login")
    assert context.cookies() == []
    page.goto(f"{base}/ui/jobs/{scene.alice_job}")
    expect(page).to_have_url(f"{base}/ui/login?next=/ui/jobs/{scene.alice_job}")

    assert problems == []  # no CSP violation, no script error
    context.close()


def test_admin_watches_real_agents_move_a_shot(
    server_factory: Callable[..., RunningServer], tmp_path: Path
) -> None:
    server = server_factory()
    with server.session() as admin:
        world = build_world(admin, tmp_path / "studio")
    make_tree(world.volume_root("hq"), "proj001/sc0010/sh0010", frames=12, size=300_000)
    with ExitStack() as stack:
        for site in ("hq", "london"):
            agent = stack.enter_context(running_agent(server, site, tmp_path / f"agent-{site}"))
            agent.wait_online()
        browser = stack.enter_context(chromium_for(server))
        page = browser.new_page()
        sign_in(page, server.url, server.api_key)

        page.click("text=Agents")
        expect(page.locator("tr.agent")).to_have_count(2)
        for site in ("hq", "london"):
            row = page.locator("tr.agent", has_text=f"agent-{site}")
            expect(row).to_contain_text(site)
            expect(row.locator(".status")).to_have_text("online")
            expect(row.locator(".tag")).to_have_text("projects")

        submitted = server.cli(
            "sync", "--site", "london", "proj001/sc0010/sh0010/scans",
            REELSYNC_API_USER=OPERATOR, REELSYNC_API_KEY=world.operator_key,
        )  # fmt: skip
        assert submitted.returncode == 0, submitted.stderr
        page.click("text=Jobs")
        # "Active" drops the job once it is done, and a small job can be done before the page
        # loads: look at all jobs
        page.click("#show-all")
        row = page.locator("tr.job", has_text="proj001 download london")
        expect(row).to_have_count(1)
        expect(row.locator(".status")).to_have_text("done", timeout=60_000)  # auto-refresh
        expect(row.locator(".pct")).to_have_text("100.0%")
        expect(row).to_contain_text("3.4 MiB")  # 12 frames of 300 kB + the sidecar
        row.locator("td.name a").click()
        # sync sends the folder as one task: one row, with the files it held
        expect(page.locator("tr.group")).to_have_count(1)
        expect(page.locator("tr.group")).to_contain_text("scans/ (13 files)")
        expect(page.locator("tr.group .status-done")).to_have_count(1)
        page.locator("tr.group a").first.click()  # the drill-down: that folder's task
        expect(page.locator("tr.task .status-done")).to_have_count(1)
        frames = sorted((world.volume_root("london") / "proj001/sc0010/sh0010/scans").iterdir())
        assert len(frames) == 13
