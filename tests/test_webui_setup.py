"""The seed's whole story in a real browser (Playwright driving Debian's ``chromium``) against real
processes: ``reelsync server run`` with a real SMTP server, and two ``reelsync agent run``
enrolled with the command copied from the web UI.

The admin, in the browser only: creates the site london, adds an agent at hq and at london (the
enrollment command copied from the page, run as is but for local paths, the agents started for
real), creates the volume projects with its path at each site, the queue proj001, the operator
(an employee with an API key) and grants them read+write on projects. The operator signs in,
browses hq, picks two shots, sends them to london in proj001, and watches the job reach done by
itself; the files at london are identical; the mail's link opens that job.

Every page is saved as a screenshot at 1366 and 400 px wide (``screenshots/`` in the test's
temporary directory) and checked: no script or CSP error, no page wider than the window, every
form field labelled.
"""

from __future__ import annotations

import filecmp
import json
import re
import shlex
import subprocess
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from smtp_sink import SmtpSink
from support.agents import RunningAgent, start_agent, wait_until
from support.servers import RunningServer, reelsync_cmd
from sync_world import make_tree
from test_webui_browser import chromium_for, sign_in

pytestmark = pytest.mark.slow

OPERATOR = "coordinator@acme.test"
WAIT_MS = 30_000
WIDTHS = (1366, 400)

# Every form field has a name a screen reader can say; nothing sticks out of a narrow window.
_UNLABELLED = """() => Array.from(document.querySelectorAll('input, select, textarea, button'))
  .filter(el => el.type !== 'hidden' && el.offsetParent !== null)
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                && !(el.tagName === 'BUTTON' && el.textContent.trim()))
  .map(el => el.outerHTML)"""
_TOO_WIDE = "() => document.documentElement.scrollWidth - window.innerWidth"


