"""Fault tests of the data plane with real processes (`reelsync transfer serve|push`), real TCP
and mutual TLS: a killed receiver, a cut connection, a corrupted chunk, a full disk, a source
that changes mid-transfer, a certificate from another workspace."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dataplane_pki import AgentFiles, Workspace

pytestmark = pytest.mark.slow
KIB = 1024


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, AgentFiles]:
    base = tmp_path_factory.mktemp("pki")
    ws = Workspace(base / "acme")
    evil = Workspace(base / "evil", code="evil")
    return {"hq": ws.agent("hq1"), "lon": ws.agent("lon1", "london"), "evil": evil.agent("x")}


def tls_args(a: AgentFiles) -> list[str]:
    return ["--cert", str(a.cert), "--key", str(a.key), "--ca", str(a.ca)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Receiver:
    def __init__(self, certs: dict[str, AgentFiles], dst: Path, port: int, *extra: str) -> None:
        self.args = [
            sys.executable,
            "-m",
            "reelsync",
            "transfer",
            "serve",
            *tls_args(certs["lon"]),
            "--volume",
            f"d={dst}",
            "--listen",
            f"127.0.0.1:{port}",
            "--chunk-kib",
            "128",
            *extra,
        ]
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.args, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("the receiver did not start")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()


@pytest.fixture
def receiver_factory(certs: dict[str, AgentFiles]) -> Iterator[object]:
    made: list[Receiver] = []

    def make(dst: Path, port: int | None = None, *extra: str) -> Receiver:
        r = Receiver(certs, dst, port or free_port(), *extra)
        made.append(r)
        r.start()
        return r

    yield make
    for r in made:
        r.stop()


def push(
    certs: dict[str, AgentFiles],
    src: Path,
    port: int,
    files: list[str],
    *extra: str,
    who: str = "hq",
    wait: bool = True,
) -> subprocess.Popen[str] | tuple[int, list[dict[str, object]], str]:
    args = [
        sys.executable,
        "-m",
        "reelsync",
        "transfer",
        "push",
        *tls_args(certs[who]),
        "--volume",
        f"s={src}",
        "--peer",
        f"127.0.0.1:{port}",
        "--chunk-kib",
        "128",
        "--json",
        "--retry-deadline",
        "30",
        *extra,
    ]
    for f in files:
        args += ["--file", f"s:{f}=d:{f}"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if not wait:
        return proc
    return finish(proc)


def finish(proc: subprocess.Popen[str]) -> tuple[int, list[dict[str, object]], str]:
    out, err = proc.communicate(timeout=120)
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return proc.returncode, lines, err


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def visible(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_killed_receiver_resumes_from_verified_chunks(
    tmp_path: Path, certs, receiver_factory
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    dst.mkdir()
    data = os.urandom(6 * 1024 * KIB)
    write(src / "plate.mov", data)
    port = free_port()
    rx = receiver_factory(dst, port)
    proc = push(certs, src, port, ["plate.mov"], "--bwlimit", "2", wait=False)
    journal = dst / ".plate.mov.reelsync-journal"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # wait for some verified chunks (16 = 2 MiB)
        if journal.exists() and journal.stat().st_size > 100 + 16 * 20:
            break
        time.sleep(0.02)
    rx.kill()
    assert not (dst / "plate.mov").exists()
    assert (dst / ".plate.mov.reelsync-part").exists()
    time.sleep(0.5)
    receiver_factory(dst, port)
    code, lines, err = finish(proc)
    assert code == 0, err
    summary = lines[-1]
    assert (dst / "plate.mov").read_bytes() == data
    assert visible(dst) == ["plate.mov"]  # part file and journal are gone
    assert int(summary["bytes_sent"]) <= len(data) - 2 * 1024 * KIB, summary


class CuttingProxy:
    """Forwards TCP to a target; cut() drops every connection it carries (the listener stays)."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.bytes = 0
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                a, _ = self.sock.accept()
            except OSError:
                return
            b = socket.create_connection(("127.0.0.1", self.target))
            with self.lock:
                self.conns += [a, b]
            for x, y in ((a, b), (b, a)):
                threading.Thread(target=self._pipe, args=(x, y), daemon=True).start()

    def _pipe(self, x: socket.socket, y: socket.socket) -> None:
        try:
            while data := x.recv(65536):
                self.bytes += len(data)
                y.sendall(data)
        except OSError:
            pass
        for s in (x, y):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        with self.lock:
            conns, self.conns = self.conns, []
        for s in conns:
            try:
                s.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )
                # wake the pipe thread blocked in recv on it: until then the kernel keeps the
                # socket (close alone sends nothing) and its peer would see no cut at all
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass

    def close(self) -> None:
        self.sock.close()
        self.cut()


