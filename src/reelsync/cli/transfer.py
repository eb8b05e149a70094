"""``reelsync transfer``: run the data-plane engine by hand, without a control plane (debugging,
fault tests, benchmarks). ``serve`` listens for a peer; ``push``/``pull`` dial one. Certificates
are the agent's files (cert, key, workspace CA); volumes are ``CODE=PATH``."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import ssl
import time
from pathlib import Path
from typing import Any

import click

from reelsync.config import parse_listen
from reelsync.engine import (
    MIB,
    Assignment,
    Engine,
    EngineSettings,
    FileResult,
    FileSpec,
    Grant,
    PeerAddress,
    SessionRequest,
    VolumePath,
)
from reelsync.errors import PermissionDeniedError, UserError, ValidationError
from reelsync.fs import DIRECT_IO_MODES, Volume, normalize_relpath
from reelsync.pki import client_ssl_context, server_ssl_context

__all__ = ["transfer"]


def _tls(cert: Path, key: Path, ca: Path, *, server: bool) -> ssl.SSLContext:
    if server:
        return server_ssl_context(cert, key, ca)
    # peers are dialled by address and checked by their workspace certificate, not by name
    return client_ssl_context(ca, cert_file=cert, key_file=key, check_hostname=False)


def _volumes(specs: tuple[str, ...]) -> dict[str, Volume]:
    out = {}
    for spec in specs:
        code, sep, path = spec.partition("=")
        if not sep or not code or not path:
            raise ValidationError(f"--volume must be CODE=PATH, got {spec!r}")
        out[code] = Volume(code, Path(path))
    return out


def _vpath(text: str) -> VolumePath:
    volume, sep, path = text.partition(":")
    if not sep or not volume:
        raise ValidationError(f"expected VOLUME:PATH, got {text!r}")
    return VolumePath(volume, path)


def _settings(opts: dict[str, Any]) -> EngineSettings:
    corrupt = set()
    for item in opts.get("debug_corrupt") or ():
        path, _, index = item.rpartition(":")
        if not path or not index.isdigit():
            raise ValidationError(f"--debug-corrupt must be PATH:INDEX, got {item!r}")
        corrupt.add((path, int(index)))
    bw = opts.get("bwlimit")
    return EngineSettings(
        streams=opts["streams"],
        max_streams=max(opts["streams"], opts["max_streams"]),
        path_rate=opts["path_mbit"] * 1e6 / 8 if opts["path_mbit"] else None,
        chunk_size=int(opts["chunk_kib"]) * 1024,
        small_file_max=min(int(opts["chunk_kib"]) * 1024, 256 * 1024),
        batch_bytes=min(int(opts["chunk_kib"]) * 1024, 4 * MIB),
        bandwidth_limit=float(bw) * MIB if bw else None,
        fsync=opts["fsync"],
        direct_io=opts["direct_io"],
        retry_deadline=opts.get("retry_deadline", 300.0),
        congestion=opts["congestion"] or None,
        debug_corrupt=frozenset(corrupt),
    )


def _common(fn: Any) -> Any:
    options = [
        click.option("--cert", type=click.Path(path_type=Path), required=True),
        click.option("--key", type=click.Path(path_type=Path), required=True),
        click.option("--ca", type=click.Path(path_type=Path), required=True),
        click.option("--volume", "volumes", multiple=True, help="CODE=PATH, repeatable"),
        click.option(
            "--streams",
            type=click.IntRange(1, 64),
            default=4,
            show_default=True,
            help="the least streams a session opens",
        ),
        click.option(
            "--max-streams",
            type=click.IntRange(1, 64),
            default=32,
            show_default=True,
            help="the most, when the path's bandwidth x delay needs them",
        ),
        click.option(
            "--path-mbit",
            type=click.FloatRange(min=0),
            default=1000.0,
            show_default=True,
            help="the path's bandwidth, Mbit/s, to size the streams (0: always --streams)",
        ),
        click.option("--chunk-kib", type=int, default=4096, show_default=True),
        click.option("--bwlimit", type=float, default=None, help="MiB/s at most, each way"),
        click.option("--fsync/--no-fsync", default=True, show_default=True),
        click.option(
            "--direct-io",
            type=click.Choice(DIRECT_IO_MODES),
            default="auto",
            show_default=True,
            help="write received chunks with direct I/O (auto: on local ext4 and XFS)",
        ),
        click.option("--congestion", default="bbr", show_default=True),
    ]
    for opt in reversed(options):
        fn = opt(fn)
    return fn


@click.group()
def transfer() -> None:
    """Run the data-plane engine by hand (debugging, fault tests, benchmarks)."""
    # Everything imported so far lives as long as the process: keep it out of the collector's
    # way, so full collections do not hold the GIL while the stream threads wait for it; and
    # collect the young generation per 50,000 allocations, not 700: each small file allocates
    # a few dozen short-lived objects, almost none in cycles.
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


class _Gate:
    def __init__(self, volumes: dict[str, Volume], ticket: str | None) -> None:
        self.volumes, self.ticket = volumes, ticket

    def authorize(self, request: SessionRequest) -> Grant:
        if self.ticket is not None and request.ticket != self.ticket:
            raise PermissionDeniedError("wrong ticket")
        return Grant(self.volumes)


@transfer.command()
@_common
@click.option("--listen", default="127.0.0.1:0", show_default=True)
@click.option("--ticket", default=None, help="accept only sessions presenting this ticket")
@click.option("--port-file", type=click.Path(path_type=Path), default=None)
def serve(listen: str, ticket: str | None, port_file: Path | None, **opts: Any) -> None:
    """Listen for peers until SIGTERM/SIGINT."""
    settings = _settings(opts)
    volumes = _volumes(opts["volumes"])
    host, port = parse_listen(listen) if listen != "127.0.0.1:0" else ("127.0.0.1", 0)
    server_ssl = _tls(opts["cert"], opts["key"], opts["ca"], server=True)

    async def main() -> None:
        engine = Engine(settings, server_ssl=server_ssl, volumes=volumes)
        listener = await engine.serve(host, port, _Gate(volumes, ticket))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        click.echo(f"listening on {host}:{listener.port}", err=True)
        if port_file is not None:
            tmp = port_file.with_suffix(".tmp")
            tmp.write_text(str(listener.port))
            tmp.replace(port_file)
        await stop.wait()
        await engine.aclose()

    asyncio.run(main())


def _files(
    volumes: dict[str, Volume], files: tuple[str, ...], trees: tuple[str, ...], pull: bool
) -> list[FileSpec]:
    out: list[FileSpec] = []
    for item in files:
        src_text, sep, dst_text = item.partition("=")
        src = _vpath(src_text)
        dst = _vpath(dst_text) if sep else src
        out.append(FileSpec(f"{len(out)}", src, dst))
    for item in trees:
        src_text, sep, dst_text = item.partition("=")
        src = _vpath(src_text)
        dst = _vpath(dst_text) if sep else src
        if pull:
            raise UserError("--tree lists local files: use it with push")
        volume = volumes.get(src.volume)
        if volume is None:
            raise ValidationError(f"--tree names an unknown volume {src.volume!r}")
        base = normalize_relpath(src.path)
        real = volume.resolve_str(base)
        dst_path = dst.path.strip("/")
        if os.path.isfile(real):  # a tree of one file
            size = os.path.getsize(real)
            out.append(FileSpec(f"{len(out)}", src, VolumePath(dst.volume, dst_path), size))
            continue
        src_base = f"{base}/" if base else ""
        dst_base = f"{dst_path}/" if dst_path else ""
        for rel, st in volume.walk_files(real):  # one lstat per file, symlinks never followed
            out.append(
                FileSpec(
                    f"{len(out)}",
                    VolumePath(src.volume, src_base + rel),
                    VolumePath(dst.volume, dst_base + rel),
                    st.st_size,
                )
            )
    if not out:
        raise UserError("nothing to transfer: give --file or --tree")
    return out


def _run(
    pull: bool,
    peer: str,
    ticket: str | None,
    files: tuple[str, ...],
    trees: tuple[str, ...],
    as_json: bool,
    opts: dict[str, Any],
) -> None:
    settings = _settings(opts)
    volumes = _volumes(opts["volumes"])
    host, port = parse_listen(peer)
    client_ssl = _tls(opts["cert"], opts["key"], opts["ca"], server=False)
    specs = _files(volumes, files, trees, pull)
    job = Assignment("cli", PeerAddress(host, port), tuple(specs), ticket)

    class Printer:
        def file_progress(self, key: str, bytes_done: int, size: int) -> None:
            return None

        def file_finished(self, result: FileResult) -> None:
            if as_json:
                click.echo(json.dumps({"event": "file", **_result_dict(result)}))

    async def main() -> list[FileResult]:
        engine = Engine(settings, client_ssl=client_ssl, volumes=volumes)
        try:
            runner = engine.pull if pull else engine.push
            return await runner(job, Printer())
        finally:
            await engine.aclose()

    t0 = time.monotonic()
    results = asyncio.run(main())
    seconds = time.monotonic() - t0
    failed = [r for r in results if r.status == "failed"]
    total = sum(r.size for r in results)
    summary = {
        "event": "summary",
        "files": len(results),
        "done": sum(r.status == "done" for r in results),
        "skipped": sum(r.status == "skipped" for r in results),
        "failed": len(failed),
        "bytes": total,
        "bytes_sent": sum(r.bytes_sent for r in results),
        "seconds": round(seconds, 3),
        "mb_per_s": round(total / seconds / 1e6, 1) if seconds else 0,
    }
    click.echo(json.dumps(summary))
    for r in failed[:10]:
        click.echo(f"failed: {r.key}: {r.error_code}: {r.error_message}", err=True)
    if failed:
        raise click.exceptions.Exit(1)


def _result_dict(r: FileResult) -> dict[str, Any]:
    return {
        "key": r.key,
        "status": r.status,
        "size": r.size,
        "bytes_sent": r.bytes_sent,
        "digest": r.digest,
        "error_code": r.error_code,
        "error": r.error_message,
        "retryable": r.retryable,
    }


def _dial_options(fn: Any) -> Any:
    fn = click.option("--peer", required=True, help="HOST:PORT of the listening peer")(fn)
    fn = click.option("--ticket", default=None)(fn)
    fn = click.option("--file", "files", multiple=True, help="VOL:PATH[=VOL:PATH]")(fn)
    fn = click.option("--json", "as_json", is_flag=True, help="one JSON line per file")(fn)
    return click.option("--retry-deadline", type=float, default=300.0, show_default=True)(fn)


@transfer.command()
@_common
@_dial_options
@click.option("--tree", "trees", multiple=True, help="VOL:DIR[=VOL:DIR]: every file under DIR")
@click.option("--debug-corrupt", multiple=True, help="test hook: flip a byte of DSTPATH:CHUNK once")
def push(
    peer: str,
    ticket: str | None,
    files: tuple[str, ...],
    trees: tuple[str, ...],
    as_json: bool,
    **opts: Any,
) -> None:
    """Send files to a listening peer."""
    _run(False, peer, ticket, files, trees, as_json, opts)


@transfer.command()
@_common
@_dial_options
def pull(peer: str, ticket: str | None, files: tuple[str, ...], as_json: bool, **opts: Any) -> None:
    """Fetch files from a listening peer."""
    _run(True, peer, ticket, files, (), as_json, opts)
