"""What a no-op re-sync of a folder costs the data plane: two engines in one process (a pushing
dialer and a listening receiver over loopback TLS, the agent's collector settings), the small set
of ``benchmarks/run.py`` already at the destination, pushed again as one folder; wall time and
CPU seconds (both engines, every thread) of each push (session set-up included), at each protocol
version asked for, runs alternating (not part of the tests). ``--fresh``: the destination folder
is removed before each push (not timed), so each push is a first copy of the folder instead.

    python benchmarks/noop.py [--scale 1] [--protocols 3,4] [--runs 5] [--fresh]
                              [--work /tmp/rs-noop]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import shutil
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

from run import make_set  # noqa: E402

from dataplane_pki import Workspace  # noqa: E402
from reelsync.engine import (  # noqa: E402
    Assignment,
    Engine,
    EngineSettings,
    FileSpec,
    Grant,
    NullObserver,
    PeerAddress,
    SessionRequest,
    VolumePath,
)
from reelsync.fs import Volume  # noqa: E402


class _Gate:
    def __init__(self, volumes: dict[str, Volume]) -> None:
        self.volumes = volumes

    def authorize(self, request: SessionRequest) -> Grant:
        return Grant(self.volumes)


async def _push(settings: EngineSettings, work: Path, pki: Workspace) -> tuple[float, float]:
    hq, lon = pki.agent("hq1", "hq"), pki.agent("lon1", "london")
    dialer = Engine(settings, client_ssl=hq.client(), volumes={"p": Volume("p", work / "hq")})
    listening = Engine(settings, server_ssl=lon.server(), volumes={})
    server = await listening.serve("127.0.0.1", 0, _Gate({"p": Volume("p", work / "london")}))
    spec = FileSpec("small", VolumePath("p", "small"), VolumePath("p", "small"))
    job = Assignment("noop", PeerAddress("127.0.0.1", server.port), (spec,), None)
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        [result] = await dialer.push(job, NullObserver())
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        await dialer.aclose()
        await listening.aclose()
    if result.status not in ("skipped", "done"):
        raise SystemExit(f"the push failed: {result}")
    return wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--protocols", default="3,4")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--work", type=Path, default=Path("/tmp/rs-noop"))
    ap.add_argument("--fresh", action="store_true", help="a first copy each time, not a no-op")
    args = ap.parse_args()
    work: Path = args.work
    files, size = make_set("small", work / "hq" / "small", args.scale)
    (work / "london").mkdir(parents=True, exist_ok=True)
    pki = Workspace(work / "pki")
    versions = [int(v) for v in args.protocols.split(",")]
    base = EngineSettings(fsync=False)
    gc.freeze()  # as `reelsync agent run` does
    gc.set_threshold(10_000, 10, 10)
    asyncio.run(_push(base, work, pki))  # the first copy (or a no-op already)
    seen: dict[int, list[tuple[float, float]]] = {v: [] for v in versions}
    for _ in range(args.runs):
        for v in versions:
            if args.fresh:
                shutil.rmtree(work / "london" / "small", ignore_errors=True)
            wall, cpu = asyncio.run(_push(replace(base, protocol_max=v), work, pki))
            seen[v].append((wall, cpu))
            print(f"  version {v}: {wall:.3f} s wall, {cpu:.3f} s CPU", flush=True)
    what = "first copy" if args.fresh else "no-op push"
    print(f"\n## {what} of {files} files ({size / 1e6:.0f} MB), medians of {args.runs}")
    for v, rows in seen.items():
        wall = statistics.median(w for w, _ in rows)
        cpu = statistics.median(c for _, c in rows)
        print(f"version {v}: {wall:.3f} s wall, {cpu:.3f} s CPU")


if __name__ == "__main__":
    main()
