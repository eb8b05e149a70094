"""How CLI commands print: JSON for scripts (``--json``), rich tables for people. Rules: data goes
to stdout, messages and errors to stderr; JSON output is exactly what the API answered; tables
show a fixed set of columns per entity type and stringify nested values. A table never cuts what
one copies: ids, times and paths are never wrapped or shortened (times read
``2026-11-27 05:30:12Z``); when the rows cannot fit the terminal without that, each row prints
as a block of ``column  value`` lines instead."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:  # rich loads when a table is printed, not with every command
    from rich.console import Console

__all__ = ["cell", "echo_json", "print_entity", "print_rows", "print_table", "say"]

# Columns whose values are copied (into other commands, a ticket): never wrapped or cut.
_WHOLE = frozenset(
    {"id", "uri", "path", "source", "destination", "file", "created", "modified", "finished",
     "last_checkin", "expires_at", "used_at", "last_used_at", "revoked_at", "started", "user",
     "email", "hostname", "code", "site", "queue", "volume", "status"}
)  # fmt: skip


def _console() -> Console:
    from rich.console import Console

    return Console(file=sys.stdout, soft_wrap=True, highlight=False)


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def say(message: str) -> None:
    """A human message (to stderr, so stdout stays parseable)."""
    click.echo(message, err=True)


def _stamp(text: str) -> str | None:
    """An ISO time with its zone as ``2026-11-27 05:30:12Z`` (UTC); None for other text."""
    if len(text) < 19 or text[4] != "-" or text[10] not in "T ":
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return _stamp(value) or value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={cell(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(cell(v) for v in value)
    return str(value)


def _whole(column: str) -> bool:
    return column in _WHOLE or column.endswith("_id")


def _share(least: Sequence[int], natural: Sequence[int], room: int) -> list[int]:
    """Column widths: each at least ``least``, at most ``natural``, the room left shared in
    proportion to what each column still wants."""
    widths = list(least)
    spare = room - sum(widths)
    wants = [max(0, n - w) for n, w in zip(natural, widths, strict=True)]
    total = sum(wants)
    if total <= spare:
        return [max(w, n) for w, n in zip(widths, natural, strict=True)]
    for i, want in enumerate(wants):
        widths[i] += want * spare // total
    return widths


def print_rows(
    console: Console, rows: Sequence[Sequence[str]], columns: Sequence[str], title: str
) -> None:
    """``rows`` (cells as text) as a table, or as blocks of ``column  value`` lines when the
    table would have to wrap or cut an id, a time or a path to fit ``console``."""
    # The narrowest each column may be: whole values, else the longest word (never cut).
    least = [
        max(
            len(col) if _whole(col) else max(len(w) for w in col.split()),
            *(
                len(row[i]) if _whole(col) else max((len(w) for w in row[i].split()), default=0)
                for row in rows
            ),
        )
        for i, col in enumerate(columns)
    ]
    if sum(least) + len(columns) <= console.width:  # one space after each column
        from rich.table import Table

        widths = _share(least, [max(len(col), *(len(r[i]) for r in rows)) for i, col in
                                enumerate(columns)], console.width - len(columns))  # fmt: skip
        table = Table(
            title=title, title_justify="left", box=None, header_style="bold",
            padding=(0, 1, 0, 0),
        )  # fmt: skip
        for col, width in zip(columns, widths, strict=True):
            table.add_column(col, no_wrap=_whole(col), width=width, overflow="fold")
        for row in rows:
            table.add_row(*row)
        console.print(table)
        return
    label = max(len(col) for col in columns)
    console.print(title, highlight=False)
    for row in rows:
        console.print("", highlight=False)
        for col, text in zip(columns, row, strict=True):
            console.print(f"  {col:<{label}}  {text}", highlight=False, soft_wrap=True)


def print_table(rows: Iterable[Mapping[str, Any]], columns: Sequence[str], title: str) -> None:
    cells = [[cell(row.get(col)) for col in columns] for row in rows]
    if not cells:
        say(f"no {title}")
        return
    print_rows(_console(), cells, columns, title)


def print_entity(entity: Mapping[str, Any], title: str) -> None:
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for key, value in entity.items():
        table.add_row(key, cell(value))
    _console().print(table)
