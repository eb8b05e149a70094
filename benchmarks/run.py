"""Benchmarks of the reelsync data plane against rsync over ssh, scp and cp (not part of the tests).

    python benchmarks/run.py [--sets seq,small,big] [--scale 1] [--tools reelsync,rsync,scp,cp]
                             [--tmpfs 12g] [--wan] [--wan-mib 256] [--streams 4] [--chunk-kib 4096]

Data sets (deterministic, seeded): seq = 2,000 x 2 MiB frames, small = 20,000 files of 4-64 KiB in
a shot-like tree, big = 4 x 512 MiB; ``--scale`` shrinks the file counts (and big's size below 1).
Each tool copies the set from src/ to a fresh dst/ on this machine: reelsync between two engine
processes over loopback (mutual TLS; each top-level entry of the set one item, a folder sent
as a folder, as the agents send a sync's paths), rsync -a and scp -r over ssh to localhost with
aes128-gcm@openssh.com (a private sshd on a spare port, installed with apt-get if missing), cp -a.
``--tmpfs SIZE`` runs everything in a RAM disk so the disk does not dominate. ``--wan`` also runs
the big file and a slice of seq across ../shared/tools/wanem (namespaces rs-hq -> rs-site, 50 ms
RTT, 0.1 % loss, 1 Gbit/s; ``--wan-link DELAY_MS_ONE_WAY,LOSS_PCT,MBIT`` for another link).
``--wan-small N`` also sends N files of 4-64 KiB across it. Needs root for sshd, tmpfs and network
namespaces.

Both ``reelsync transfer`` processes start from compiled bytecode, as an installed package does:
the package's modules are compiled once before the first run (from a source checkout with
PYTHONDONTWRITEBYTECODE set, each process would otherwise compile every module it imports, ~0.05 s
of CPU a process).

CPU: user + system seconds of every process of both ends (reelsync: both ``reelsync transfer``
processes; rsync: rsync, ssh, the sshd serving the connection and the remote rsync; scp likewise;
cp: cp), from the kernel's accounting of reaped children (``RUSAGE_CHILDREN``) plus the growth of
the private sshd's ``cutime + cstime``; shown per GB and per 1,000 files.

``--warm``: before each tool's run, write and delete a scratch file as large as the set next to
dst/, so each tool writes its copy into memory touched moments before. On a VM whose host backs
guest memory lazily, the first write into memory the guest has not used lately costs ~1 s/GB more
system time (seen here: the receiving engine's CPU for seq 8.6 s on a fresh RAM disk, 5.0 s on the
next run); without it the first tool of each set (reelsync, as listed) pays that, and a tool that
follows writes into the pages the one before just freed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MIB = 1 << 20
SSH_CIPHER = "aes128-gcm@openssh.com"
sys.path.insert(0, str(REPO / "tests"))


# -- data sets ---------------------------------------------------------------------------------
def _fill(path: Path, rng: random.Random, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        left = size
        while left:
            n = min(left, 8 * MIB)
            fh.write(rng.randbytes(n))
            left -= n


def warm_memory(dst: Path, size: int) -> None:
    """Write and delete a scratch file of ``size`` bytes next to ``dst`` (see --warm)."""
    scratch = dst.with_name(dst.name + ".warm")
    block = bytes(4 * MIB)
    with open(scratch, "wb") as f:
        for _ in range(size // len(block) + 1):
            f.write(block)
    scratch.unlink()


def make_set(name: str, root: Path, scale: float) -> tuple[int, int]:
    """Create data set ``name`` under ``root`` (once); returns (files, bytes)."""
    marker = root / ".complete"
    rng = random.Random(f"reelsync-bench-{name}-{scale}")
    if not marker.exists():
        shutil.rmtree(root, ignore_errors=True)
        if name == "seq":
            for i in range(max(1, round(2000 * scale))):
                _fill(
                    root / f"proj/sc010/sh{i // 250 * 10 + 10:04d}/plate/frame.{i:04d}.exr",
                    rng,
                    2 * MIB,
                )
        elif name == "small":
            tasks = ["comp", "light", "anim", "fx", "roto"]
            for i in range(max(1, round(20000 * scale))):
                shot = f"sc{i // 2000 * 10 + 10:03d}/sh{i // 100 % 20 * 10 + 10:04d}"
                task = tasks[i // 20 % len(tasks)]
                ext = ("json", "nk", "txt", "xml", "usda")[i % 5]
                _fill(
                    root / f"proj/{shot}/{task}/v{i % 3 + 1:03d}/file_{i:05d}.{ext}",
                    rng,
                    rng.randint(4 * 1024, 64 * 1024),
                )
        elif name == "big":
            size = int(512 * MIB * min(1.0, scale)) if scale < 1 else 512 * MIB
            for i in range(4):
                _fill(root / f"proj/delivery/reel{i + 1}.mov", rng, size)
        else:
            raise SystemExit(f"unknown data set {name!r}")
        marker.write_text("ok")
    files = [p for p in root.rglob("*") if p.is_file() and p.name != ".complete"]
    return len(files), sum(p.stat().st_size for p in files)


def tree_summary(root: Path) -> tuple[int, int]:
    files = [p for p in root.rglob("*") if p.is_file() and p.name != ".complete"]
    return len(files), sum(p.stat().st_size for p in files)


# -- helpers -----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(host: str, port: int, ns: str | None = None, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cmd = [
            *ns_prefix(ns),
            sys.executable,
            "-c",
            f"import socket; socket.create_connection(('{host}', {port}), 0.3).close()",
        ]
        if subprocess.run(cmd, capture_output=True).returncode == 0:
            return
        time.sleep(0.1)
    raise SystemExit(f"nothing listens on {host}:{port}")


def ns_prefix(ns: str | None) -> list[str]:
    return ["ip", "netns", "exec", ns] if ns else []


def children_cpu() -> float:
    """User + system seconds of this process's reaped children (and theirs)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


