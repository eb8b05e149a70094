"""``reelsync demo``: the main job on one machine, from one command.

Everything lives in a temporary directory on loopback: ``reelsync server init`` + ``server run``
(SQLite, the workspace CA), a local SMTP server capturing mail, two agents (``hq`` and ``london``)
enrolled and running with their own volume roots, a generated project (``proj001``, two shots of
EXR-like frames and sidecars). As an employee operator it syncs both shots to london with a
progress bar, verifies every file at london against hq by digest, prints the e-mail the control
plane sent, then stops everything and removes the directory - also on Ctrl-C. ``keep`` leaves it
running until Ctrl-C. Rules: children run this Python (``sys.executable -m reelsync``) and never
see the caller's REELSYNC_*/ACCSYN_* settings; a failure is one ReelsyncError.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
import time
from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from rich.console import Console

from reelsync.client import Session
from reelsync.config import ClientConfig
from reelsync.demo.mailbox import CapturedMail, Mailbox
from reelsync.demo.processes import Child, Children, reelsync_json
from reelsync.demo.tree import compare_trees, make_project, shot_paths
from reelsync.errors import ConnectionLostError, IntegrityError, TransferError, UnavailableError
from reelsync.sync import JobView, site_sync, watch_jobs
from reelsync.sync.quantities import human_duration, human_size

__all__ = ["OPERATOR", "SITES", "run_demo"]

SITES = ("hq", "london")
WORKSPACE = "demo"
ADMIN = "admin@demo.local"
OPERATOR = "coordinator@demo.local"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _child_env(env: Mapping[str, str], root: Path) -> dict[str, str]:
    clean = {k: v for k, v in env.items() if not k.startswith(("REELSYNC_", "ACCSYN_", "AS_DEV"))}
    clean["REELSYNC_CREDENTIALS_FILE"] = str(root / "no-credentials")
    return clean


def _wait_for(what: str, check: Any, children: Children, timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        children.check_alive()
        try:
            value = check()
        except ConnectionLostError:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise UnavailableError(f"the demo gave up waiting for {what} after {timeout_s:.0f} s")
        time.sleep(0.1)


class _Demo:
    def __init__(self, root: Path, env: Mapping[str, str], console: Console) -> None:
        self.root = root
        self.console = console
        self.env = _child_env(env, root)
        (root / "logs").mkdir()
        self.children = Children(root / "logs")
        self.stack = ExitStack()

    def say(self, text: str) -> None:
        self.console.print(text, highlight=False)

    def volume_root(self, site: str) -> Path:
        return self.root / site / "projects"

    # -- the control plane -------------------------------------------------------------------------

    def start_server(self, mailbox: Mailbox) -> tuple[Session, dict[str, Any]]:
        data = self.root / "control-plane"
        init = reelsync_json(
            ["server", "init", "--data-dir", str(data), "--workspace", WORKSPACE,
             "--admin", ADMIN, "--listen", f"127.0.0.1:{_free_port()}"],
            self.env,
            self.root / "logs" / "server-init.log",
        )  # fmt: skip
        server = self.children.start(
            "control-plane",
            ["server", "run", "--data-dir", str(data), "--log-level", "warning"],
            {**self.env, **mailbox.env()},
        )
        admin = self.session(init, init["admin"], init["api_key"])
        _wait_for("the control plane", admin.health, self.children, 30)
        self.say(
            f"control plane  {init['url']} (HTTPS, workspace CA; SQLite) - pid {server.process.pid}"
        )
        return admin, init

    def session(self, init: Mapping[str, Any], user: str, key: str) -> Session:
        config = ClientConfig(
            url=init["url"], api_user=user, api_key=key, ca_file=Path(init["ca_file"])
        )
        return self.stack.enter_context(Session(config))

    def set_up_studio(self, admin: Session) -> str:
        """Site london, volume projects (a root per site), queue proj001, the operator."""
        for site in SITES:
            self.volume_root(site).mkdir(parents=True)
        admin.create("site", {"code": "london", "name": "London"})
        admin.create(
            "volume",
            {
                "code": "projects",
                "default": True,
                "paths": {site: str(self.volume_root(site)) for site in SITES},
            },
        )
        admin.create("queue", {"code": "proj001", "name": "Project 001", "priority": 700})
        admin.create("user", {"email": OPERATOR, "name": "Coordinator", "role": "employee"})
        admin.grant(OPERATOR, "projects", read=True, write=True)
        key = str(admin.create_apikey(OPERATOR, description="demo")["api_key"])
        self.say(
            "studio         site london, volume projects "
            f"(hq: {self.volume_root('hq')}, london: {self.volume_root('london')}), "
            f"queue proj001, employee {OPERATOR} with read+write on projects"
        )
        return key

    # -- the agents --------------------------------------------------------------------------------

    def start_agents(self, admin: Session, init: Mapping[str, Any]) -> list[Child]:
        agents = []
        for site in SITES:
            token = admin.request("POST", "/servers/tokens", json_body={"site": site})["token"]
            data = self.root / "agents" / site
            reelsync_json(
                ["agent", "enroll", "--server", init["url"], "--ca-file", init["ca_file"],
                 "--token", token, "--data-dir", str(data), "--listen", "127.0.0.1:0",
                 "--hostname", f"{site}-agent"],
                self.env,
                self.root / "logs" / f"agent-{site}-enroll.log",
            )  # fmt: skip
            agents.append(
                self.children.start(
                    f"agent-{site}", ["agent", "run", "--data-dir", str(data)], self.env
                )
            )

        def online() -> bool:
            found = admin.find("server")
            return all(
                any(a.get("site") == site and a.get("status") == "online" for a in found)
                for site in SITES
            )

        _wait_for("both agents to come online", online, self.children, 30)
        self.say("agents         hq-agent (site hq) and london-agent (site london) online")
        return agents

    # -- the job -----------------------------------------------------------------------------------

    def sync(self, operator: Session, paths: list[str], timeout_s: float) -> JobView:
        result = site_sync(operator, paths, "london", "download")
        for note in result.notes:
            self.say(f"note           {note}")
        (job,) = result.jobs
        self.say(
            f"sync           {job.action} job '{job.name}' in queue {job.queue}: "
            f"{', '.join(paths)} hq -> london"
        )
        (view,) = watch_jobs(operator, [job.id], console=self.console, timeout_s=timeout_s)
        if view.status != "done":
            reasons = "; ".join(f"{t.source}: {t.last_error}" for t in view.failed[:3])
            raise TransferError(
                f"the demo job ended {view.status}" + (f": {reasons}" if reasons else "")
            )
        return view

    def verify(self, paths: list[str]) -> None:
        check = compare_trees(self.volume_root("hq"), self.volume_root("london"), paths)
        if not check.ok:
            wrong = [*check.missing[:3], *check.different[:3]]
            raise IntegrityError(
                f"london does not match hq: {len(check.missing)} missing, "
                f"{len(check.different)} different ({', '.join(wrong)})"
            )
        self.say(
            f"verified       {check.files} files, {human_size(check.bytes)}: every file at london "
            "matches hq (xxh3-128 digests)"
        )

    def show_mail(self, mailbox: Mailbox) -> None:
        mails = mailbox.wait(1, timeout_s=20)
        if not mails:
            self.say(
                "e-mail         none captured within 20 s (this control plane sends no job mail)"
            )
            return
        mail: CapturedMail = mails[0]
        self.say(f"e-mail         captured by the demo's SMTP server ({len(mails)} message(s)):")
        self.say(f"  From: {mail.message.get('From')}")
        self.say(f"  To: {', '.join(mail.recipients)}")
        self.say(f"  Subject: {mail.subject}")
        for line in mail.text().strip().splitlines():
            self.say(f"  | {line}")


def run_demo(
    env: Mapping[str, str],
    *,
    keep: bool = False,
    files: int = 200,
    console: Console | None = None,
    job_timeout_s: float = 300.0,
) -> None:
    """The whole demo (``files`` frames per shot); raises a ReelsyncError if any step fails."""
    console = console or Console(highlight=False, soft_wrap=True)
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="reelsync-demo-"))
    demo = _Demo(root, env, console)
    try:
        with demo.stack, Mailbox() as mailbox:
            demo.say(f"[bold]reelsync demo[/bold] in {root}")
            demo.say(f"mail           local SMTP server on {mailbox.host}:{mailbox.port}")
            admin, init = demo.start_server(mailbox)
            operator_key = demo.set_up_studio(admin)
            demo.start_agents(admin, init)
            paths = shot_paths()
            count, size = make_project(demo.volume_root("hq"), paths, frames=files)
            demo.say(f"project        proj001 at hq: {count} files, {human_size(size)}")
            operator = demo.session(init, OPERATOR, operator_key)
            view = demo.sync(operator, paths, job_timeout_s)
            demo.verify(paths)
            demo.show_mail(mailbox)
            demo.say(
                f"the job        '{view.name}' ({view.id}): {view.status}, "
                f"{human_size(view.bytes_done)}; see it with: reelsync job show {view.id}"
            )
            if keep:
                try:
                    demo.say("running until Ctrl-C; in another shell:")
                    demo.say(f"  export REELSYNC_URL={init['url']}")
                    demo.say(f"  export REELSYNC_CA_FILE={init['ca_file']}")
                    demo.say(f"  export REELSYNC_API_KEY={operator_key}")
                    demo.say(
                        f"  web UI: {init['url']}/ui/ (sign in with that API key; the browser "
                        "will warn about the demo's own certificate authority)"
                    )
                    demo.say(f"  reelsync job show {view.id}    # API: {init['url']}/api/v1/docs")
                    while True:
                        demo.children.check_alive()
                        time.sleep(0.5)
                except KeyboardInterrupt:
                    demo.say("stopping")
    finally:
        unclean = demo.children.stop()
        shutil.rmtree(root, ignore_errors=True)
    if unclean:
        raise UnavailableError(f"the demo's processes did not stop cleanly: {', '.join(unclean)}")
    demo.say(
        f"demo done in {human_duration(time.monotonic() - started)}: everything stopped, "
        f"{root} removed"
    )
