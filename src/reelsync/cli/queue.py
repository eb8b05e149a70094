"""``reelsync queue``: job queues (priority 0..1000; one default)."""

from __future__ import annotations

from typing import Any

import click

from reelsync.cli.connection import pass_session
from reelsync.cli.crud import (
    add_read_delete_commands,
    changes_or_fail,
    created,
    json_option,
    updated,
)
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


@queue.command("update")
@click.argument("ref", metavar="REF")
@click.option("--name", help="New display name.")
@click.option("--priority", type=click.IntRange(0, 1000), help="0..1000.")
@click.option("--default", "is_default", is_flag=True, default=None, help="Make it the default.")
@click.option("--pause/--resume", "paused", default=None, help="Pause or resume the queue.")
@json_option
@pass_session
def update(
    session: Session,
    ref: str,
    name: str | None,
    priority: int | None,
    is_default: bool | None,
    paused: bool | None,
    as_json: bool,
) -> None:
    """Change a queue (its priority, default flag, paused state or name)."""
    fields = {"name": name, "priority": priority, "default": is_default, "paused": paused}
    body = changes_or_fail({k: v for k, v in fields.items() if v is not None})
    updated("queue", ref, session.update("queue", ref, body), as_json)


add_read_delete_commands(queue, "queue", ["id", "code", "name", "priority", "default", "paused"])
