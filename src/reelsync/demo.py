"""``reelsync demo``: the control plane on one machine, from one command. Rules: everything lives
in a temporary directory (SQLite, the workspace CA) and a free loopback port; the server is a real
``reelsync server run`` child process stopped with SIGTERM; everything is removed afterwards, even
on Ctrl-C. (The agents and the site sync join this demo when they land.)"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from reelsync.client import Session
from reelsync.config import ClientConfig
from reelsync.errors import ConnectionLostError, InternalError, ReelsyncError
from reelsync.server.datadir import bootstrap_database, init_data_dir

__all__ = ["run_demo"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_up(session: Session, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise InternalError(f"the demo control plane exited with {proc.returncode}")
        try:
            session.health()
            return
        except ConnectionLostError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _cell(value: object) -> str:
    if isinstance(value, dict):
        return "\n".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, bool):
        return "yes" if value else ""
    return str(value)


def _table(title: str, rows: list[dict[str, object]], columns: list[str]) -> Table:
    table = Table(title=title, title_justify="left")
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*(_cell(row.get(c, "")) for c in columns))
    return table


def _populate(session: Session, root: Path, console: Console) -> None:
    for site in ("hq", "london"):
        (root / site / "projects").mkdir(parents=True)
    session.create("site", {"code": "london", "name": "London"})
    session.create(
        "volume",
        {
            "code": "projects",
            "default": True,
            "paths": {s: str(root / s / "projects") for s in ("hq", "london")},
        },
    )
    session.create("queue", {"code": "proj001", "priority": 700})
    session.create("user", {"email": "coordinator@demo.local", "role": "employee"})
    session.grant("coordinator@demo.local", "projects", read=True, write=True)
    console.print(_table("sites", session.find("site"), ["code", "name", "id"]))
    console.print(_table("volumes", session.find("volume"), ["code", "default", "paths"]))
    console.print(_table("queues", session.find("queue"), ["code", "priority", "default"]))
    console.print(_table("users", session.find("user"), ["email", "role"]))


def run_demo(*, keep: bool = False, console: Console | None = None) -> None:
    """Start a throw-away control plane, set up hq + london, show it, stop it."""
    console = console or Console(stderr=False)
    with tempfile.TemporaryDirectory(prefix="reelsync-demo-") as tmp:
        root = Path(tmp)
        port = _free_port()
        console.print(f"[bold]reelsync demo[/bold] in {root}")
        result = init_data_dir(
            root / "data",
            workspace="demo",
            admin="admin@demo.local",
            bootstrap=bootstrap_database,
            env={},
            listen=f"127.0.0.1:{port}",
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "reelsync", "server", "run", "--data-dir", str(root / "data"),
             "--log-level", "warning"],
        )  # fmt: skip
        try:
            config = ClientConfig(
                url=result.config.url,
                api_user=result.admin,
                api_key=result.api_key,
                ca_file=result.config.ca_file,
            )
            with Session(config) as session:
                _wait_up(session, proc)
                console.print(f"control plane up at {config.url} (HTTPS, workspace CA)")
                _populate(session, root, console)
            if keep:
                console.print("running; in another shell:")
                console.print(f"  export REELSYNC_URL={config.url}")
                console.print(f"  export REELSYNC_CA_FILE={config.ca_file}")
                console.print(f"  export REELSYNC_API_KEY={result.api_key}")
                console.print("Ctrl-C stops it and removes everything.")
                proc.wait()
        except KeyboardInterrupt:
            pass
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
        if proc.returncode not in (0, -signal.SIGINT):
            raise ReelsyncError(f"the demo control plane stopped with exit code {proc.returncode}")
        console.print("demo done: control plane stopped, temporary files removed")
