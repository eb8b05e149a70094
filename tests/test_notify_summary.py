"""The job summary mail: facts, capped failure list, link, escaping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from reelsync.notify.summary import (
    FailedFile,
    JobSummary,
    compose_job_mail,
    format_bytes,
    format_duration,
)

T0 = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)


def summary(**kw) -> JobSummary:
    base = {
        "job_id": "j1",
        "name": "proj001 download london",
        "status": "done",
        "queue": "proj001",
        "source_site": "hq",
        "destination_site": "london",
        "file_count": 1200,
        "files_done": 1200,
        "bytes_total": 5 * 1024**3,
        "started": T0,
        "finished": T0 + timedelta(minutes=3, seconds=7),
    }
    base.update(kw)
    return JobSummary(**base)


def test_done_mail_names_every_fact() -> None:
    mail = compose_job_mail(summary(), to=("a@x.test",), job_url="https://hq:8443/jobs/j1")
    assert mail.subject == "[reelsync] done: proj001 download london (hq -> london, 1200 files)"
    for fact in (
        "proj001",
        "hq",
        "london",
        "1200",
        "5.0 GiB",
        "3 min 07 s",
        "https://hq:8443/jobs/j1",
    ):
        assert fact in mail.text
        assert fact in (mail.html or "")
    assert "Failures" not in mail.text


def test_failed_mail_lists_failures_capped_with_a_count() -> None:
    fails = tuple(FailedFile(f"sc0010/f{i:04d}.exr", "disk full") for i in range(30))
    s = summary(status="failed", files_done=1170, failures=fails, failure_count=30)
    mail = compose_job_mail(s, to=("a@x.test",), job_url=None, max_failures=5)
    assert mail.subject.startswith("[reelsync] FAILED: ")
    assert "1170 of 1200 done" in mail.text
    assert "Failures (30):" in mail.text
    assert "sc0010/f0004.exr: disk full" in mail.text
    assert "f0005" not in mail.text
    assert "... and 25 more" in mail.text
    assert "... and 25 more" in (mail.html or "")
    assert "Open the job" not in mail.text


def test_failure_count_beyond_the_loaded_rows() -> None:
    s = summary(status="failed", failures=(FailedFile("a", "x"),), failure_count=1000)
    mail = compose_job_mail(s, to=("a@x.test",), job_url=None)
    assert "Failures (1000):" in mail.text
    assert "... and 999 more" in mail.text


def test_html_is_escaped() -> None:
    s = summary(
        name="<script>alert(1)</script>",
        status="failed",
        failures=(FailedFile("a&b.exr", "<boom>"),),
        failure_count=1,
    )
    html = compose_job_mail(s, to=("a@x.test",), job_url="https://h/j?a=1&b='2'").html or ""
    assert "<script>" not in html
    assert "&lt;boom&gt;" in html
    assert "a&amp;b.exr" in html
    assert "b=&#x27;2&#x27;" in html


def test_formatting() -> None:
    assert format_bytes(0) == "0 B"
    assert format_bytes(1536) == "1.5 KiB"
    assert format_bytes(3 * 1024**5) == "3.0 PiB"
    assert format_duration(None) == "unknown"
    assert format_duration(59.6) == "1 min 00 s"
    assert format_duration(3 * 3600 + 5) == "3 h 00 min 05 s"
    assert summary(started=None).duration_s is None
