"""``GET /metrics``: the Prometheus exposition of :func:`reelsync.services.metrics.snapshot`.

Rules: admins only (``Authorization: Bearer <admin API key>``, which Prometheus sends with
``authorization: {credentials: ...}``); the Prometheus text format (version 0.0.4), written here
line by line (a thousand live jobs make four thousand samples: ``prometheus_client``'s
collectors took ~20 us each, this ~2 us); gauges, since every figure is read from the database
at scrape time (a replica restart resets nothing). Scrapes that arrive while one is being computed
in this process share the next computation, which starts when that one ends (:class:`SharedScrape`):
no answer is older than its request, and N concurrent scrapes cost two computations, not N.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
from collections.abc import Awaitable, Callable, Iterator

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CONTENT_TYPE_LATEST

from reelsync.db import Database
from reelsync.server.dependencies import CurrentActor
from reelsync.services.auth import require_admin
from reelsync.services.metrics import MetricsSnapshot, snapshot

__all__ = ["SharedScrape", "router", "shared_scrape"]

router = APIRouter(tags=["metrics"])

_PAIR = ["queue", "source_site", "destination_site", "status"]
_JOB = ["job", "name", "queue", "source_site", "destination_site"]


def _number(value: float) -> str:
    number = float(value)
    if number - number == 0.0:  # finite (inf - inf and NaN - NaN are NaN)
        return repr(number)
    if number != number:
        return "NaN"
    if number in (math.inf, -math.inf):
        return "+Inf" if number > 0 else "-Inf"
    return repr(number)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class GaugeMetricFamily:
    """One gauge and its samples, written as Prometheus text (the names ``prometheus_client``
    uses, so the collector below reads as before)."""

    def __init__(self, name: str, documentation: str, labels: list[str]) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = labels
        self.samples: list[str] = []

    def add_metric(self, values: list[str], value: float) -> None:
        self.add_sample(self.label_text(values), value)

    def label_text(self, values: list[str]) -> str:
        """The ``k="v",...`` of ``values`` (escaped), to give several families' samples."""
        return ",".join(
            f'{k}="{_escape(str(v))}"' for k, v in zip(self.labels, values, strict=True)
        )

    def add_sample(self, label_text: str, value: float) -> None:
        self.samples.append(f"{self.name}{{{label_text}}} {_number(value)}\n")

    def text(self) -> str:
        doc = self.documentation.replace("\\", "\\\\").replace("\n", "\\n")
        head = f"# HELP {self.name} {doc}\n# TYPE {self.name} gauge\n"
        return head + "".join(self.samples)


