"""The read and delete sub-commands every admin entity group shares (``list``, ``show``,
``delete``), built from the entity type and the columns its table shows; the options shared by
commands (``--json``, ``--wait``/``--timeout``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

from reelsync.cli.connection import pass_session
from reelsync.cli.output import echo_json, print_entity, print_table, say
from reelsync.errors import ValidationError

if TYPE_CHECKING:  # the client (asyncio, httpx) loads when a command makes its session
    from reelsync.client import Session

__all__ = [
    "add_read_delete_commands",
    "changes_or_fail",
    "created",
    "json_option",
    "updated",
    "wait_options",
]

F = TypeVar("F", bound=Callable[..., Any])

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def wait_options(command: F) -> F:
    """``--wait`` (follow the job with a progress bar) and ``--timeout``, for submit commands."""
    command = click.option(
        "--timeout", type=float, help="With --wait: give up after this many seconds."
    )(command)
    return click.option(
        "--wait", is_flag=True, help="Follow the job with a progress bar until it ends."
    )(command)


def add_read_delete_commands(
    group: click.Group, entitytype: str, columns: Sequence[str], ref_name: str = "REF"
) -> None:
    """Add ``list``, ``show REF`` and ``delete REF`` for ``entitytype`` to ``group``."""

    @group.command("list")
    @json_option
    @pass_session
    def list_cmd(session: Session, as_json: bool) -> None:
        rows = session.find(entitytype)
        if as_json:
            echo_json(rows)
        else:
            print_table(rows, columns, f"{entitytype}s")

    list_cmd.help = f"List every {entitytype}."

    @group.command("show")
    @click.argument("ref", metavar=ref_name)
    @json_option
    @pass_session
    def show_cmd(session: Session, ref: str, as_json: bool) -> None:
        entity = session.get_entity(entitytype, ref)
        if as_json:
            echo_json(entity)
        else:
            print_entity(entity, f"{entitytype} {ref}")

    show_cmd.help = f"Show one {entitytype} ({ref_name} is its id or code)."

    @group.command("delete")
    @click.argument("ref", metavar=ref_name)
    @pass_session
    def delete_cmd(session: Session, ref: str) -> None:
        session.delete(entitytype, ref)
        say(f"deleted {entitytype} {ref}")

    delete_cmd.help = f"Delete a {entitytype} ({ref_name} is its id or code)."


def changes_or_fail(changes: dict[str, object]) -> dict[str, object]:
    """The fields to PATCH; a usage error when the command was given none."""
    if not changes:
        raise ValidationError("nothing to change: give at least one option (see --help)")
    return changes


def created(entitytype: str, entity: dict[str, object], as_json: bool) -> None:
    """Report a created entity."""
    if as_json:
        echo_json(entity)
    else:
        label = entity.get("code") or entity.get("email") or entity.get("id")
        say(f"created {entitytype} {label} (id {entity.get('id')})")


def updated(entitytype: str, ref: str, entity: dict[str, object], as_json: bool) -> None:
    """Report a changed entity."""
    if as_json:
        echo_json(entity)
    else:
        say(f"updated {entitytype} {ref}")
