"""``reelsync sync --wait`` across the emulated WAN, beside the engine alone and rsync over ssh on
the same link in the same run (not part of the tests; run as root).

    python benchmarks/e2e_wan.py [--link 25,0.1,1000] [--big-mib 1024] [--frames 200]
                                 [--small 5000] [--runs 1] [--tools sync,engine,rsync]
                                 [--work /tmp/reelsync-e2e-wan]

``../shared/tools/wanem/wan up DELAY LOSS MBIT`` joins the namespaces rs-hq (10.77.0.1) and
rs-site (10.77.0.2). The control plane, the hq agent and the operator's ``reelsync sync`` run in
rs-hq; the london agent runs in rs-site, so its control traffic (heartbeats, work polls,
reports) and every byte it receives cross the link, as at a real remote office. Each set (one
big file, 2 MiB frames, 4-64 KiB files) is synced into an empty london folder:

- ``sync``: ``reelsync sync --site london SET --wait``, the whole command, timed from process
  start to exit; the agents are already running (their sessions may be up from the last sync);
- ``engine``: two ``reelsync transfer`` processes across the same link (no control plane);
- ``rsync``: ``rsync -a`` over ssh (aes128-gcm) to a private sshd in rs-site.

Every copy is checked (file count and bytes). Figures are MB/s and the share of the link's rate.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

from run import (  # noqa: E402
    MIB,
    Reelsync,
    _fill,
    check_copy,
    free_port,
    ns_prefix,
    run_tool,
    sshd,
    tree_summary,
    wanem,
)

from support.servers import child_env, reelsync_cmd  # noqa: E402

HQ_IP, SITE_IP = "10.77.0.1", "10.77.0.2"


class Plane:
    """The control plane and both agents, as processes in the two namespaces."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.home = base / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.data = base / "server"
        self.port = free_port()
        self.url = f"https://{HQ_IP}:{self.port}"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.env: dict[str, str] = {}

    def cli(self, *args: str, ns: str = "rs-hq", check: bool = True) -> str:
        done = subprocess.run(
            [*ns_prefix(ns), *reelsync_cmd(*args)],
            env=self.env or child_env(self.home),
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and done.returncode != 0:
            raise SystemExit(f"reelsync {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def spawn(self, name: str, ns: str, *args: str) -> None:
        with (self.base / f"{name}.log").open("ab") as log:
            self.procs.append(
                subprocess.Popen(
                    [*ns_prefix(ns), *reelsync_cmd(*args)],
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )

    def start(self, roots: dict[str, Path]) -> None:
        init = [
            "server", "init", "--json", "--data-dir", str(self.data), "--workspace", "acme",
            "--admin", "admin@acme.test", "--listen", f"{HQ_IP}:{self.port}",
        ]  # fmt: skip
        info = json.loads(self.cli(*init))
        self.env = child_env(
            self.home,
            {
                "REELSYNC_URL": self.url,
                "REELSYNC_API_KEY": info["api_key"],
                "REELSYNC_CA_FILE": info["ca_file"],
            },
        )
        self.spawn("server", "rs-hq", "server", "run", "--data-dir", str(self.data))
        self.wait(lambda: self.cli("site", "list", check=False) != "", "the control plane")
        self.cli("site", "create", "london")
        paths = [f"--path={site}={root}" for site, root in roots.items()]
        self.cli("volume", "create", "projects", "--default", *paths)
        for site, ns, ip in (("hq", "rs-hq", HQ_IP), ("london", "rs-site", SITE_IP)):
            token = json.loads(self.cli("agent", "token", "--site", site, "--json"))["token"]
            data_dir = self.base / f"agent-{site}"
            self.cli(
                "agent", "enroll", "--server", self.url, "--ca-file", info["ca_file"],
                "--token", token, "--data-dir", str(data_dir), "--listen", f"{ip}:0",
                "--hostname", site, "--json", ns=ns,
            )  # fmt: skip
            self.spawn(f"agent-{site}", ns, "agent", "run", "--data-dir", str(data_dir))

        def both_online() -> bool:
            agents = json.loads(self.cli("agent", "list", "--json"))
            return sum(1 for a in agents if a.get("status") == "online") >= 2

        self.wait(both_online, "both agents online")

    def wait(self, check: object, what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for proc in self.procs:
                if proc.poll() is not None:
                    raise SystemExit(f"a process exited ({proc.args}); logs in {self.base}")
            if check():  # type: ignore[operator]
                return
            time.sleep(0.3)
        raise SystemExit(f"timed out waiting for {what}; logs in {self.base}")

    def sync(self, name: str, timeout: float) -> tuple[float | None, str]:
        cmd = [*ns_prefix("rs-hq"), *reelsync_cmd("sync", "--site", "london", name, "--wait")]
        t0 = time.monotonic()
        try:
            done = subprocess.run(
                cmd, env=self.env, capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            return None, f"timeout after {timeout:.0f} s"
        if done.returncode != 0:
            return None, f"exit {done.returncode}: {(done.stderr or done.stdout).strip()[-300:]}"
        return time.monotonic() - t0, ""

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


@contextmanager
def link(delay: str, loss: str, mbit: str) -> Iterator[None]:
    wan = wanem()
    subprocess.run([str(wan), "down"], capture_output=True)
    subprocess.run([str(wan), "up", delay, loss, mbit], check=True)
    try:
        yield
    finally:
        subprocess.run([str(wan), "down"], capture_output=True)


def _made(root: Path, fill: Callable[[Path], None]) -> tuple[str, Path]:
    """``root`` filled by ``fill`` once (kept between runs, marked by ``.complete``)."""
    if not (root / ".complete").exists():
        shutil.rmtree(root, ignore_errors=True)
        fill(root)
        (root / ".complete").write_text("ok")
    return root.name, root


def make_sets(hq: Path, big_mib: int, frames: int, small: int) -> list[tuple[str, Path]]:
    def big(root: Path) -> None:
        _fill(root / "reel.mov", random.Random("wan-big"), big_mib * MIB)

    def seq(root: Path) -> None:
        rng = random.Random("wan-seq")
        for i in range(frames):
            _fill(root / f"plate/frame.{i:04d}.exr", rng, 2 * MIB)

    def tiny(root: Path) -> None:
        rng = random.Random("wan-small")
        for i in range(small):
            size = rng.randint(4 * 1024, 64 * 1024)
            _fill(root / f"sh{i // 100:04d}/comp/file_{i:05d}.json", rng, size)

    wanted = ((big_mib, f"big{big_mib}", big), (frames, f"frames{frames}", seq),
              (small, f"small{small}", tiny))  # fmt: skip
    return [_made(hq / name, fill) for n, name, fill in wanted if n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--link", default="25,0.1,1000", help="one-way delay ms, loss %%, Mbit/s")
    ap.add_argument("--big-mib", type=int, default=1024)
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--small", type=int, default=5000)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--tools", default="sync,engine,rsync")
    ap.add_argument("--work", type=Path, default=Path("/tmp/reelsync-e2e-wan"))
    ap.add_argument("--timeout", type=float, default=900)
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root (network namespaces, sshd)")
    delay, loss, mbit = args.link.split(",")
    rate_mbs = float(mbit) / 8
    where = f"{float(delay) * 2:g} ms RTT, {loss} % loss, {mbit} Mbit/s"
    work: Path = args.work
    roots = {"hq": work / "hq", "london": work / "london"}
    for root in roots.values():
        root.mkdir(parents=True, exist_ok=True)
    tools = args.tools.split(",")
    sets = make_sets(roots["hq"], args.big_mib, args.frames, args.small)
    load0 = os.getloadavg()[0]
    rows: list[tuple[str, str, int, int, list[float], str]] = []
    with ExitStack() as stack:
        stack.enter_context(link(delay, loss, mbit))
        plane = Plane(work / "run")
        shutil.rmtree(plane.base, ignore_errors=True)
        plane.base.mkdir(parents=True)
        stack.callback(plane.stop)
        if "sync" in tools:
            plane.start(roots)
        ssh = stack.enter_context(sshd(work, SITE_IP, "rs-site")) if "rsync" in tools else None
        engine = Reelsync(work, 4, 4096)
        for name, src in sets:
            files, size = tree_summary(src)
            print(f"# {name}: {files} files, {size / 1e6:.0f} MB over {where}", flush=True)
            for tool in tools:
                times: list[float] = []
                note = ""
                for _ in range(args.runs):
                    if tool == "sync":
                        dst = roots["london"] / name
                        shutil.rmtree(dst, ignore_errors=True)
                        subprocess.run(["sync"], check=False)
                        seconds, note = plane.sync(name, args.timeout)
                        if seconds is not None:
                            note = check_copy("reelsync", src, dst) or note
                    else:
                        dst = work / "dst"
                        seconds, note, _cpu = run_tool(
                            "reelsync" if tool == "engine" else tool,
                            src,
                            dst,
                            ssh,
                            engine,
                            args.timeout,
                            host=SITE_IP,
                            rx_ns="rs-site",
                            tx_ns="rs-hq",
                        )
                        if seconds is not None:
                            note = check_copy(tool, src, dst) or note
                    if seconds is not None:
                        times.append(seconds)
                    mbs = size / 1e6 / seconds if seconds else 0.0
                    print(
                        f"  {tool:<7} {seconds or 0:8.2f} s {mbs:7.1f} MB/s "
                        f"{mbs / rate_mbs * 100:5.1f} % of link {note}",
                        flush=True,
                    )
                rows.append((name, tool, files, size, times, note))
    shutil.rmtree(work / "dst", ignore_errors=True)
    print(f"\n## across the emulated WAN ({where}; load average {load0:.1f} -> "
          f"{os.getloadavg()[0]:.1f})")  # fmt: skip
    print(f"{'set':<12}{'tool':<8}{'files':>7}{'MB':>7}{'s':>8}{'MB/s':>8}{'link':>7}"
          f"{'x rsync':>9}{'x engine':>10}  note")  # fmt: skip
    med = {(r[0], r[1]): statistics.median(r[4]) for r in rows if r[4]}
    for name, tool, files, size, _times, note in rows:
        m = med.get((name, tool))
        mbs = size / 1e6 / m if m else 0.0

        def ratio(other: str, name: str = name, m: float | None = m) -> str:
            o = med.get((name, other))
            return f"{o / m:.2f}" if o and m else "-"

        print(
            f"{name:<12}{tool:<8}{files:>7}{size / 1e6:>7.0f}{m or 0:>8.2f}{mbs:>8.1f}"
            f"{mbs / rate_mbs * 100:>6.0f}%{ratio('rsync'):>9}{ratio('engine'):>10}  {note}"
        )


if __name__ == "__main__":
    main()