def test_cut_connection_reconnects_and_completes(tmp_path: Path, certs, receiver_factory) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    dst.mkdir()
    big = os.urandom(4 * 1024 * KIB)
    write(src / "a.bin", big)
    smalls = {f"seq/f.{i:04d}.exr": os.urandom(3000 + i) for i in range(40)}
    for rel, d in smalls.items():
        write(src / rel, d)
    rx = receiver_factory(dst)
    proxy = CuttingProxy(rx.port)
    try:
        proc = push(certs, src, proxy.port, ["a.bin", *smalls], "--bwlimit", "2", wait=False)
        deadline = time.monotonic() + 30
        while proxy.bytes < 1024 * KIB and time.monotonic() < deadline:
            time.sleep(0.02)
        proxy.cut()
        code, lines, err = finish(proc)
    finally:
        proxy.close()
    assert code == 0, err
    assert (dst / "a.bin").read_bytes() == big
    for rel, d in smalls.items():
        assert (dst / rel).read_bytes() == d
    assert lines[-1]["failed"] == 0


def test_corrupted_chunk_is_detected_and_resent(tmp_path: Path, certs, receiver_factory) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    dst.mkdir()
    data = os.urandom(1024 * KIB)
    write(src / "f.bin", data)
    write(src / "small.txt", b"tiny file")
    rx = receiver_factory(dst)
    code, lines, err = push(
        certs,
        src,
        rx.port,
        ["f.bin", "small.txt"],
        "--debug-corrupt",
        "f.bin:3",
        "--debug-corrupt",
        "small.txt:0",
    )
    assert code == 0, err
    assert (dst / "f.bin").read_bytes() == data
    assert (dst / "small.txt").read_bytes() == b"tiny file"
    files = {str(line["key"]): line for line in lines if line["event"] == "file"}
    assert files["0"]["bytes_sent"] == len(data) + 128 * KIB  # chunk 3 went twice
    assert files["1"]["bytes_sent"] == 2 * len(b"tiny file")
    assert str(files["0"]["digest"]).startswith("xxh3-128t:")


@pytest.fixture
def tiny_volume(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "tiny"
    path.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(path)], capture_output=True
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root): {result.stderr.decode().strip()}")
    yield path
    subprocess.run(["umount", "-l", str(path)], check=False)


def test_disk_full_fails_clearly_and_leaves_nothing_partial(
    tmp_path: Path, certs, receiver_factory, tiny_volume: Path
) -> None:
    src = tmp_path / "src"
    for name in ("a.bin", "b.bin", "c.bin"):
        write(src / name, os.urandom(3 * 1024 * KIB))
    write(src / "small.txt", b"fits")
    rx = receiver_factory(tiny_volume)
    code, lines, err = push(certs, src, rx.port, ["a.bin", "b.bin", "c.bin", "small.txt"])
    assert code == 1
    files = {str(line["key"]): line for line in lines if line["event"] == "file"}
    failed = [f for f in files.values() if f["status"] == "failed"]
    assert failed, files
    assert all(f["error_code"] == "disk_full" for f in failed), failed
    assert "no space left" in str(failed[0]["error"])
    done = sorted(
        f"{'abc'[int(k)]}.bin" if k != "3" else "small.txt"
        for k, f in files.items()
        if f["status"] in ("done", "skipped")  # skipped: a retry found it complete
    )
    assert visible(tiny_volume) == done, files  # no part file, nothing partial under a final name
    for name in done:
        assert (tiny_volume / name).read_bytes() == (src / name).read_bytes()


def test_source_changed_mid_transfer_is_never_published(
    tmp_path: Path, certs, receiver_factory
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    dst.mkdir()
    write(src / "render.exr", os.urandom(4 * 1024 * KIB))
    rx = receiver_factory(dst)
    proc = push(certs, src, rx.port, ["render.exr"], "--bwlimit", "2", wait=False)
    journal = dst / ".render.exr.reelsync-journal"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # modify once the transfer is under way
        if journal.exists() and journal.stat().st_size > 100 + 4 * 20:
            break
        time.sleep(0.02)
    with open(src / "render.exr", "r+b") as fh:  # an artist re-renders over it, in place
        fh.seek(3 * 1024 * KIB)
        fh.write(os.urandom(1024))
    code, lines, err = finish(proc)
    assert code == 1
    [result] = [line for line in lines if line["event"] == "file"]
    assert result["status"] == "failed", result
    assert result["error_code"] == "integrity", result
    assert "changed" in str(result["error"])
    # never anything under the final name; the hidden part file, if the receiver keeps it, is
    # tied to the old source version by its journal and is discarded by the next transfer
    assert not (dst / "render.exr").exists()
    assert all(name.startswith(".render.exr.reelsync-") for name in visible(dst)), visible(dst)


def test_certificate_of_another_workspace_is_refused(
    tmp_path: Path, certs, receiver_factory
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    dst.mkdir()
    write(src / "f", b"secret")
    rx = receiver_factory(dst)
    code, lines, err = push(certs, src, rx.port, ["f"], who="evil")
    assert code == 1
    [result] = [line for line in lines if line["event"] == "file"]
    assert result["error_code"] == "unauthenticated", result
    assert not result["retryable"]
    assert visible(dst) == []