class _Snapshot:
    def __init__(self, data: MetricsSnapshot) -> None:
        self.data = data

    def collect(self) -> Iterator[GaugeMetricFamily]:
        d = self.data
        jobs = GaugeMetricFamily(
            "reelsync_jobs", "Jobs by queue, site pair and status.", labels=_PAIR
        )
        for q, s, t, st, n in d.jobs:
            jobs.add_metric([q, s, t, st], n)
        yield jobs
        tasks = GaugeMetricFamily(
            "reelsync_tasks", "Tasks by queue, site pair and status.", labels=_PAIR
        )
        for q, s, t, st, n in d.tasks:
            tasks.add_metric([q, s, t, st], n)
        yield tasks
        moved = GaugeMetricFamily(
            "reelsync_done_bytes",
            "Bytes of the tasks done, by site pair (jobs still in the database).",
            labels=["source_site", "destination_site"],
        )
        for s, t, n in d.bytes_done:
            moved.add_metric([s, t], n)
        yield moved
        agents = GaugeMetricFamily(
            "reelsync_agents", "Enrolled agents by site and status.", labels=["site", "status"]
        )
        for site, st, n in d.agents:
            agents.add_metric([site, st], n)
        yield agents
        outbox = GaugeMetricFamily(
            "reelsync_outbox", "Mail and webhook deliveries by status.", labels=["kind", "status"]
        )
        for kind, st, n in d.outbox:
            outbox.add_metric([kind, st], n)
        yield outbox
        families = {
            "size": GaugeMetricFamily(
                "reelsync_job_size_bytes", "Size of each live job (known sizes).", labels=_JOB
            ),
            "done": GaugeMetricFamily(
                "reelsync_job_done_bytes", "Bytes done of each live job.", labels=_JOB
            ),
            "speed": GaugeMetricFamily(
                "reelsync_job_speed_bytes_per_second", "Speed of each live job.", labels=_JOB
            ),
            "progress": GaugeMetricFamily(
                "reelsync_job_progress_ratio", "Progress of each live job, 0..1.", labels=_JOB
            ),
        }
        size, done, speed, progress = (families[k].samples for k in families)
        for job in d.active:  # one job's labels are escaped once for its four samples
            text = (
                f'job="{_escape(job.id)}",name="{_escape(job.name)}",queue="{_escape(job.queue)}",'
                f'source_site="{_escape(job.source)}",'
                f'destination_site="{_escape(job.destination)}"}} '
            )
            if job.size is not None:
                size.append(f"reelsync_job_size_bytes{{{text}{_number(job.size)}\n")
            done.append(f"reelsync_job_done_bytes{{{text}{_number(job.bytes_done)}\n")
            speed.append(f"reelsync_job_speed_bytes_per_second{{{text}{_number(job.speed)}\n")
            progress.append(f"reelsync_job_progress_ratio{{{text}{_number(job.progress / 100.0)}\n")
        yield from families.values()
        agent = ["agent", "hostname", "site"]
        rate = GaugeMetricFamily(
            "reelsync_agent_rate_bytes_per_second",
            "Each agent's rate over its last heartbeat interval, by direction.",
            labels=[*agent, "direction"],
        )
        limit = GaugeMetricFamily(
            "reelsync_agent_bandwidth_limit_bytes_per_second",
            "The bandwidth limit each agent applies (agents with one).",
            labels=agent,
        )
        for a in d.rates:
            labels = [a.id, a.hostname, a.site]
            for direction, value in (("sent", a.sent), ("received", a.received)):
                if value is not None:
                    rate.add_metric([*labels, direction], value)
            if a.limit is not None:
                limit.add_metric(labels, a.limit)
        yield rate
        yield limit


def _render(data: MetricsSnapshot) -> bytes:
    return "".join(family.text() for family in _Snapshot(data).collect()).encode()


class SharedScrape:
    """One computation at a time, shared: a caller that finds none running starts one and gets
    its answer; callers that arrive while one runs wait for the next, started as soon as the
    running one ends, so every answer was computed after its caller arrived. A caller that goes
    away does not stop the computation the others wait for. Event-loop only (not thread-safe)."""

    def __init__(self, compute: Callable[[], Awaitable[bytes]]) -> None:
        self._compute = compute
        self._busy = False
        self._next: asyncio.Future[bytes] | None = None  # the callers waiting for the next one
        self._tasks: set[asyncio.Task[None]] = set()

    async def get(self) -> bytes:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[bytes] = loop.create_future()
        if self._busy:
            if self._next is None:
                self._next = answer
            answer = self._next
        else:
            self._busy = True
            self._start(answer)
        return await asyncio.shield(answer)

    def _start(self, answer: asyncio.Future[bytes]) -> None:
        # a context of its own: nothing of the caller's request (its catalog check) is reused
        task = asyncio.get_running_loop().create_task(
            self._run(answer), context=contextvars.Context()
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, answer: asyncio.Future[bytes]) -> None:
        try:
            answer.set_result(await self._compute())
        except asyncio.CancelledError:  # the server is stopping: so are its waiters
            answer.cancel()
            if self._next is not None:
                self._next.cancel()
            self._next, self._busy = None, False
            raise
        except Exception as exc:  # every waiter gets the error (marked retrieved)
            answer.set_exception(exc)
            answer.exception()
        waiting, self._next = self._next, None
        if waiting is None:
            self._busy = False
        else:
            self._start(waiting)


def shared_scrape(db: Database) -> SharedScrape:
    """The app's one shared scrape of ``db`` (``app.state.metrics_scrape``, made by
    :func:`reelsync.server.app.create_app`)."""

    async def compute() -> bytes:
        return await run_in_threadpool(lambda: _render(snapshot(db)))  # off the event loop

    return SharedScrape(compute)


@router.get("/metrics", response_class=Response)
async def metrics(request: Request, actor: CurrentActor) -> Response:
    require_admin(actor, "read the metrics")
    scrape: SharedScrape = request.app.state.metrics_scrape
    return Response(await scrape.get(), media_type=CONTENT_TYPE_LATEST)
