"""The job summary e-mail: one per finished job, never one per task.

Rules: the mail names the job, queue, source and destination sites, file count, bytes, duration
and the failures with their reasons; at most ``max_failures`` failures are listed, then a count of
the rest. Composition is pure (no database, no clock): the caller gathers a :class:`JobSummary`.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime

from reelsync.domain.units import size_text
from reelsync.notify.mailer import OutgoingMail

__all__ = [
    "MAX_FAILURES_LISTED",
    "FailedFile",
    "JobSummary",
    "compose_job_mail",
    "format_bytes",
    "format_duration",
]

MAX_FAILURES_LISTED = 20


@dataclass(frozen=True, slots=True)
class FailedFile:
    path: str
    reason: str


@dataclass(frozen=True, slots=True)
class JobSummary:
    job_id: str
    name: str
    status: str  # done | failed
    queue: str
    source_site: str
    destination_site: str
    file_count: int
    files_done: int
    bytes_total: int
    started: datetime | None
    finished: datetime | None
    failures: tuple[FailedFile, ...] = ()
    failure_count: int = 0  # all failed tasks; ``failures`` may hold only the first ones
    creator: str | None = None

    @property
    def duration_s(self) -> float | None:
        if self.started is None or self.finished is None:
            return None
        return max(0.0, (self.finished - self.started).total_seconds())


def format_bytes(n: int) -> str:
    """The mail's sizes: the one convention of :mod:`reelsync.domain.units` (``22.9 MiB``)."""
    return size_text(n)


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min {secs:02d} s"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def _facts(s: JobSummary) -> list[tuple[str, str]]:
    files = f"{s.file_count}"
    if s.status != "done":
        files = f"{s.files_done} of {s.file_count} done"
    return [
        ("Job", s.name),
        ("Status", s.status),
        ("Queue", s.queue),
        ("From site", s.source_site),
        ("To site", s.destination_site),
        ("Files", files),
        ("Size", format_bytes(s.bytes_total)),
        ("Duration", format_duration(s.duration_s)),
    ]


def compose_job_mail(
    summary: JobSummary,
    *,
    to: tuple[str, ...],
    job_url: str | None,
    reply_to: str | None = None,
    message_id: str | None = None,
    max_failures: int = MAX_FAILURES_LISTED,
) -> OutgoingMail:
    """The summary of a finished job as a plain text + HTML mail."""
    s = summary
    verb = "done" if s.status == "done" else "FAILED"
    subject = (
        f"[reelsync] {verb}: {s.name} ({s.source_site} -> {s.destination_site}, "
        f"{s.file_count} file{'' if s.file_count == 1 else 's'})"
    )
    facts = _facts(s)
    shown = s.failures[:max_failures]
    total_failed = max(s.failure_count, len(s.failures))
    rest = total_failed - len(shown)

    lines = [f"Job {s.name!r} is {s.status}.", ""]
    width = max(len(k) for k, _ in facts)
    lines += [f"{k + ':':<{width + 1}} {v}" for k, v in facts]
    if total_failed:
        lines += ["", f"Failures ({total_failed}):"]
        lines += [f"  - {f.path}: {f.reason}" for f in shown]
        if rest > 0:
            lines.append(f"  ... and {rest} more")
    if job_url:
        lines += ["", f"Open the job: {job_url}"]
    lines += ["", "-- reelsync"]
    text = "\n".join(lines) + "\n"

    e = html.escape
    rows = "".join(f"<tr><th align='left'>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in facts)
    parts = [
        f"<p>Job <b>{e(s.name)}</b> is <b>{e(s.status)}</b>.</p>",
        f"<table cellpadding='3'>{rows}</table>",
    ]
    if total_failed:
        items = "".join(f"<li><code>{e(f.path)}</code>: {e(f.reason)}</li>" for f in shown)
        if rest > 0:
            items += f"<li>... and {rest} more</li>"
        parts.append(f"<p>Failures ({total_failed}):</p><ul>{items}</ul>")
    if job_url:
        parts.append(f"<p><a href='{e(job_url, quote=True)}'>Open the job</a></p>")
    body = "".join(parts)
    page = f"<!DOCTYPE html><html><body>{body}<p>-- reelsync</p></body></html>"
    return OutgoingMail(
        to=to, subject=subject, text=text, html=page, reply_to=reply_to, message_id=message_id
    )
