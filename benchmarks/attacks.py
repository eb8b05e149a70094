"""Two of issue 10's attacks, timed and measured (not part of the tests):

    python benchmarks/attacks.py

- ReDoS: how long ``name matches "^(a+)+b"`` takes on a name of n ``a`` with Python's ``re``
  (what reelsync used) and with the query evaluator (RE2).
- Unbounded bodies: a real control plane (``reelsync server init`` + ``server run``, HTTPS) gets
  unauthenticated chunked POSTs of up to 300 MiB to ``/api/v1/jobs`` and ``/api/v3/event``;
  prints when each was answered, how much body had been sent by then, and the server's RSS
  before and after.
"""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from reelsync.domain.query import evaluate, parse_query  # noqa: E402
from support.servers import RunningServer, running_server  # noqa: E402

MIB = 1 << 20


def redos() -> None:
    query = parse_query("Job WHERE name matches '^(a+)+b'")
    for n in (18, 20, 22):
        started = time.perf_counter()
        re.compile("^(a+)+b", re.IGNORECASE).search("a" * n)
        print(f"python re, {n} characters: {time.perf_counter() - started:.3f} s")
    for n in (27, 40, 100_000):
        started = time.perf_counter()
        evaluate(query, {"name": "a" * n})
        print(f"reelsync query (RE2), {n} characters: {time.perf_counter() - started:.6f} s")


def _rss_mib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    return -1


def _upload(server: RunningServer, path: str, total: int) -> tuple[bytes, int, float]:
    url = urllib.parse.urlsplit(server.url)
    context = ssl.create_default_context(cafile=str(server.ca_file))
    block = b"%x\r\n" % (256 * 1024) + b" " * (256 * 1024) + b"\r\n"
    with (
        socket.create_connection((url.hostname, url.port)) as raw,
        context.wrap_socket(raw, server_hostname=url.hostname) as sock,
    ):
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {url.hostname}\r\nTransfer-Encoding: chunked\r\n"
            f"X-Accsyn-Workspace: {server.workspace}\r\n\r\n".encode()
        )
        sent, answer, started = 0, b"", time.perf_counter()
        while sent < total and not answer:
            sock.settimeout(0.01)
            with contextlib.suppress(TimeoutError, ssl.SSLWantReadError):
                answer = sock.recv(4096)
            if answer:
                break
            try:
                sock.settimeout(60)
                sock.sendall(block)
            except OSError:
                break
            sent += 256 * 1024
        return answer.split(b"\r\n")[0], sent, time.perf_counter() - started


def bodies() -> None:
    with running_server(Path(tempfile.mkdtemp()) / "server") as server:
        print(f"control plane RSS before: {_rss_mib(server.process.pid)} MiB")
        for path in ("/api/v1/jobs", "/api/v3/event"):
            status, sent, took = _upload(server, path, 300 * MIB)
            print(f"{path}: {status.decode()} after {sent / MIB:.1f} MiB of body, {took:.2f} s")
        print(f"control plane RSS after: {_rss_mib(server.process.pid)} MiB")


if __name__ == "__main__":
    redos()
    bodies()
