"""How the CLI prints for people: tables that never cut an id, a time or a path (a block per row
when they cannot fit), the job progress bar on one line at 80 columns, one units convention."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from reelsync.cli.output import cell, print_rows
from reelsync.domain.units import duration_text, rate_text, size_text
from reelsync.notify.summary import format_bytes
from reelsync.server.ui.formats import size, speed
from reelsync.sync.bars import job_bars
from reelsync.sync.quantities import human_size, human_speed

JOB = {
    "id": "ec4799c16aa614aa2b3c4d5e",
    "name": "proj001 download london 2026-11-27",
    "status": "failed",
    "queue": "proj001",
    "progress": "50%",
    "size": "22.9 MiB",
    "user": "coordinator@acmepost.com",
    "created": "2026-11-27T05:30:12.123456+00:00",
}
FAILED = {
    "uri": "17",
    "source": "site=hq:share=projects/proj001/sc0010/sh0010/scans/sh0010.1017.exr",
    "destination": "site=london:share=projects/proj001/sc0010/sh0010/scans/sh0010.1017.exr",
    "last error": "checksum mismatch on chunk 3 (retried 5 times)",
}


def _printed(rows: list[dict[str, str]], width: int) -> str:
    buffer = io.StringIO()
    columns = list(rows[0])
    print_rows(
        Console(file=buffer, width=width), [[cell(r[c]) for c in columns] for r in rows], columns,
        "rows",
    )  # fmt: skip
    return buffer.getvalue()


@pytest.mark.parametrize("width", [60, 80, 100, 120, 200])
@pytest.mark.parametrize("row", [JOB, FAILED])
def test_tables_never_cut_what_one_copies(row: dict[str, str], width: int) -> None:
    text = _printed([row, row], width)
    lines = text.splitlines()
    for value in (row.get("id"), row.get("source"), row.get("destination"), row.get("uri")):
        if value is not None and len(value) < width:
            assert sum(value in line.split() for line in lines) == 2, (value, text)
    if "created" in row:
        assert text.count("2026-11-27 05:30:12Z") == 2
    if width >= 120 and row is JOB:
        assert lines[1].split()[:2] == ["id", "name"]  # a table at 120 columns
    if width <= 80:
        assert lines[2].strip().startswith(next(iter(row)))  # a block per row


def test_iso_times_read_in_utc_and_other_text_is_left_alone() -> None:
    assert cell("2026-11-27T06:30:12+01:00") == "2026-11-27 05:30:12Z"
    assert cell("2026-11-27") == "2026-11-27"
    assert cell("proj001 2026-11-27T05:30:12 x") == "proj001 2026-11-27T05:30:12 x"


def test_progress_bars_fit_80_columns() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, width=80, force_terminal=True, color_system=None)
    with job_bars(console) as bars:
        one = bars.add_task(
            "proj001 download london 2026-11-27",
            total=24_000_000,
            status="running",
            speed="4.0 MiB/s",
            eta="3s",
        )
        bars.update(one, completed=12_582_912)
        bars.add_task("proj002 download london 2026-11-27", total=None, status="waiting")
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "\n", buffer.getvalue())
    last = [line for line in plain.split("\n") if line.strip()][-2:]
    assert "12.0 MiB/22.9 MiB 4.0 MiB/s 3s running" in last[0], last
    assert last[0].endswith("running"), last
    assert last[1].endswith("waiting"), last
    assert all(len(line) <= 80 for line in last), last


def test_one_units_convention_for_ui_cli_and_mail() -> None:
    """Binary units, written with their i (docs/architecture.md, "Units")."""
    for text in (size_text(24_000_000), human_size(24_000_000), format_bytes(24_000_000),
                 size(24_000_000)):  # fmt: skip
        assert text == "22.9 MiB"
    four = 4 * 2**20
    assert rate_text(four) == human_speed(four) == speed(four) == "4.0 MiB/s"
    assert size_text(1023) == "1023 B"
    assert size_text(1536) == "1.5 KiB"
    assert duration_text(83) == "1m 23s"