SSHD_PIDS: list[int] = []  # the private sshd (its connections' CPU is reaped into it)


def sshd_cpu() -> float:
    """CPU seconds of the private sshd's reaped children (a connection's sshd, remote rsync)."""
    total = 0.0
    for pid in SSHD_PIDS:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")
    return total


@contextlib.contextmanager
def sshd(work: Path, host: str = "127.0.0.1", ns: str | None = None) -> Iterator[list[str]]:
    """A private sshd; yields the ssh command line (client options) to reach it as root."""
    if not Path("/usr/sbin/sshd").exists():
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "openssh-server"],
            check=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
    keys = work / "ssh"
    keys.mkdir(parents=True, exist_ok=True)
    for name in ("host", "client"):
        if not (keys / name).exists():
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / name)], check=True
            )
    shutil.copy(keys / "client.pub", keys / "authorized_keys")
    os.chmod(keys / "authorized_keys", 0o600)
    Path("/run/sshd").mkdir(exist_ok=True)
    port = free_port()
    conf = keys / "sshd_config"
    conf.write_text(
        f"Port {port}\nListenAddress {host}\nHostKey {keys / 'host'}\n"
        f"AuthorizedKeysFile {keys / 'authorized_keys'}\nPermitRootLogin yes\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        f"PidFile {keys / 'sshd.pid'}\nCiphers {SSH_CIPHER},aes256-gcm@openssh.com\n"
        "StrictModes no\nSubsystem sftp internal-sftp\n"
    )
    proc = subprocess.Popen(
        [*ns_prefix(ns), "/usr/sbin/sshd", "-D", "-e", "-f", str(conf)], stderr=subprocess.DEVNULL
    )
    SSHD_PIDS.append(proc.pid)
    try:
        wait_port(host, port, ns)
        yield [
            "ssh",
            "-p",
            str(port),
            "-i",
            str(keys / "client"),
            "-c",
            SSH_CIPHER,
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "BatchMode=yes",
        ]
    finally:
        SSHD_PIDS.remove(proc.pid)
        proc.terminate()
        proc.wait(10)


@dataclass
class Result:
    set: str
    tool: str
    files: int
    bytes: int
    seconds: float | None
    note: str = ""
    cpu: float | None = None  # user + system seconds, both ends, every process

    @property
    def mbps(self) -> float:
        return self.bytes / self.seconds / 1e6 if self.seconds else 0.0

    @property
    def fps(self) -> float:
        return self.files / self.seconds if self.seconds else 0.0

    @property
    def cpu_per_gb(self) -> float | None:
        return self.cpu / (self.bytes / 1e9) if self.cpu is not None and self.bytes else None

    @property
    def cpu_per_kfiles(self) -> float | None:
        return self.cpu / (self.files / 1000) if self.cpu is not None and self.files else None


def timed(cmd: list[str], timeout: float) -> tuple[float | None, str]:
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"timeout after {timeout:.0f} s"
    seconds = time.monotonic() - t0
    if proc.returncode != 0:
        return None, f"exit {proc.returncode}: {(proc.stderr or proc.stdout).strip()[-300:]}"
    return seconds, ""


