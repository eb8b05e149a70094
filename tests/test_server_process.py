"""reelsync.server.process with a real uvicorn in a real child process: HTTPS with the workspace
certificate, the plain-HTTP accsyn dev listener, SIGTERM, a busy port. The app is a small
stand-in; the real control plane app is served in tests/test_server_cli.py."""

from __future__ import annotations

import signal
import socket
import ssl
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import httpx
import pytest

from reelsync import pki

SCRIPT = textwrap.dedent(
    """
    import asyncio
    import sys
    from pathlib import Path
    from fastapi import FastAPI
    from reelsync.config import ServerConfig
    from reelsync.errors import ReelsyncError
    from reelsync.server.process import serve

    app = FastAPI()
    data_dir, port, tls, dev = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4]

    @app.get("/api/v1/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/slow")
    async def slow() -> dict[str, str]:
        (data_dir / "slow-started").touch()
        await asyncio.sleep(1.0)
        return {"status": "late"}

    config = ServerConfig(data_dir=data_dir, database_url="sqlite://", port=port, tls=tls,
                          accsyn_dev_port=int(dev) if dev else None)
    try:
        serve(config, app)
    except ReelsyncError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    """
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    ca = pki.CertificateAuthority.create("acme")
    ca.save(tmp_path / "tls")
    pair = ca.issue_server_cert()
    pki.write_pem(tmp_path / "tls" / "server.crt", pair.cert_pem)
    pki.write_private_pem(tmp_path / "tls" / "server.key", pair.key_pem)
    return tmp_path


def start(
    data_dir: Path, port: int, *, tls: bool = True, dev: int | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            SCRIPT,
            str(data_dir),
            str(port),
            "1" if tls else "0",
            str(dev or ""),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_up(url: str, verify: ssl.SSLContext | bool, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1]
        try:
            if httpx.get(url, verify=verify, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError(f"{url} never came up")


def stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    return proc.returncode, err


def test_https_dev_listener_and_sigterm(data_dir: Path) -> None:
    port, dev = free_port(), free_port()
    proc = start(data_dir, port, dev=dev)
    try:
        ctx = ssl.create_default_context(cafile=str(data_dir / "tls" / "ca.crt"))
        wait_up(f"https://127.0.0.1:{port}/api/v1/health", ctx, proc)
        wait_up(f"https://localhost:{port}/api/v1/health", ctx, proc)
        # The dev listener: plain HTTP, same app.
        assert httpx.get(f"http://127.0.0.1:{dev}/api/v1/health").json() == {"status": "ok"}
        # Plain HTTP on the HTTPS port does not work; an unverified client is refused.
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=2)
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(f"https://127.0.0.1:{port}/api/v1/health", timeout=2)
    finally:
        code, err = stop(proc)
    assert code == 0, err
    assert "received SIGTERM, shutting down" in err
    assert "Traceback" not in err


def test_a_stop_ends_idle_connections_at_once_and_lets_a_request_finish(data_dir: Path) -> None:
    """Idle keep-alive HTTPS connections (an agent between polls, a browser) do not hold a stop
    for the graceful timeout; a request in flight still gets its whole answer."""
    port = free_port()
    proc = start(data_dir, port)
    ctx = ssl.create_default_context(cafile=str(data_dir / "tls" / "ca.crt"))
    base = f"https://127.0.0.1:{port}"
    idle = [httpx.Client(verify=ctx) for _ in range(3)]
    busy = httpx.Client(verify=ctx, timeout=30)  # pooled: it never closes its side either
    answer: list[httpx.Response] = []
    try:
        wait_up(f"{base}/api/v1/health", ctx, proc)
        for client in idle:
            assert client.get(f"{base}/api/v1/health").status_code == 200
        slow = threading.Thread(target=lambda: answer.append(busy.get(f"{base}/slow")))
        slow.start()
        deadline = time.monotonic() + 20
        while not (data_dir / "slow-started").exists():
            assert time.monotonic() < deadline, "the slow request never reached the server"
            time.sleep(0.01)
    finally:
        code, err = stop(proc)
        for client in (*idle, busy):
            client.close()
    slow.join(30)
    assert code == 0, err
    assert [r.json() for r in answer] == [{"status": "late"}]
    # with the idle connections waited for, uvicorn gave up on them after 10 s and said so
    assert "timeout graceful shutdown exceeded" not in err, err
    assert "Traceback" not in err


def test_no_tls_serves_plain_http(data_dir: Path) -> None:
    port = free_port()
    proc = start(data_dir, port, tls=False)
    try:
        wait_up(f"http://127.0.0.1:{port}/api/v1/health", False, proc)
    finally:
        code, err = stop(proc)
    assert code == 0, err


def test_busy_port_is_one_line(data_dir: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = start(data_dir, port)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 78
    assert err.strip() == f"error: cannot listen on 127.0.0.1:{port}: address already in use"


def test_busy_dev_port_releases_the_main_one(data_dir: Path) -> None:
    port = free_port()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        dev = busy.getsockname()[1]
        proc = start(data_dir, port, dev=dev)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 78
    assert f"127.0.0.1:{dev}: address already in use" in err


FREEZE_SCRIPT = textwrap.dedent(
    """
    import asyncio, gc, os, sys
    from pathlib import Path
    from reelsync.config import load_server_config
    from reelsync.server.controlplane import control_plane

    config = load_server_config(Path(sys.argv[1]), os.environ)
    with control_plane(config) as app:
        async def main() -> None:
            before = gc.get_freeze_count()
            async with app.router.lifespan_context(app):
                print(before, gc.get_freeze_count(), len(gc.get_objects()))
        asyncio.run(main())
    """
)


def test_the_control_plane_freezes_what_start_up_built(tmp_path: Path) -> None:
    """Once its app has started, the control plane moves what start-up built out of the cyclic
    collector's way: a full collection then walks only what requests made (before, each one
    walked ~170,000 start-up objects, a 150-180 ms stall of the request that triggered it). Run
    in a child process: a freeze in this one would hold the test session's garbage forever."""
    data_dir = tmp_path / "cp"
    init = subprocess.run(
        [sys.executable, "-m", "reelsync", "server", "init", "--data-dir", str(data_dir),
         "--workspace", "acme", "--admin", "admin@acme.com", "--json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert init.returncode == 0, init.stderr
    done = subprocess.run(
        [sys.executable, "-c", FREEZE_SCRIPT, str(data_dir)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    before, frozen, tracked = map(int, done.stdout.split())
    assert before == 0  # nothing frozen while the app was built (python -c, not the CLI)
    assert frozen > 50_000  # the app, its routes, schemas and the database's metadata
    assert tracked < frozen // 10  # what the collector still walks right after start-up
