"""The agent daemon (``reelsync agent run``): heartbeat, work long-poll, transfers, file
operations, and the data-plane listener.

Rules: the agent only dials out to the control plane; when it is down the agent keeps running
and reconnects: while nothing answers, its heartbeat tries every second (:data:`_PROBE_S`) and the
work poll waits for the heartbeat to get through, so work resumes within about a second of the
control plane answering; an error it answers is retried with exponential backoff (0.5 s up to
``reconnect_max_s``). Volumes come from the
heartbeat answer (the volume's path at this agent's site); a root missing on disk is skipped with
a warning. Each transfer grant runs on the engine - ``push`` when the grant says push and this
agent is the sender, ``pull`` otherwise - and its progress and results go back in batches. At
most ``max_transfers`` run at once. Peers are accepted only through the :class:`TicketGate`.
The first heartbeat of a process says ``started``: the control plane releases whatever an earlier
process of this agent held, at once. SIGTERM: stop polling, cancel running transfers (reported
failed and retryable: the receiver resumes from its verified chunks next time), flush the last
reports, say goodbye (the agent is offline at once, its leases back to the queue), close the
listener. A transfer stops itself when no report has reached the control plane for 3/4 of its lease
(the files will be leased again elsewhere when it ends: this agent must be done writing them).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from reelsync.agent.controlplane import ControlPlane
from reelsync.agent.dataplane import WorkerPool, agent_engine
from reelsync.agent.fileops import run_fileop
from reelsync.agent.gate import TicketGate
from reelsync.agent.pace import Pace
from reelsync.agent.reporter import Reporter, TransferObserverFor
from reelsync.agent.scopes import ScopeBook
from reelsync.agent.settings import AgentSettings
from reelsync.agent.workerlink import WorkerInit
from reelsync.engine import (
    Assignment,
    Engine,
    EngineSettings,
    FileResult,
    FileSpec,
    Listener,
    PeerAddress,
    VolumePath,
)
from reelsync.errors import (
    AuthenticationError,
    ConfigError,
    ConnectionLostError,
    InternalError,
    ReelsyncError,
    RevokedError,
    UnavailableError,
)
from reelsync.fs import Volume, normalize_relpath
from reelsync.pki import (
    RequestSigner,
    TicketVerifier,
    read_pem,
    read_private_pem,
)

__all__ = ["Agent"]

_log = logging.getLogger("reelsync.agent")
_WILDCARDS = ("0.0.0.0", "::", "")  # noqa: S104
_DEFAULT_LEASE_S = 120.0
_MAX_HELD = 200  # transfer ids sent with a work poll at most (more: not sent, nothing released)
_RETRY_FLOOR_S = 0.2  # the work poll's least pause after a failed poll


#: The heartbeat's pause between tries while nothing answers at all (a refused or dropped
#: connection, a 503 while it restarts): a try costs the control plane nothing then, and the agent
#: is back at work within about this long of it answering again.
_PROBE_S = 1.0


class _Backoff:
    def __init__(self, maximum: float) -> None:
        self.maximum = maximum
        self.delay = 0.0

    def reset(self) -> None:
        self.delay = 0.0

    def next(self) -> float:
        self.delay = min(self.maximum, max(0.5, self.delay * 2))
        return self.delay


def _unreachable(exc: ReelsyncError) -> bool:
    """Nothing answered (or only a 503 while the control plane starts): not an error it gave."""
    return isinstance(exc, ConnectionLostError | UnavailableError)


class Agent:
    """One enrolled agent. ``await run(stop)`` until ``stop`` is set."""

    def __init__(self, settings: AgentSettings) -> None:
        self.settings = settings
        files = settings.files
        for path in (files.key, files.cert, files.ca, files.ticket_key):
            if not path.is_file():
                raise ConfigError(f"{path} is missing", hint="enroll the agent again")
        engine_settings = EngineSettings(
            streams=settings.streams,
            bandwidth_limit=settings.bandwidth_limit,
            fsync=settings.fsync,
            direct_io=settings.direct_io,
        )
        self.volumes: dict[str, Volume] = {}
        self.scopes = ScopeBook()
        self.engine: Engine | WorkerPool
        if settings.workers > 1:  # the data plane in worker processes (agent/dataplane.py)
            self.engine = WorkerPool(
                settings.workers,
                functools.partial(self._worker_init, engine_settings),
                self.scopes,
                connect_timeout=engine_settings.connect_timeout,
            )
            self.engine.set_bandwidth_limit(settings.bandwidth_limit)
        else:
            self.engine = agent_engine(engine_settings, cert=files.cert, key=files.key, ca=files.ca)
        self.gate = TicketGate(
            settings.server_id,
            TicketVerifier.from_file(files.ticket_key),
            lambda: self.volumes,
            workspace=settings.workspace or None,
            scopes=self.scopes,
        )
        self.control = ControlPlane(
            settings.server_urls,
            secret=settings.secret,
            signer=RequestSigner(read_private_pem(files.key), read_pem(files.cert)),
            ca_file=files.ca,
            on_switch=lambda _url: self._beat_now.set(),
        )
        self._beat_now = asyncio.Event()  # check in at once (moved to another control plane)
        self.reporter = Reporter(
            self.control,
            interval_s=settings.report_interval_s,
            keepalive_s=settings.report_keepalive_s,
            on_revoked=self._revoked,
        )
        self.listener: Listener | None = None
        self.connected = asyncio.Event()
        self._transfers: dict[asyncio.Task[None], tuple[str, ...]] = {}
        self._lease_s: dict[asyncio.Task[None], float] = {}
        self._transfer_ids: dict[asyncio.Task[None], str] = {}
        self._chores: set[asyncio.Task[None]] = set()
        self._missing_roots: set[str] = set()
        self._revoked_tasks: set[asyncio.Task[None]] = set()
        self._last_beat = (time.monotonic(), 0, 0)
        self._started = True  # until the first heartbeat is through: this process holds nothing
        self.pace = Pace()
        self._outage = False  # a control-plane outage was logged already

    # -- lifecycle -------------------------------------------------------------------------------
    def _worker_init(self, engine: EngineSettings, index: int) -> WorkerInit:
        files = self.settings.files
        return WorkerInit(
            index=index,
            agent_id=self.settings.server_id,
            workspace=self.settings.workspace,
            engine=engine,
            key=files.key,
            cert=files.cert,
            ca=files.ca,
            ticket_key=files.ticket_key,
            log_level=self.settings.log_level,
        )

    async def run(self, stop: asyncio.Event) -> None:
        if isinstance(self.engine, WorkerPool):
            await self.engine.start()
        if self.settings.dialable:
            self.listener = await self._listen()
        loops = [
            asyncio.create_task(self._heartbeat_loop(), name="heartbeat"),
            asyncio.create_task(self._work_loop(), name="work"),
            asyncio.create_task(self.reporter.run(), name="reporter"),
            asyncio.create_task(self._fence_loop(), name="fence"),
        ]
        stopped = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait([stopped, *loops], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stopped and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            stopped.cancel()
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            await self._shutdown()

    async def _shutdown(self) -> None:
        _log.info("stopping: %d transfer(s) running", len(self._transfers))
        for task in list(self._transfers) + list(self._chores):
            task.cancel()
        await asyncio.gather(*self._transfers, *self._chores, return_exceptions=True)
        with contextlib.suppress(ReelsyncError, TimeoutError):
            await asyncio.wait_for(self.reporter.flush(), 5.0)
        if self.connected.is_set():  # offline at once, not after a silence
            try:
                await self.control.bye()
            except ReelsyncError as exc:
                _log.info("could not say goodbye to the control plane: %s", exc)
        await self.engine.aclose()
        await self.control.aclose()

    async def _listen(self) -> Listener:
        host = self.settings.listen_host
        last: ReelsyncError | None = None
        for port in self.settings.ports:
            try:
                if isinstance(self.engine, WorkerPool):
                    listener = await self.engine.serve(host, port)
                else:
                    listener = await self.engine.serve(host, port, self.gate)
            except ConfigError as exc:
                last = exc
                continue
            _log.info("listening for peers on %s:%d", host, listener.port)
            return listener
        raise ConfigError(
            f"cannot listen for peers on {host} ports {self.settings.ports}: {last}",
            hint="free a port in the range or change [peer] listen in agent.toml",
        )

    @property
    def peer_endpoint(self) -> tuple[str | None, int | None]:
        if self.listener is None:
            return None, None
        host = self.settings.advertise
        if host is None and self.settings.listen_host not in _WILDCARDS:
            host = self.settings.listen_host
        return host, self.listener.port

    # -- heartbeat -------------------------------------------------------------------------------
    async def heartbeat(self) -> dict[str, Any]:
        """One heartbeat with this agent's rates since the last one; applies what it answers:
        revoked peers, the volumes, and a bandwidth limit set centrally."""
        host, port = self.peer_endpoint
        now = time.monotonic()
        sent, received = self.engine.bytes_moved
        then, sent0, received0 = self._last_beat
        elapsed = now - then
        answer = await self.control.heartbeat(
            peer_address=host,
            peer_port=port,
            dialable=self.listener is not None,
            rate_sent=(sent - sent0) / elapsed if elapsed > 0 else 0.0,
            rate_received=(received - received0) / elapsed if elapsed > 0 else 0.0,
            bandwidth_limit=self.bandwidth_limit,
            started=self._started,
        )
        self._started = False
        self._last_beat = (now, sent, received)
        self.gate.revoked = frozenset(str(a) for a in answer.get("revoked_agents") or ())
        if isinstance(self.engine, WorkerPool):
            self.engine.set_revoked(self.gate.revoked)
        self._apply_volumes(answer.get("volumes") or [])
        self._apply_limit(answer.get("bandwidth_limit"))
        return answer

    @property
    def bandwidth_limit(self) -> float | None:
        """The limit applied now (bytes/s, each direction): central if set, else agent.toml."""
        return self.engine.bandwidth_limit

    def _apply_limit(self, central: Any) -> None:
        limit = float(central) if isinstance(central, int | float) and central > 0 else None
        wanted = limit if limit is not None else self.settings.bandwidth_limit
        if wanted != self.bandwidth_limit:
            _log.info(
                "bandwidth limit: %s (%s)",
                f"{wanted / (1 << 20):.2f} MiB/s" if wanted else "none",
                "set on the control plane" if limit is not None else "agent.toml",
            )
            self.engine.set_bandwidth_limit(wanted)

    def _apply_volumes(self, listed: list[dict[str, Any]]) -> None:
        volumes: dict[str, Volume] = {}
        for item in listed:
            code, root = str(item.get("code")), str(item.get("root"))
            current = self.volumes.get(code)
            if current is not None and str(current.root) == root:
                volumes[code] = current
                continue
            try:
                volumes[code] = Volume(code, Path(root))
                volumes[code].confine = self.scopes.confine(volumes[code])
            except ReelsyncError as exc:
                if code not in self._missing_roots:
                    _log.warning("not serving volume %s: %s", code, exc)
                    self._missing_roots.add(code)
                continue
            self._missing_roots.discard(code)
            _log.info("serving volume %s at %s", code, root)
        self.volumes = volumes
        self.engine.set_volumes(volumes)

    async def _heartbeat_loop(self) -> None:
        backoff = _Backoff(self.settings.reconnect_max_s)
        interval = 10.0
        while True:
            try:
                answer = await self.heartbeat()
            except ReelsyncError as exc:
                if isinstance(exc, ConfigError | RevokedError):
                    raise
                self._lost(exc)
                pause = backoff.next()
                await asyncio.sleep(min(pause, _PROBE_S) if _unreachable(exc) else pause)
                continue
            if not self.connected.is_set():
                self._outage = False
                _log.info(
                    "connected to %s as agent %s (site %s)",
                    self.control.url,
                    self.settings.server_id,
                    self.settings.site,
                )
                self.connected.set()
            backoff.reset()
            interval = float(answer.get("heartbeat_s") or interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._beat_now.wait(), interval)
            self._beat_now.clear()

    def _lost(self, exc: ReelsyncError) -> None:
        """Log a failed call once per outage (an auth refusal every time), then retry."""
        if self.connected.is_set() or not self._outage or isinstance(exc, AuthenticationError):
            level = logging.ERROR if isinstance(exc, AuthenticationError) else logging.WARNING
            _log.log(
                level,
                "control plane: %s (retrying every %g s at most)",
                exc,
                _PROBE_S if _unreachable(exc) else self.settings.reconnect_max_s,
            )
        else:
            _log.debug("control plane: %s (retrying)", exc)
        self._outage = True
        self.connected.clear()

    # -- work ------------------------------------------------------------------------------------
    async def _work_loop(self) -> None:
        backoff = _Backoff(self.settings.reconnect_max_s)
        while True:
            await self.connected.wait()
            # Ask for at least one transfer even with every slot busy: the control plane grants
            # it only once a slot is free there (a finished transfer reported, which wakes this
            # poll) or for a job of a higher priority than all in flight, so the next lease is
            # here as soon as it may run, never a poll interval later.
            free = max(1, self.settings.max_transfers - len(self._transfers))
            # what this agent holds, so a lease whose answer was lost (the process that made it
            # killed before answering) goes back now, not when it expires
            held = set(self._transfer_ids.values()) | self.reporter.transfer_ids()
            try:
                answer = await self.control.work(
                    wait_s=self.settings.work_wait_s,
                    transfers=free,
                    pace=self.pace.params(),
                    held=held if len(held) <= _MAX_HELD else None,
                )
            except ReelsyncError as exc:
                if isinstance(exc, ConfigError | RevokedError):
                    raise
                self._lost(exc)
                pause = backoff.next()
                if _unreachable(exc):
                    # the heartbeat finds out when it is back (now, if it was waiting out its
                    # interval) and sets `connected`, which the next round waits for: no pause
                    # of this loop's own, only a floor against spinning
                    self._beat_now.set()
                    pause = min(pause, _RETRY_FLOOR_S)
                await asyncio.sleep(pause)
                continue
            backoff.reset()
            for op in answer.get("fileops") or []:
                self._spawn(self._fileop(op))
            for grant in answer.get("transfers") or []:
                keys = tuple(str(f["task_id"]) for f in grant.get("files") or [])
                if not self._transfers:
                    self.reporter.renewed_at = time.monotonic()
                task = asyncio.create_task(self._transfer(grant))
                self._transfers[task] = keys
                self._lease_s[task] = float(grant.get("lease_s") or _DEFAULT_LEASE_S)
                self._transfer_ids[task] = str(grant.get("transfer_id"))
                task.add_done_callback(self._transfers.pop)
                task.add_done_callback(self._lease_s.pop)
                task.add_done_callback(self._transfer_ids.pop)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._chores.add(task)
        task.add_done_callback(self._chores.discard)

    async def _fileop(self, op: dict[str, Any]) -> None:
        answer: dict[str, Any] = {"id": op.get("id")}
        try:
            answer["result"] = await asyncio.to_thread(run_fileop, self.volumes, op)
        except ReelsyncError as exc:
            answer["error"] = {"code": exc.code, "message": exc.message}
        except OSError as exc:
            answer["error"] = {"code": "internal", "message": f"{op.get('op')}: {exc}"}
        except Exception as exc:  # a bug: answer it (the caller waits), log it, live on
            _log.exception("file operation %s failed", op.get("op"))
            answer["error"] = {"code": "internal", "message": f"{op.get('op')} failed: {exc}"}
        try:
            await self.control.fileop_result(answer)
        except ReelsyncError as exc:
            _log.warning("could not answer file operation %s: %s", op.get("id"), exc)

    async def _transfer(self, grant: dict[str, Any]) -> None:
        transfer_id = str(grant.get("transfer_id"))
        specs = tuple(
            FileSpec(
                key=str(f["task_id"]),
                src=VolumePath(str(f["src_volume"]), str(f["src_path"])),
                dst=VolumePath(str(f["dst_volume"]), str(f["dst_path"])),
                size=f.get("size"),
            )
            for f in grant.get("files") or []
        )
        peer = grant.get("peer") or {}
        sending = grant.get("direction") == "push" and grant.get("sender_id") == (
            self.settings.server_id
        )
        peer_id = grant.get("receiver_id") if sending else grant.get("sender_id")
        self.reporter.started(
            [s.key for s in specs], [s.size for s in specs], transfer_id=transfer_id
        )
        specs = self._within_scopes(specs, grant, sending)
        if not specs:
            return
        assignment = Assignment(
            transfer_id,
            PeerAddress(str(peer.get("host")), int(peer.get("port") or 0)),
            specs,
            grant.get("ticket"),
            peer_id=str(peer_id) if peer_id else None,
            priority=int(grant.get("priority") or 0),
        )
        _log.info(
            "transfer %s: %s %d file(s) %s %s:%s",
            transfer_id,
            "push" if sending else "pull",
            len(specs),
            "to" if sending else "from",
            assignment.peer.host,
            assignment.peer.port,
        )
        observer = TransferObserverFor(self.reporter)
        results: list[FileResult] = []
        began = time.monotonic()
        try:
            run = self.engine.push if sending else self.engine.pull
            results = await run(assignment, observer)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task in self._revoked_tasks:  # the control plane took it back: say nothing
                self._revoked_tasks.discard(task)
                return
            self._fail_rest(specs, ConnectionLostError("the agent stopped mid-transfer"))
            raise
        except ReelsyncError as exc:
            self._fail_rest(specs, exc)
        except Exception as exc:  # a bug must not kill the agent: fail the files, log it
            _log.exception("transfer %s crashed", transfer_id)
            self._fail_rest(specs, InternalError(f"the agent failed: {exc}"))
        for result in results:
            if self.reporter.is_live(result.key):
                self.reporter.finished(result)
        self.reporter.flush_soon()  # the job may be done, the slot is free: say so now
        moved = [r for r in results if r.ok]
        self.pace.record(
            sum(r.files for r in moved), sum(r.size for r in moved), time.monotonic() - began
        )
        done = sum(r.ok for r in results)
        _log.info("transfer %s: %d/%d file(s) done", transfer_id, done, len(specs))

    def _within_scopes(
        self, specs: tuple[FileSpec, ...], grant: dict[str, Any], sending: bool
    ) -> tuple[FileSpec, ...]:
        """The files whose path on this side leads (symlinks followed) inside the scope the
        control plane granted; each other one fails at once."""
        scopes = {
            str(f["task_id"]): f.get("src_scope" if sending else "dst_scope", "")
            for f in grant.get("files") or []
        }
        kept = []
        for spec in specs:
            local = spec.src if sending else spec.dst
            volume = self.volumes.get(local.volume)
            scope = scopes.get(spec.key, "")
            try:
                if volume is not None:
                    volume.check_within(local.path, scope)
                    self.scopes.add(local.volume, normalize_relpath(local.path), scope)
            except ReelsyncError as exc:
                self.reporter.finished(FileResult.failed(spec.key, exc))
                continue
            kept.append(spec)
        return tuple(kept)

    def _revoked(self, task_ids: set[str]) -> None:
        """Stop every running transfer with a file revoked (job paused or aborted, lease lost):
        the control plane takes back a transfer as a whole, so its other files stop too and are
        no longer reported (the receiver keeps their verified chunks for the next lease)."""
        for task, keys in list(self._transfers.items()):
            if task.done() or not any(key in task_ids for key in keys):
                continue
            _log.info("transfer revoked by the control plane: stopping it")
            self._take_back(task, keys)

    def _take_back(self, task: asyncio.Task[None], keys: tuple[str, ...]) -> None:
        """Stop a transfer the control plane no longer holds for this agent (its files are not
        reported any more); once it has stopped, the next report says so (:meth:`_stopped`)."""
        if task in self._revoked_tasks:
            return  # already stopping
        self.reporter.forget(keys)
        self._revoked_tasks.add(task)
        task.add_done_callback(functools.partial(self._stopped, self._transfer_ids.get(task)))
        task.cancel()

    def _stopped(self, transfer_id: str | None, task: asyncio.Task[None]) -> None:
        """A transfer taken back has ended (the engine let go of its files and streams): the
        control plane may lease its files again (it holds them back until told, or its fence_s)."""
        self._revoked_tasks.discard(task)
        if transfer_id is not None:
            _log.info("transfer %s: stopped", transfer_id)
            self.reporter.stopped(transfer_id)

    async def _fence_loop(self) -> None:
        """Stop every transfer once no report has been taken for 3/4 of its lease (the control
        plane unreachable: it will lease the files again when the lease ends, and this agent
        must no longer be writing them by then)."""
        while True:
            await asyncio.sleep(1.0)
            silent = time.monotonic() - self.reporter.renewed_at
            floor = 3 * self.reporter.keepalive_s  # a healthy transfer reports this often
            for task, keys in list(self._transfers.items()):
                lease_s = self._lease_s.get(task, _DEFAULT_LEASE_S)
                if task.done() or silent < max(floor, 0.75 * lease_s):
                    continue
                _log.warning(
                    "transfer stopped: no report reached the control plane for %.0f s "
                    "(its lease is running out)",
                    silent,
                )
                self._take_back(task, keys)

    def _fail_rest(self, specs: tuple[FileSpec, ...], exc: ReelsyncError) -> None:
        for spec in specs:
            if self.reporter.is_live(spec.key):
                self.reporter.finished(FileResult.failed(spec.key, exc))