# -- tools -------------------------------------------------------------------------------------
def _items(src: Path) -> list[str]:
    """The set as the agents send a sync's paths: each top-level entry one item, a folder as a
    folder (the sender walks it once, the receiver plans it in runs), a file as a file."""
    out: list[str] = []
    for entry in sorted(os.listdir(src)):
        out += ["--file", f"s:{entry}=d:{entry}"]
    return out


class Reelsync:
    """Two `reelsync transfer` processes: a listening receiver and a pushing sender."""

    def __init__(self, work: Path, streams: int, chunk_kib: int, *, fsync: bool = True) -> None:
        from dataplane_pki import Workspace

        # start from compiled bytecode, as an installed package does (see the module's header)
        compile_package = (
            "import compileall, os, reelsync; "
            "compileall.compile_dir(os.path.dirname(reelsync.__file__), quiet=1)"
        )
        subprocess.run([sys.executable, "-c", compile_package], check=True)

        ws = Workspace(work / "pki")
        self.hq, self.site = ws.agent("bench-hq", "hq"), ws.agent("bench-site", "london")
        self.streams, self.chunk_kib, self.fsync = streams, chunk_kib, fsync
        self.cpu = 0.0  # of the last run

    def _tls(self, a: object) -> list[str]:
        return ["--cert", str(a.cert), "--key", str(a.key), "--ca", str(a.ca)]  # type: ignore[attr-defined]

    def run(
        self,
        src: Path,
        dst: Path,
        timeout: float,
        *,
        host: str = "127.0.0.1",
        rx_ns: str | None = None,
        tx_ns: str | None = None,
    ) -> tuple[float | None, str]:
        dst.mkdir(parents=True, exist_ok=True)
        port = free_port()
        tune = ["--streams", str(self.streams), "--chunk-kib", str(self.chunk_kib)]
        tune += [] if self.fsync else ["--no-fsync"]
        rx = subprocess.Popen(
            [
                *ns_prefix(rx_ns),
                sys.executable,
                "-m",
                "reelsync",
                "transfer",
                "serve",
                *self._tls(self.site),
                "--volume",
                f"d={dst}",
                "--listen",
                f"{host}:{port}",
                *tune,
            ],
            stderr=subprocess.DEVNULL,
        )
        cpu0 = 0.0
        try:
            wait_port(host, port, rx_ns)
            cpu0 = children_cpu()
            seconds, note = timed(
                [
                    *ns_prefix(tx_ns),
                    sys.executable,
                    "-m",
                    "reelsync",
                    "transfer",
                    "push",
                    *self._tls(self.hq),
                    "--volume",
                    f"s={src}",
                    "--peer",
                    f"{host}:{port}",
                    *_items(src),
                    *tune,
                ],
                timeout,
            )
        finally:
            rx.send_signal(signal.SIGTERM)
            try:
                rx.wait(10)
            except subprocess.TimeoutExpired:
                rx.kill()
                rx.wait()
        self.cpu = children_cpu() - cpu0
        return seconds, note


def run_tool(
    tool: str,
    src: Path,
    dst: Path,
    ssh: list[str] | None,
    rs: Reelsync,
    timeout: float,
    *,
    host: str = "127.0.0.1",
    rx_ns: str | None = None,
    tx_ns: str | None = None,
    warm: int = 0,
) -> tuple[float | None, str, float]:
    """(seconds, note, CPU seconds of both ends); ``warm``: bytes to write and delete first
    (see --warm)."""
    shutil.rmtree(dst, ignore_errors=True)
    if warm:
        warm_memory(dst, warm)
    subprocess.run(["sync"], check=False)
    if tool == "reelsync":
        seconds, note = rs.run(src, dst, timeout, host=host, rx_ns=rx_ns, tx_ns=tx_ns)
        return seconds, note, rs.cpu
    cpu0 = children_cpu() + sshd_cpu()
    seconds, note = _run_other(tool, src, dst, ssh, timeout, host=host, tx_ns=tx_ns)
    time.sleep(0.3)  # the sshd reaps its connection's processes
    return seconds, note, children_cpu() + sshd_cpu() - cpu0


