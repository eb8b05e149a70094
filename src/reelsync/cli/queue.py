"""``reelsync queue``: job queues (priority 0..1000; one default)."""

from __future__ import annotations

from typing import Any

import click

from reelsync.cli.connection import pass_session
from reelsync.cli.crud import add_read_delete_commands, created, json_option
from reelsync.client import Session

__all__ = ["queue"]


@click.group()
def queue() -> None:
    """Queues: jobs run by queue priority (0..1000)."""


@queue.command("create")
@click.argument("code")
@click.option("--name", help="Display name (default: the code).")
@click.option("--priority", type=click.IntRange(0, 1000), help="0..1000 (default 500).")
@click.option("--default", "is_default", is_flag=True, help="Make it the default queue.")
@click.option("--paused", is_flag=True, help="Create it paused.")
@json_option
@pass_session
def create(
    session: Session,
    code: str,
    name: str | None,
    priority: int | None,
    is_default: bool,
    paused: bool,
    as_json: bool,
) -> None:
    """Create a queue."""
    body: dict[str, Any] = {"code": code}
    if name:
        body["name"] = name
    if priority is not None:
        body["priority"] = priority
    if is_default:
        body["default"] = True
    if paused:
        body["paused"] = True
    created("queue", session.create("queue", body), as_json)


add_read_delete_commands(queue, "queue", ["id", "code", "name", "priority", "default", "paused"])