class Shots:
    """Screenshots of every page at each width, and the checks each page must pass."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.taken: list[Path] = []

    def take(self, page: Page, name: str) -> None:
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            unlabelled = page.evaluate(_UNLABELLED)
            assert unlabelled == [], f"{name}: fields without a label: {unlabelled}"
            overflow = page.evaluate(_TOO_WIDE)
            assert overflow <= 0, f"{name} is {overflow} px wider than a {width} px window"
            path = self.folder / f"{name}-{width}.png"
            page.screenshot(path=str(path), full_page=True)
            self.taken.append(path)
        page.set_viewport_size({"width": WIDTHS[0], "height": 900})


def watch_console(page: Page, problems: list[str]) -> None:
    page.on(
        "console",
        lambda msg: problems.append(msg.text) if msg.type in ("error", "warning") else None,
    )
    page.on("pageerror", lambda exc: problems.append(str(exc)))


def enroll_from_page(
    page: Page, server: RunningServer, site: str, workdir: Path, stack: ExitStack
) -> RunningAgent:
    """On the agents page: a token for ``site``; the command copied with the page's button and
    the CA saved from its link, run as given (local paths swapped in); the agent started."""
    page.goto(f"{server.url}/ui/agents")
    page.select_option("#token-site", site)
    page.click("#make-token")
    expect(page.locator("#enroll-line")).to_be_visible()
    page.click("#copy-enroll")
    expect(page.locator("#copy-enroll")).to_have_text("Copied")
    line = page.evaluate("navigator.clipboard.readText()")
    assert line == page.locator("#enroll-line").inner_text()
    machine = workdir / f"machine-{site}"
    machine.mkdir()
    with page.expect_download() as download:
        page.click("#ca-download")
    download.value.save_as(machine / "ca.crt")
    assert (machine / "ca.crt").read_bytes() == server.ca_file.read_bytes()
    words = shlex.split(line)
    assert words[:3] == ["reelsync", "agent", "enroll"]
    args = words[1:]
    data_dir = machine / "agent"
    args[args.index("--data-dir") + 1] = str(data_dir)
    args[args.index("--ca-file") + 1] = str(machine / "ca.crt")
    args += ["--listen", "127.0.0.1:0", "--hostname", f"agent-{site}", "--json"]
    done = subprocess.run(
        reelsync_cmd(*args),
        env=server.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    process, log_file = start_agent(server, data_dir)
    agent = RunningAgent(server, info["server_id"], site, data_dir, process, log_file)
    stack.callback(_stop_cleanly, agent)
    return agent


def _stop_cleanly(agent: RunningAgent) -> None:
    code = agent.stop()
    text = agent.log()
    assert code == 0, f"agent exited {code} on SIGTERM:\n{text}"
    assert "Traceback" not in text, text


@contextmanager
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink("none")
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


def admin_sets_up(page: Page, server: RunningServer, roots: dict[str, Path], shots: Shots) -> str:
    """The seed's set-up, in the browser; the operator's API key."""
    base = server.url
    page.goto(f"{base}/ui/login")
    shots.take(page, "login")
    sign_in(page, base, server.api_key)
    shots.take(page, "jobs-empty")

    page.click("nav >> text=Sites")
    page.fill("#site-code", "london")
    page.fill("#site-name", "London office")
    page.click("#create-site")
    expect(page.locator("#notice")).to_have_text("Site created.")
    expect(page.locator('tr.site[data-site="london"]')).to_have_count(1)
    shots.take(page, "sites")

    page.click("nav >> text=Volumes")
    page.fill("#volume-code", "projects")
    page.fill("#new-path-hq", str(roots["hq"]))
    page.fill("#new-path-london", str(roots["london"]))
    page.check("#volume-default")
    page.click("#create-volume")
    expect(page.locator("#notice")).to_have_text("Volume created.")
    expect(page.locator("#path-projects-london")).to_have_value(str(roots["london"]))

    page.click("nav >> text=Queues")
    page.fill("#queue-code", "proj001")
    page.fill("#queue-priority", "700")
    page.click("#create-queue")
    expect(page.locator("#notice")).to_have_text("Queue created.")
    page.fill("#weight-proj001", "2")
    page.fill("#done-proj001", "producer@acme.test")
    page.click("#save-queue-proj001")
    expect(page.locator("#notice")).to_have_text("Queue saved.")
    expect(page.locator("#priority-proj001")).to_have_value("700")
    expect(page.locator("#done-proj001")).to_have_value("producer@acme.test")
    shots.take(page, "queues")

    page.click("nav >> text=Users")
    page.fill("#user-email", OPERATOR)
    page.select_option("#user-role", "employee")
    page.click("#create-user")
    key = page.locator("#new-key").inner_text()
    assert key.startswith("rsk_")
    shots.take(page, "users-new-key")
    page.goto(f"{base}/ui/users")
    assert key not in page.content()  # shown once only
    section = page.locator(f'section.user[data-user="{OPERATOR}"]')
    section.locator("select[name=volume]").select_option("projects")
    section.locator("input[name=write]").check()
    section.get_by_role("button", name=f"Grant {OPERATOR} access").click()
    expect(page.locator("#notice")).to_have_text("Access granted.")
    expect(section.locator("li.grant")).to_contain_text("projects (whole volume)")
    expect(section.locator("li.grant")).to_contain_text("read+write")
    shots.take(page, "users")

    page.click("nav >> text=Volumes")
    expect(page.locator('section.volume[data-volume="projects"] li.grant')).to_contain_text(
        OPERATOR
    )
    shots.take(page, "volumes")

    page.click("nav >> text=Settings")
    expect(page.locator("#mail-status")).to_contain_text("configured SMTP server")
    expect(page.locator("#smtp-warning")).to_have_count(0)
    shots.take(page, "settings")
    return key


def test_admin_sets_up_in_the_browser_and_the_operator_sends_two_shots(
    server_factory: Callable[..., RunningServer], tmp_path: Path
) -> None:
    roots = {site: tmp_path / "studio" / site / "projects" for site in ("hq", "london")}
    for root in roots.values():
        root.mkdir(parents=True)
    for shot in ("sh0010", "sh0020"):
        make_tree(roots["hq"], f"proj001/sc0010/{shot}", frames=24, size=40_000)
    make_tree(roots["hq"], "proj001/sc0010/sh0030", frames=3, size=10)  # not sent
    shots = Shots(tmp_path / "screenshots")
    problems: list[str] = []

    with ExitStack() as stack:
        sink = stack.enter_context(smtp_sink())
        server = server_factory(
            env={
                "REELSYNC_SMTP_HOST": "127.0.0.1",
                "REELSYNC_SMTP_PORT": str(sink.port),
                "REELSYNC_SMTP_FROM": "reelsync@acme.test",
            }
        )
        browser: Browser = stack.enter_context(chromium_for(server))
        admin_ctx: BrowserContext = browser.new_context(
            permissions=["clipboard-read", "clipboard-write"]
        )
        page = admin_ctx.new_page()
        watch_console(page, problems)

        operator_key = admin_sets_up(page, server, roots, shots)

        # The agents, from the page's own command; the page shows them online, ids and rates.
        agents = [
            enroll_from_page(page, server, site, tmp_path, stack) for site in ("hq", "london")
        ]
        shots.take(page, "agents-token")
        page.goto(f"{server.url}/ui/agents")
        for agent in agents:
            row = page.locator(f'tr.agent[data-agent-id="{agent.server_id}"]')
            expect(row.locator(".status")).to_have_text("online", timeout=WAIT_MS)
            expect(row).to_contain_text(agent.server_id)
            expect(row).to_contain_text(f"agent-{agent.site}")
        shots.take(page, "agents")

        # The operator: browse hq, pick two shots, send them to london in proj001.
        operator_ctx = browser.new_context()
        op = operator_ctx.new_page()
        watch_console(op, problems)
        sign_in(op, server.url, operator_key)
        expect(op.locator("nav >> text=Users")).to_have_count(0)
        expect(op.locator("nav >> text=Settings")).to_have_count(0)
        op.click("nav >> text=Transfer")
        expect(op.locator("tr.entry.folder")).to_have_text(re.compile("proj001/"))
        op.click("a.open-folder >> text=proj001/")
        op.click("a.open-folder >> text=sc0010/")
        op.click("a.open-folder >> text=sh0010/")
        op.click("a.open-folder >> text=scans/")
        sequence = op.locator("tr.entry.sequence")
        expect(sequence).to_contain_text("sh0010.####.exr 1001-1024")
        expect(sequence).to_contain_text("(24 files)")
        expect(sequence.locator("td.has")).to_have_text("missing")
        shots.take(op, "transfer-scans")
        op.locator("nav.crumbs >> text=sc0010").click()
        for shot in ("sh0010", "sh0020"):
            op.get_by_label(f"Select {shot}").check()
        op.select_option("#send-queue", "proj001")
        shots.take(op, "transfer")
        op.click("#send")
        expect(op).to_have_url(re.compile(r"/ui/jobs/[0-9a-f]+\?done=sent$"))
        expect(op.locator("#notice")).to_have_text("Sent: the files were added to this job.")
        job_id = op.locator("#job-id").inner_text()
        expect(op.locator("#job-name")).to_contain_text("proj001 download london")
        expect(op.locator("#job-status")).to_have_text("done", timeout=60_000)  # server push
        expect(op.locator("#job-progress")).to_have_text("100.0%")
        groups = op.locator("tr.group")
        expect(groups).to_have_count(2)  # a task per shot folder, as reelsync sync sends them
        expect(groups.first).to_contain_text("sh0010/")
        expect(groups.first).to_contain_text("(25 files)")
        expect(op.locator("li.addition")).to_have_count(1)
        shots.take(op, "job")

        for shot in ("sh0010", "sh0020"):
            scans = f"proj001/sc0010/{shot}/scans"
            match, mismatch, errors = filecmp.cmpfiles(
                roots["hq"] / scans,
                roots["london"] / scans,
                sorted(p.name for p in (roots["hq"] / scans).iterdir()),
                shallow=False,
            )
            assert (len(match), mismatch, errors) == (25, [], [])
        assert not (roots["london"] / "proj001/sc0010/sh0030").exists()

        # After: the transfer page shows london has them; the jobs list finds the job.
        op.goto(f"{server.url}/ui/transfer?path=proj001/sc0010")
        expect(op.locator('tr.entry[data-name="sh0010"] td.has')).to_have_text("has it")
        expect(op.locator('tr.entry[data-name="sh0030"] td.has')).to_have_text("missing")
        op.goto(f"{server.url}/ui/?show=done&q=london")
        expect(op.locator(f'tr.job[data-job-id="{job_id}"]')).to_have_count(1)
        shots.take(op, "jobs")

        # The mail (to the operator and the queue's recipient) links to the job's page.
        mail = wait_until(
            lambda: next((m for m in sink.received if OPERATOR in m.rcpt_tos), None),
            timeout=60,
            what="the operator's mail",
        )
        assert "producer@acme.test" in mail.rcpt_tos
        link = re.search(r"Open the job: (\S+)", mail.message.as_string())
        assert link is not None
        assert link.group(1) == f"{server.url}/ui/jobs/{job_id}"
        op.goto(link.group(1))
        expect(op.locator("#job-id")).to_have_text(job_id)

        # A second sync the same day adds to that job: its history shows both.
        op.goto(f"{server.url}/ui/transfer?path=proj001/sc0010")
        op.get_by_label("Select sh0030").check()
        op.click("#send")  # the project's own queue, proj001: the same job
        expect(op).to_have_url(f"{server.url}/ui/jobs/{job_id}?done=sent")
        expect(op.locator("li.addition")).to_have_count(2)
        expect(op.locator("li.addition").last).to_contain_text(
            "added 1 item (52 B): proj001/sc0010/sh0030"
        )
        expect(op.locator("#job-status")).to_have_text("done", timeout=60_000)
        assert filecmp.cmp(
            roots["hq"] / "proj001/sc0010/sh0030/scans/sh0030.1002.exr",
            roots["london"] / "proj001/sc0010/sh0030/scans/sh0030.1002.exr",
            shallow=False,
        )

        # An employee does not reach the set-up, even by address.
        response = op.goto(f"{server.url}/ui/settings")
        assert response is not None
        expect(op.locator("#mail-status")).to_have_count(0)
        missing = op.goto(f"{server.url}/ui/jobs/{job_id[::-1]}")
        assert missing is not None
        assert missing.status == 404
        shots.take(op, "error")
        assert len(problems) == 1  # chromium logs the 404 of the page itself
        assert "404" in problems.pop()

        assert problems == [], problems
        operator_ctx.close()
        admin_ctx.close()
    assert len(shots.taken) == 2 * 15