def _run_other(
    tool: str,
    src: Path,
    dst: Path,
    ssh: list[str] | None,
    timeout: float,
    *,
    host: str,
    tx_ns: str | None,
) -> tuple[float | None, str]:
    if tool == "cp":
        dst.mkdir(parents=True)
        return timed(["cp", "-a", f"{src}/.", f"{dst}/"], timeout)
    assert ssh is not None
    if tool == "rsync":
        dst.mkdir(parents=True)
        return timed(
            [
                *ns_prefix(tx_ns),
                "rsync",
                "-a",
                "--exclude",
                ".complete",
                "-e",
                " ".join(ssh),
                f"{src}/",
                f"{host}:{dst}/",
            ],
            timeout,
        )
    if tool == "scp":
        port = ssh[ssh.index("-p") + 1]
        opts = [o for o in ssh[1:] if o not in ("-p", port)]
        return timed(
            [*ns_prefix(tx_ns), "scp", "-q", "-r", "-P", port, *opts, str(src), f"{host}:{dst}"],
            timeout,
        )
    raise SystemExit(f"unknown tool {tool}")


def check_copy(tool: str, src: Path, dst: Path) -> str:
    inner = dst / src.name if tool == "scp" and (dst / src.name).is_dir() else dst
    got = tree_summary(inner)
    want = tree_summary(src)
    return "" if got == want else f"INCOMPLETE copy {got} != {want}"


# -- report ------------------------------------------------------------------------------------
def report(results: list[Result], title: str) -> None:
    print(f"\n## {title}")
    print(
        f"{'set':<8}{'tool':<10}{'files':>8}{'MB':>10}{'s':>9}{'MB/s':>10}{'files/s':>10}"
        f"{'x rsync':>9}{'x scp':>8}{'% cp':>7}{'cpu s':>8}{'cpu/GB':>8}{'cpu/kf':>8}"
        f"{'cpu x rsync':>12}  note"
    )
    by = {(r.set, r.tool): r for r in results}
    for r in results:

        def ratio(other: str, r: Result = r) -> str:
            o = by.get((r.set, other))
            if not o or not o.seconds or not r.seconds:
                return "-"
            return f"{o.seconds / r.seconds:.2f}"

        cp = by.get((r.set, "cp"))
        pct = f"{cp.seconds / r.seconds * 100:.0f}" if cp and cp.seconds and r.seconds else "-"
        secs = f"{r.seconds:.2f}" if r.seconds else "-"
        rsync = by.get((r.set, "rsync"))
        cpu_ratio = f"{r.cpu / rsync.cpu:.2f}" if r.cpu and rsync and rsync.cpu else "-"
        print(
            f"{r.set:<8}{r.tool:<10}{r.files:>8}{r.bytes / 1e6:>10.0f}{secs:>9}"
            f"{r.mbps:>10.1f}{r.fps:>10.0f}{ratio('rsync'):>9}{ratio('scp'):>8}{pct:>7}"
            f"{_num(r.cpu, 2):>8}{_num(r.cpu_per_gb, 2):>8}{_num(r.cpu_per_kfiles, 3):>8}"
            f"{cpu_ratio:>12}  {r.note}"
        )


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sets", default="seq,small,big")
    ap.add_argument("--tools", default="reelsync,rsync,scp,cp")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--work", type=Path, default=Path("/tmp/reelsync-bench"))
    ap.add_argument("--tmpfs", default=None, help="mount a RAM disk of this size on --work")
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--streams", type=int, default=4)
    ap.add_argument("--chunk-kib", type=int, default=4096)
    ap.add_argument("--wan", action="store_true")
    ap.add_argument("--wan-only", action="store_true")
    ap.add_argument("--wan-mib", type=int, default=256, help="size of the WAN big file")
    ap.add_argument("--wan-frames", type=int, default=100, help="seq frames sent over the WAN")
    ap.add_argument(
        "--wan-small", type=int, default=0, help="also this many 4-64 KiB files over the WAN"
    )
    ap.add_argument(
        "--wan-link",
        default="25,0.1,1000",
        help="the emulated link: one-way delay ms, loss %%, Mbit/s (wan up's arguments)",
    )
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument(
        "--warm", action="store_true", help="write and delete the set's size before each tool"
    )
    args = ap.parse_args()

    args.work.mkdir(parents=True, exist_ok=True)
    mounted = False
    if args.tmpfs and not os.path.ismount(args.work):
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={args.tmpfs}", "tmpfs", str(args.work)],
            check=True,
        )
        mounted = True
    results: list[Result] = []
    try:
        rs = Reelsync(args.work, args.streams, args.chunk_kib)
        tools = args.tools.split(",")
        if not args.wan_only:
            with sshd(args.work) as ssh:
                for name in args.sets.split(","):
                    src = args.work / "data" / name
                    files, size = make_set(name, src, args.scale)
                    print(f"# {name}: {files} files, {size / 1e6:.0f} MB", flush=True)
                    for tool in tools:
                        seconds, note, cpu = run_tool(
                            tool,
                            src,
                            args.work / "dst",
                            ssh,
                            rs,
                            args.timeout,
                            warm=size if args.warm else 0,
                        )
                        if seconds is not None:
                            note = check_copy(tool, src, args.work / "dst") or note
                        results.append(Result(name, tool, files, size, seconds, note, cpu))
                        r = results[-1]
                        print(
                            f"  {tool:<9} {r.seconds or 0:8.2f} s {r.mbps:8.1f} MB/s "
                            f"{r.fps:8.0f} files/s cpu {cpu:.2f} s {note}",
                            flush=True,
                        )
            shutil.rmtree(args.work / "dst", ignore_errors=True)
            report(
                results,
                f"loopback, scale {args.scale}, {args.streams} streams, "
                f"{args.chunk_kib} KiB chunks",
            )
        if args.wan or args.wan_only:
            results += run_wan(args, rs, [t for t in tools if t != "cp"])
        if args.json:
            args.json.write_text(json.dumps([r.__dict__ for r in results], indent=1))
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(args.work)], check=False)


