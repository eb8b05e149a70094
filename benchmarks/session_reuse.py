"""Work on a session kept open vs a new session, across the emulated WAN (not part of the tests).

    python benchmarks/session_reuse.py [--pushes 15] [--wan-link 25,0.1,1000] [--no-wan]

A `reelsync transfer serve` listens in namespace rs-site (``../shared/tools/wanem``); one engine in
rs-hq pushes one 64 KiB file per assignment, one after the other, as an agent does with small
leases. Printed: the time from ``Engine.push`` to the file's result for the first assignment (a
new session: TCP, TLS, Hello, manifest, plan, data, result) and for the others (they flow into
the open session: manifest, plan, data, result), and the same with ``session_idle=0`` (a new
session every time, the engine before protocol version 3). Needs root for the namespaces.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

from run import ns_prefix, wait_port, wanem  # noqa: E402


async def pushes(args: argparse.Namespace) -> None:
    from dataplane_pki import AgentFiles
    from reelsync.engine import Assignment, Engine, EngineSettings, FileSpec, PeerAddress
    from reelsync.engine import VolumePath as VP
    from reelsync.fs import Volume

    pki = Path(args.pki)
    hq = AgentFiles(pki / "reuse-hq.crt", pki / "reuse-hq.key", pki / "ca.crt")
    src = Path(args.src)
    for idle, label in ((30.0, "open session"), (0.0, "new session each time")):
        engine = Engine(
            replace(EngineSettings(), session_idle=idle),
            client_ssl=hq.client(),
            volumes={"s": Volume("s", src)},
        )
        times = []
        for i in range(args.pushes):
            name = f"{label[:4]}-{i}.bin"
            (src / name).write_bytes(os.urandom(64 * 1024))
            spec = FileSpec(name, VP("s", name), VP("d", name))
            job = Assignment(f"t{i}", PeerAddress(args.host, args.port), (spec,))
            t0 = time.monotonic()
            [result] = await engine.push(job)
            times.append(time.monotonic() - t0)
            assert result.ok, result
            if idle == 0:
                await asyncio.sleep(0.05)  # let the session close, as it would between leases
        await engine.aclose()
        rest = statistics.median(times[1:]) * 1000
        print(
            f"{label:<24} first {times[0] * 1000:6.0f} ms, then median {rest:6.0f} ms", flush=True
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--pushes", type=int, default=15)
    ap.add_argument("--wan-link", default="25,0.1,1000")
    ap.add_argument("--no-wan", action="store_true", help="loopback instead")
    ap.add_argument("--dial", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--pki", default="")
    ap.add_argument("--src", default="")
    ap.add_argument("--host", default="10.77.0.2")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    if args.dial:
        asyncio.run(pushes(args))
        return
    from dataplane_pki import Workspace

    work = Path(tempfile.mkdtemp(prefix="reelsync-reuse-", dir="/dev/shm"))  # no disk in it
    ws = Workspace(work / "pki")
    site = ws.agent("reuse-site", "london")
    ws.agent("reuse-hq", "hq")  # the dialing side's files, read by the child in rs-hq
    (work / "src").mkdir()
    (work / "dst").mkdir()
    wan = wanem()
    host = "127.0.0.1" if args.no_wan else "10.77.0.2"
    rx_ns, tx_ns = (None, None) if args.no_wan else ("rs-site", "rs-hq")
    if not args.no_wan:
        subprocess.run([str(wan), "down"], capture_output=True)
        subprocess.run([str(wan), "up", *args.wan_link.split(",")], check=True)
    port = 47321
    tls = ["--cert", str(site.cert), "--key", str(site.key), "--ca", str(site.ca)]
    serve = [
        "transfer",
        "serve",
        *tls,
        "--volume",
        f"d={work / 'dst'}",
        "--listen",
        f"{host}:{port}",
    ]
    rx = subprocess.Popen(
        [*ns_prefix(rx_ns), sys.executable, "-m", "reelsync", *serve], stderr=subprocess.DEVNULL
    )
    try:
        wait_port(host, port, rx_ns)
        dial = ["--dial", "--pki", str(work / "pki"), "--src", str(work / "src")]
        dial += ["--host", host, "--port", str(port), "--pushes", str(args.pushes)]
        subprocess.run([*ns_prefix(tx_ns), sys.executable, __file__, *dial], check=True)
    finally:
        rx.terminate()
        rx.wait(10)
        if not args.no_wan:
            subprocess.run([str(wan), "down"], capture_output=True)


if __name__ == "__main__":
    main()
