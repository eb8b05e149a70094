"""What the user waits for: ``reelsync sync --wait`` through a real control plane and two real
agents, beside rsync over ssh and the engine alone, in one run (not part of the tests).

    python benchmarks/e2e.py [--sets seq,small,big] [--scale 1] [--work /tmp/reelsync-e2e]
                             [--tools sync,engine,rsync,rsync-fsync] [--noop] [--priority]
                             [--tree N] [--no-fsync] [--database sqlite|postgres] [--json FILE]
                             [--tmpfs SIZE] [--warm] [--workers N] [--shots]

Starts ``reelsync server`` (HTTPS, SQLite unless told) and two ``reelsync agent run`` processes
(sites hq and london, peers on loopback) with the volume ``projects`` rooted at WORK/hq and
WORK/london. Each data set of ``benchmarks/run.py`` (seq 2,000 x 2 MiB, small 20,000 files of
4-64 KiB, big 4 x 512 MiB; ``--scale`` shrinks them) is made once under WORK/hq/<set>, then:

- ``sync``: ``reelsync sync --site london <set> --wait`` into an empty WORK/london/<set>: the whole
  command, from process start to exit (the CLI's start-up included);
- ``engine``: two ``reelsync transfer`` processes (push to a listening receiver), no control plane;
- ``rsync``: ``rsync -a`` over ssh to localhost (aes128-gcm, a private sshd);
- ``rsync-fsync``: the same with ``--fsync`` (rsync 3.2.4 and later: every written file made
  durable, as reelsync does by default), so the table shows durable against durable (``x rsync-f``)
  beside rsync's default (``x rsync``), which leaves the data in the page cache.

``--no-fsync``: reelsync without durability (the agents' ``transfer.fsync = false``, through
``REELSYNC_AGENT_FSYNC=0``, and ``reelsync transfer --no-fsync`` for the engine alone); its rows say
"no fsync". Not the default: compare it with ``rsync``, not with ``rsync-fsync``.

``--tmpfs SIZE``: everything (both agents' roots, the engine's and rsync's copies) in a RAM disk
of that size mounted on WORK, so the disk does not set the pace. It holds the sources, london's
copy of each set (kept until that set's next ``sync``) and the other tools' copy; ``--warm``
adds a scratch file as large as the set: at scale 1 with every set and ``--warm``, ~18 GB
(``--tmpfs 20g``), without ``--warm`` ~16 GB; a run that would not fit stops at once and says
so.

``--shots``: ``sync`` names each shot folder of the set (``proj/<scene>/<shot>``; the big set:
each reel) as a path of its own, as an operator picking shots does: one task each, leased as
separate grants that run at once (up to the agents' ``max_transfers``). ``--workers N``: the
agents' data-plane worker processes (``REELSYNC_AGENT_WORKERS``; each grant runs in one worker,
so ``--shots`` is what spreads a set over them).

``--noop``: the same ``sync`` again with every file already at london (a no-op re-sync of the
small set), beside rsync's own no-op run. ``--tree N`` (e.g. 100000): a shot tree of N files of
0.5-2 KiB, synced, then re-synced (a no-op): the time until ``sync`` has submitted (its "created
job" line) and until it returned, and the memory (VmRSS, sampled every 0.1 s) of the control
plane, both agents and the CLI: at the start, the peak and at the end of each run.
``--priority``: london limited to 60 MiB/s, a 1,600 x 512 KiB sync in a priority-1 queue, then
1 s later a 21-file (5 MiB) sync in a priority-999 queue: how long the high job took from its
submit, and when the low one ended.
Every copy is checked (file count and bytes; ``--verify`` compares contents too). Run as root
for sshd (installed with apt-get if missing).

``--warm``: before each tool's run, write and delete a scratch file as large as the set next to
its destination, as ``benchmarks/run.py --warm`` does: each tool then writes into memory touched
moments before. On this project's VM the host takes back memory the guest frees, and a tool
writing through the page cache right after one that did not (the agents write large files with
direct I/O) pays ~1 s/GB more to get it; ``--warm`` gives every tool its best case.

``--runs N`` rounds: each round runs every tool once, back to back, the first tool of a round
one later than the round before (sync, engine, rsync; then engine, rsync, sync; ...), so the
disk's speed, which drifts over minutes on a shared machine, falls on every tool alike. Times
are medians of the rounds; ratios (``x rsync``, ``x engine``: how many times faster than that
tool) are the medians of the rounds' own ratios. ``CPU s``: user + system seconds of every
process the tool ran on (median of the runs): for ``sync`` both agents, the control plane with
its workers and the CLI (``beside``: the control plane and the CLI alone, what the control path
costs beside the data plane; on two cores a CPU second beside it costs about half a second of
the transfer's wall time); for ``engine`` its two processes; for ``rsync`` both rsyncs, ssh and
the connection's sshd.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

from run import (  # noqa: E402
    MIB,
    Reelsync,
    _fill,
    children_cpu,
    make_set,
    sshd,
    sshd_cpu,
    timed,
    tree_summary,
    warm_memory,
)

from support.agents import (  # noqa: E402
    RunningAgent,
    add_london_and_projects,
    agents_at_hq_and_london,
)
from support.postgres import fresh_database  # noqa: E402
from support.servers import RunningServer, reelsync_cmd, running_server  # noqa: E402


@dataclass
class Row:
    set: str
    tool: str
    files: int
    bytes: int
    seconds: list[float | None]  # one per round; None: that run failed (see the note)
    note: str = ""
    cpu: list[float] = field(default_factory=list)  # user + system s of every process, per run
    beside: list[float] = field(default_factory=list)  # sync: control plane + CLI, per run

    @property
    def cpu_median(self) -> float | None:
        return statistics.median(self.cpu) if self.cpu else None

    @property
    def beside_median(self) -> float | None:
        return statistics.median(self.beside) if self.beside else None

    @property
    def median(self) -> float | None:
        done = [s for s in self.seconds if s is not None]
        return statistics.median(done) if done else None

    def versus(self, other: Row) -> float | None:
        """How many times faster this tool was than ``other``: the median of the rounds'
        ratios where both ran in the same round (round-robin), else the ratio of the medians."""
        if len(self.seconds) == len(other.seconds):
            paired = [
                o / s
                for s, o in zip(self.seconds, other.seconds, strict=True)
                if s is not None and o is not None
            ]
            if paired:
                return statistics.median(paired)
        if other.median is None or self.median is None:
            return None
        return other.median / self.median


def same_tree(src: Path, dst: Path, contents: bool) -> str:
    """'' when dst holds src's files (count and bytes; with ``contents``, byte for byte)."""
    if tree_summary(src) != tree_summary(dst):
        return f"INCOMPLETE {tree_summary(dst)} != {tree_summary(src)}"
    if contents:
        for path in src.rglob("*"):
            if path.is_file() and path.name != ".complete":
                other = dst / path.relative_to(src)
                if path.read_bytes() != other.read_bytes():
                    return f"DIFFERENT {other}"
    return ""