def wanem() -> Path:
    for cand in (
        REPO.parent.parent / "shared/tools/wanem/wan",
        Path("/work/shared/tools/wanem/wan"),
        REPO.parent / "shared/tools/wanem/wan",
    ):
        if cand.exists():
            return cand
    raise SystemExit("wanem not found (../shared/tools/wanem/wan)")


def run_wan(args: argparse.Namespace, rs: Reelsync, tools: list[str]) -> list[Result]:
    wan = wanem()
    delay, loss, mbit = args.wan_link.split(",")
    rate = float(mbit)
    where = f"{float(delay) * 2:g} ms RTT, {loss} % loss, {mbit} Mbit/s"
    subprocess.run([str(wan), "down"], capture_output=True)
    subprocess.run([str(wan), "up", delay, loss, mbit], check=True)
    results: list[Result] = []
    try:
        base = args.work / "wan"
        big = base / "big"
        if not (big / ".complete").exists():
            shutil.rmtree(big, ignore_errors=True)
            _fill(big / "reel.mov", random.Random("wan-big"), args.wan_mib * MIB)
            (big / ".complete").write_text("ok")
        small = base / "small"
        if args.wan_small and not (small / ".complete").exists():
            shutil.rmtree(small, ignore_errors=True)
            rng = random.Random("wan-small")
            for i in range(args.wan_small):
                size = rng.randint(4 * 1024, 64 * 1024)
                _fill(small / f"sh{i // 100:04d}/comp/file_{i:05d}.json", rng, size)
            (small / ".complete").write_text("ok")
        seq = base / "seq"
        if not (seq / ".complete").exists():
            shutil.rmtree(seq, ignore_errors=True)
            rng = random.Random("wan-seq")
            for i in range(args.wan_frames):
                _fill(seq / f"plate/frame.{i:04d}.exr", rng, 2 * MIB)
            (seq / ".complete").write_text("ok")
        host = "10.77.0.2"
        with sshd(args.work, host, "rs-site") as ssh:
            sets = [("wan-big", big), ("wan-seq", seq)]
            if args.wan_small:
                sets.append(("wan-small", small))
            for name, src in sets:
                files, size = tree_summary(src)
                print(
                    f"# {name}: {files} files, {size / 1e6:.0f} MB over {where}",
                    flush=True,
                )
                for tool in tools:
                    seconds, note, cpu = run_tool(
                        tool,
                        src,
                        args.work / "dst",
                        ssh,
                        rs,
                        args.timeout,
                        host=host,
                        rx_ns="rs-site",
                        tx_ns="rs-hq",
                    )
                    if seconds is not None:
                        note = check_copy(tool, src, args.work / "dst") or note
                    r = Result(name, tool, files, size, seconds, note, cpu)
                    link = f"{r.mbps * 8 / rate * 100:.0f}% of link" if seconds else ""
                    r.note = f"{link} {note}".strip()
                    results.append(r)
                    print(
                        f"  {tool:<9} {r.seconds or 0:8.2f} s {r.mbps:8.1f} MB/s {r.note}",
                        flush=True,
                    )
        report(results, f"emulated WAN (rs-hq -> rs-site): {where}")
    finally:
        subprocess.run([str(wan), "down"], capture_output=True)
        shutil.rmtree(args.work / "dst", ignore_errors=True)
    return results


if __name__ == "__main__":
    main()
