"""How CLI commands print: JSON for scripts (``--json``), rich tables for people. Rules: data goes
to stdout, messages and errors to stderr; JSON output is exactly what the API answered; tables
show a fixed set of columns per entity type and stringify nested values."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import click
from rich.console import Console
from rich.table import Table

__all__ = ["cell", "echo_json", "print_entity", "print_table", "say"]


def _console() -> Console:
    return Console(file=sys.stdout, soft_wrap=True, highlight=False)


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def say(message: str) -> None:
    """A human message (to stderr, so stdout stays parseable)."""
    click.echo(message, err=True)


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={cell(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(cell(v) for v in value)
    return str(value)


def print_table(rows: Iterable[Mapping[str, Any]], columns: Sequence[str], title: str) -> None:
    table = Table(title=title, title_justify="left")
    for col in columns:
        table.add_column(col)
    count = 0
    for row in rows:
        table.add_row(*(cell(row.get(col)) for col in columns))
        count += 1
    if count == 0:
        say(f"no {title}")
        return
    _console().print(table)


def print_entity(entity: Mapping[str, Any], title: str) -> None:
    table = Table(title=title, title_justify="left", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for key, value in entity.items():
        table.add_row(key, cell(value))
    _console().print(table)