def trees_cpu(*pids: int) -> list[float]:
    """User + system seconds so far of each live process ``pid`` and its live descendants (the
    control plane's workers), with what each reaped of its own children; one read of /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    times: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
        times[int(entry)] = sum(int(f) for f in fields[11:15]) / tick
    totals = []
    for pid in pids:
        total, todo = 0.0, [pid]
        while todo:
            current = todo.pop()
            total += times.get(current, 0.0)
            todo += children.get(current, [])
        totals.append(total)
    return totals


def plane_and_agents_cpu(
    server: RunningServer, agents: dict[str, RunningAgent]
) -> tuple[float, float]:
    """CPU seconds so far of the control plane (with its workers) and of the agents."""
    plane, *each = trees_cpu(server.process.pid, *(a.process.pid for a in agents.values()))
    return plane, sum(each)


def sync_cmd(server: RunningServer, *paths: str) -> tuple[list[str], dict[str, str]]:
    return reelsync_cmd("sync", "--site", "london", *paths, "--wait"), server.env()


def timed_sync(server: RunningServer, *paths: str, timeout: float) -> tuple[float | None, str]:
    cmd, env = sync_cmd(server, *paths)
    t0 = time.monotonic()
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"timeout after {timeout:.0f} s"
    if done.returncode != 0:
        return None, f"exit {done.returncode}: {(done.stderr or done.stdout).strip()[-400:]}"
    return time.monotonic() - t0, ""


def shot_paths(hq: Path, name: str) -> list[str]:
    """The set as an operator picks shots: each shot folder (``proj/<scene>/<shot>``) a path of
    its own, or each file where a folder holds files (the big set's reels)."""
    paths = []
    for scene in sorted((hq / name / "proj").iterdir()):
        for shot in sorted(scene.iterdir()):
            paths.append(str(shot.relative_to(hq)))
    return paths


def make_tree(root: Path, files: int) -> None:
    """A shot tree of ``files`` files of 0.5-2 KiB (made once): 100 files per version folder."""
    import random

    if (root / ".complete").exists():
        return
    shutil.rmtree(root, ignore_errors=True)
    rng = random.Random(f"reelsync-e2e-tree-{files}")
    tasks = ("comp", "light", "anim", "fx", "roto")
    for i in range(files):
        shot = f"sc{i // 20000:03d}/sh{i // 2000 % 10 * 10:04d}"
        folder = root / f"{shot}/{tasks[i // 400 % 5]}/v{i // 100 % 4:03d}"
        if i % 100 == 0:
            folder.mkdir(parents=True, exist_ok=True)
        (folder / f"file_{i:06d}.json").write_bytes(rng.randbytes(rng.randrange(512, 2048)))
    (root / ".complete").write_text("ok")


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_tree(
    server: RunningServer, agents: dict[str, object], roots: dict[str, Path], files: int,
    timeout: float,
) -> list[dict[str, object]]:  # fmt: skip
    """Sync the tree into an empty london, then again (no-op), sampling every process's RSS."""
    make_tree(roots["hq"] / "tree", files)
    shutil.rmtree(roots["london"] / "tree", ignore_errors=True)
    pids = {
        "server": server.process.pid,
        "hq": agents["hq"].process.pid,  # type: ignore[attr-defined]
        "london": agents["london"].process.pid,  # type: ignore[attr-defined]
    }
    out = []
    for run in ("first", "noop"):
        row = tree_run(server, pids, roots, timeout)
        row.update(run=run, files=files)
        print(f"# tree {run}: {row}", flush=True)
        out.append(row)
    return out


def tree_run(
    server: RunningServer, pids: dict[str, int], roots: dict[str, Path], timeout: float
) -> dict[str, object]:
    cmd, env = sync_cmd(server, "tree")
    start = {name: rss_kib(pid) for name, pid in pids.items()}
    peak = dict(start)
    submitted: list[float] = []
    t0 = time.monotonic()
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for name, pid in (*pids.items(), ("cli", proc.pid)):
                peak[name] = max(peak.get(name, 0), rss_kib(pid))
            stop.wait(0.1)

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            if " job " in line and not submitted:
                submitted.append(time.monotonic() - t0)

    threads = [threading.Thread(target=sample), threading.Thread(target=read)]
    for t in threads:
        t.start()
    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        code = -9
    seconds = time.monotonic() - t0
    stop.set()
    for t in threads:
        t.join()
    end = {name: rss_kib(pid) for name, pid in pids.items()}
    src, dst = roots["hq"] / "tree", roots["london"] / "tree"
    return {
        "submit_s": submitted[0] if submitted else None,
        "seconds": seconds,
        "note": f"exit {code}" if code else same_tree(src, dst, False),
        "rss_mib": {
            name: (start.get(name, 0) / 1024, peak.get(name, 0) / 1024, end.get(name, 0) / 1024)
            for name in (*pids, "cli")
        },
    }


def make_priority_sets(hq: Path, scale: float) -> tuple[Path, Path]:
    import random

    rng = random.Random("reelsync-e2e-priority")
    low, high = hq / "lowproj", hq / "highproj"
    if not (low / ".complete").exists():
        shutil.rmtree(low, ignore_errors=True)
        for i in range(max(1, round(1600 * scale))):
            _fill(low / f"sc010/sh{i // 100:03d}/plate/frame.{i:04d}.exr", rng, 512 * 1024)
        (low / ".complete").write_text("ok")
    if not (high / ".complete").exists():
        shutil.rmtree(high, ignore_errors=True)
        for i in range(21):
            _fill(high / f"sc020/sh010/comp/file.{i:02d}.exr", rng, 5 * MIB // 21)
        (high / ".complete").write_text("ok")
    return low, high


def run_priority(
    server: RunningServer, london_agent: str, roots: dict[str, Path], scale: float, timeout: float
) -> dict[str, float | str]:
    _, high = make_priority_sets(roots["hq"], scale)
    for name in ("lowproj", "highproj"):
        shutil.rmtree(roots["london"] / name, ignore_errors=True)
    with server.session() as admin:
        for code, priority in (("lowproj", 1), ("highproj", 999)):
            if not admin.find("queue", code=code):
                admin.create("queue", {"code": code, "priority": priority})
    done = server.cli("agent", "limit", london_agent, "60")
    if done.returncode != 0:
        raise SystemExit(f"agent limit: {done.stderr}")
    time.sleep(11)  # the agent applies the limit at its next heartbeat (every 10 s)
    cmd, env = sync_cmd(server, "lowproj")
    t_low = time.monotonic()
    low_proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)
    high_s, note = timed_sync(server, "highproj", timeout=timeout)
    t_high_end = time.monotonic()
    try:
        low_proc.wait(timeout)
    finally:
        if low_proc.poll() is None:
            low_proc.kill()
    t_low_end = time.monotonic()
    server.cli("agent", "limit", london_agent, "none")
    result: dict[str, float | str] = {
        "high_s": high_s if high_s is not None else -1.0,
        "low_s": t_low_end - t_low,
        "high_before_low_s": t_low_end - t_high_end,
        "note": note or same_tree(high, roots["london"] / "highproj", True),
    }
    if low_proc.returncode != 0:
        result["note"] = f"low sync exit {low_proc.returncode}: {low_proc.stderr.read()[-300:]!r}"  # type: ignore[union-attr]
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sets", default="seq,small,big")
    ap.add_argument("--tools", default="sync,engine,rsync,rsync-fsync")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--runs", type=int, default=1, help="runs of each (set, tool); medians shown")
    ap.add_argument("--work", type=Path, default=Path("/tmp/reelsync-e2e"))
    ap.add_argument("--noop", action="store_true", help="also a no-op re-sync of the small set")
    ap.add_argument("--priority", action="store_true", help="also the priority scenario")
    ap.add_argument("--tree", type=int, default=0, help="also a shot tree of N files, with RSS")
    ap.add_argument("--verify", action="store_true", help="compare contents, not only sizes")
    ap.add_argument(
        "--warm", action="store_true", help="write and delete the set's size before each tool"
    )
    ap.add_argument(
        "--no-fsync", action="store_true", help="reelsync without fsync (labelled), see above"
    )
    ap.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    ap.add_argument(
        "--workers", type=int, default=0, help="the agents' data-plane worker processes "
        "(REELSYNC_AGENT_WORKERS; default: the agents' own, one per four usable cores)"
    )  # fmt: skip
    ap.add_argument(
        "--shots", action="store_true", help="sync each shot folder (the big set: each reel) "
        "as a path of its own, one task each, instead of the set as one folder"
    )  # fmt: skip
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument(
        "--tmpfs", default=None, metavar="SIZE", help="mount a RAM disk of this size on --work"
    )
    args = ap.parse_args()

    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    if args.tmpfs and not os.path.ismount(work):
        mount = ["mount", "-t", "tmpfs", "-o", f"size={args.tmpfs}", "tmpfs", str(work)]
        done = subprocess.run(mount, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"cannot mount a {args.tmpfs} RAM disk on {work} (root?): "
                             f"{done.stderr.strip()}")  # fmt: skip
        try:
            measure(args, work)
        finally:
            subprocess.run(["umount", "-l", str(work)], check=False)
    else:
        measure(args, work)


_SET_BYTES = {"seq": 2000 * 2 * MIB, "small": 20000 * 34 * 1024, "big": 4 * 512 * MIB}


def check_room(args: argparse.Namespace, work: Path) -> None:
    """Stop with one line when WORK cannot hold what the run writes (a RAM disk too small ran
    out mid-set, with a traceback). The sets are made one after the other; while set k runs,
    WORK holds every source made so far, london's copy of each earlier set, set k's copy at
    london and the other tools' copy, and with ``--warm`` a scratch file as large as set k."""
    held = peak = 0
    for name in filter(None, args.sets.split(",")):
        share = min(1.0, args.scale) if name == "big" else args.scale
        size = int(_SET_BYTES.get(name, 0) * share)
        if not (work / "hq" / name / ".complete").exists():
            held += size  # its source
        peak = max(peak, held + size * (2 + args.warm))
        held += size  # london's copy stays
    if args.priority:  # 1,600 x 512 KiB at hq and at london
        held += int(1600 * 512 * 1024 * args.scale) * 2
    held += args.tree * 1280 * 2  # 0.5-2 KiB a file, at hq and at london
    need = max(peak, held)
    free = shutil.disk_usage(work).free
    if need > free:
        raise SystemExit(
            f"{work} has {free / 1e9:.1f} GB free; this run needs about {need / 1e9:.1f} GB at "
            "its peak (the sets, their copies and --warm's scratch): give a larger --tmpfs, a "
            "smaller --scale or fewer --sets"
        )


def measure(args: argparse.Namespace, work: Path) -> None:
    check_room(args, work)
    roots = {"hq": work / "hq", "london": work / "london"}
    for root in roots.values():
        root.mkdir(parents=True, exist_ok=True)
    tools = args.tools.split(",")
    rows: list[Row] = []
    extra: dict[str, object] = {"load_before": os.getloadavg()[0]}
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="rs-e2e-")))
        url = stack.enter_context(fresh_database()) if args.database == "postgres" else None
        server = stack.enter_context(running_server(tmp / "server", database_url=url))
        add_london_and_projects(server, roots)
        agent_env = {"REELSYNC_AGENT_FSYNC": "0"} if args.no_fsync else {}
        if args.workers:
            agent_env["REELSYNC_AGENT_WORKERS"] = str(args.workers)
        agents = agents_at_hq_and_london(stack, server, tmp, env=agent_env)
        wants_ssh = any(t.startswith("rsync") for t in tools) or args.noop
        ssh = stack.enter_context(sshd(work)) if wants_ssh else None
        engine = Reelsync(work, 4, 4096, fsync=not args.no_fsync)
        unsafe = " no fsync" if args.no_fsync else ""
        for name in filter(None, args.sets.split(",")):  # --sets "": only the extras
            src = roots["hq"] / name
            files, size = make_set(name, src, args.scale)
            print(f"# {name}: {files} files, {size / 1e6:.0f} MB", flush=True)
            # round-robin: each round runs every tool back to back, starting one tool later
            # each round, so the disk's drift over minutes falls on every tool alike
            set_rows = {tool: Row(name, tool, files, size, []) for tool in tools}
            for turn in range(args.runs):
                for tool in tools[turn % len(tools) :] + tools[: turn % len(tools)]:
                    row = set_rows[tool]
                    dst = roots["london"] / name if tool == "sync" else work / "dst"
                    shutil.rmtree(dst, ignore_errors=True)
                    if args.warm:
                        warm_memory(dst, size)
                    subprocess.run(["sync"], check=False)
                    plane0, agents0 = plane_and_agents_cpu(server, agents)
                    reaped0 = children_cpu() + sshd_cpu()
                    if tool == "sync":
                        paths = shot_paths(roots["hq"], name) if args.shots else [name]
                        seconds, note = timed_sync(server, *paths, timeout=args.timeout)
                    elif tool == "engine":
                        seconds, note = engine.run(src, dst, args.timeout)
                    else:
                        assert ssh is not None
                        dst.mkdir(parents=True)
                        durable = ["--fsync"] if tool == "rsync-fsync" else []
                        seconds, note = timed(
                            ["rsync", "-a", *durable, "-e", " ".join(ssh), f"{src}/",
                             f"127.0.0.1:{dst}/"],
                            args.timeout,
                        )  # fmt: skip
                    reaped = children_cpu() + sshd_cpu() - reaped0  # the CLI; rsync and ssh
                    if tool == "sync":
                        plane1, agents1 = plane_and_agents_cpu(server, agents)
                        plane = plane1 - plane0
                        row.cpu.append(plane + agents1 - agents0 + reaped)
                        row.beside.append(plane + reaped)
                    else:
                        row.cpu.append(reaped)  # the engine's two processes are reaped too
                    if seconds is not None:
                        note = same_tree(src, dst, args.verify) or note
                    row.seconds.append(seconds)
                    row.note = (note + unsafe if tool in ("sync", "engine") else note).strip()
                    print(f"  {tool:<11} {seconds or 0:8.2f} s {row.note}", flush=True)
            rows.extend(set_rows.values())
            if args.noop and name == "small":
                if not (roots["london"] / name).exists():
                    timed_sync(server, name, timeout=args.timeout)
                assert ssh is not None
                dst = work / "dst"
                shutil.rmtree(dst, ignore_errors=True)
                dst.mkdir(parents=True)
                rsync = ["rsync", "-a", "-e", " ".join(ssh), f"{src}/", f"127.0.0.1:{dst}/"]
                timed(rsync, args.timeout)
                noop = {t: Row("small-noop", t, files, size, []) for t in ("sync", "rsync")}
                for turn in range(args.runs):  # alternated, as the sets' rounds
                    for tool in ("sync", "rsync") if turn % 2 == 0 else ("rsync", "sync"):
                        if tool == "sync":
                            seconds, note = timed_sync(server, name, timeout=args.timeout)
                        else:
                            seconds, note = timed(rsync, args.timeout)
                        noop[tool].seconds.append(seconds)
                        noop[tool].note = note
                        print(f"  noop {tool:<6} {seconds or 0:8.2f} s {note}", flush=True)
                rows.extend(noop.values())
        if args.tree:
            extra["tree"] = run_tree(server, agents, roots, args.tree, args.timeout)  # type: ignore[arg-type]
        if args.priority:
            hostname = agents["london"].data_dir.name
            extra["priority"] = run_priority(server, hostname, roots, args.scale, args.timeout)
            print(f"# priority: {extra['priority']}", flush=True)
        shutil.rmtree(work / "dst", ignore_errors=True)
    extra["load_after"] = os.getloadavg()[0]
    report(rows, extra)
    if args.json:
        args.json.write_text(
            json.dumps({"rows": [asdict(r) for r in rows], **extra}, indent=1, default=str)
        )


