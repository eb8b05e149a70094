"""``reelsync site``: the studio's sites (hq is the main site)."""

from __future__ import annotations

import click

from reelsync.cli.connection import pass_session
from reelsync.cli.crud import add_read_delete_commands, created, json_option
from reelsync.client import Session

__all__ = ["site"]


@click.group()
def site() -> None:
    """Sites: the places (hq, london, ...) where agents run."""


@site.command("create")
@click.argument("code")
@click.option("--name", help="Display name (default: the code).")
@json_option
@pass_session
def create(session: Session, code: str, name: str | None, as_json: bool) -> None:
    """Create a site."""
    body = {"code": code, **({"name": name} if name else {})}
    created("site", session.create("site", body), as_json)


add_read_delete_commands(site, "site", ["id", "code", "name", "main"])
