"""``reelsync site``: the studio's sites (hq is the main site)."""

from __future__ import annotations

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


@site.command("update")
@click.argument("ref", metavar="REF")
@click.option("--name", help="New display name.")
@click.option("--enable/--disable", "enabled", default=None, help="Enable or disable the site.")
@click.option("--main", "main", is_flag=True, default=None, help="Make it the main site.")
@json_option
@pass_session
def update(
    session: Session,
    ref: str,
    name: str | None,
    enabled: bool | None,
    main: bool | None,
    as_json: bool,
) -> None:
    """Change a site."""
    fields = {"name": name, "enabled": enabled, "main": main}
    body = changes_or_fail({k: v for k, v in fields.items() if v is not None})
    updated("site", ref, session.update("site", ref, body), as_json)


add_read_delete_commands(site, "site", ["id", "code", "name", "main"])