def report(rows: list[Row], extra: dict[str, object]) -> None:
    print(f"\n## end to end (load average {extra['load_before']:.1f} -> {extra['load_after']:.1f})")
    print(
        f"{'set':<12}{'tool':<12}{'files':>8}{'MB':>8}{'s':>9}{'x rsync':>9}{'x rsync-f':>10}"
        f"{'x engine':>10}{'CPU s':>8}{'beside':>8}  note"
    )
    by = {(r.set, r.tool): r for r in rows}
    for r in rows:

        def ratio(other: str, r: Row = r) -> str:
            o = by.get((r.set, other))
            times = r.versus(o) if o else None
            return "-" if times is None else f"{times:.2f}"

        secs = f"{r.median:.2f}" if r.median is not None else "-"
        cpu = f"{r.cpu_median:.2f}" if r.cpu_median is not None else "-"
        beside = f"{r.beside_median:.2f}" if r.beside_median is not None else "-"
        print(
            f"{r.set:<12}{r.tool:<12}{r.files:>8}{r.bytes / 1e6:>8.0f}{secs:>9}"
            f"{ratio('rsync'):>9}{ratio('rsync-fsync'):>10}{ratio('engine'):>10}"
            f"{cpu:>8}{beside:>8}  {r.note}"
        )
    for t in extra.get("tree") or ():  # type: ignore[attr-defined]
        rss = "; ".join(
            f"{name} {a:.0f}/{b:.0f}/{c:.0f}" for name, (a, b, c) in t["rss_mib"].items()
        )
        submit = f"{t['submit_s']:.2f} s" if t["submit_s"] is not None else "-"
        print(
            f"tree {t['files']} files, {t['run']}: submitted after {submit}, returned after "
            f"{t['seconds']:.2f} s; RSS MiB start/peak/end: {rss} {t['note']}"
        )
    if "priority" in extra:
        p = extra["priority"]
        assert isinstance(p, dict)
        print(
            f"priority: the 21-file high job took {p['high_s']:.2f} s from its submit "
            f"(sync --wait), {p['high_before_low_s']:.1f} s before the low job ended "
            f"({p['low_s']:.1f} s) {p['note']}"
        )


if __name__ == "__main__":
    main()
