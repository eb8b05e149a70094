"""``reelsync user``: people and scripts that use the workspace, and their API keys."""

from __future__ import annotations

from typing import Any

import click

from reelsync.cli.acl import parse_grant
from reelsync.cli.connection import pass_session
from reelsync.cli.crud import (
    add_read_delete_commands,
    changes_or_fail,
    created,
    json_option,
    updated,
)
from reelsync.cli.output import echo_json, print_table, say
from reelsync.client import Session

__all__ = ["user"]

ROLES = ("admin", "employee", "standard")


@click.group()
def user() -> None:
    """Users (admin, employee, standard) and their API keys."""


@user.command("create")
@click.argument("email")
@click.option("--name", help="Full name.")
@click.option("--role", type=click.Choice(ROLES), default="standard", show_default=True)
@click.option("--disabled", is_flag=True, help="Create the account disabled.")
@click.option(
    "--grant",
    "grants",
    multiple=True,
    metavar="VOLUME[/PATH][:r|w|rw]",
    help="Give access to a volume path (repeatable).",
)
@json_option
@pass_session
def create(
    session: Session,
    email: str,
    name: str | None,
    role: str,
    disabled: bool,
    grants: tuple[str, ...],
    as_json: bool,
) -> None:
    """Create a user.

    For example: reelsync user create a@b.com --role employee --grant projects:rw
    """
    parsed = [parse_grant(g) for g in grants]  # check every grant before creating anything
    for volume in sorted({g.volume for g in parsed}):
        session.get_entity("volume", volume)  # an unknown volume fails here, nothing created
    body: dict[str, Any] = {"email": email, "role": role}
    if name:
        body["name"] = name
    if disabled:
        body["enabled"] = False
    entity = session.create("user", body)
    acls = [session.grant(email, g.volume, path=g.path, read=g.read, write=g.write) for g in parsed]
    if as_json:
        echo_json({**entity, "acls": acls})
        return
    created("user", entity, False)
    for g in parsed:
        access = ("r" if g.read else "") + ("w" if g.write else "")
        say(f"granted {access} on {g.volume}/{g.path}".rstrip("/"))


@user.command("update")
@click.argument("ref", metavar="USER")
@click.option("--name", help="New full name.")
@click.option("--role", type=click.Choice(ROLES))
@click.option("--enable/--disable", "enabled", default=None, help="Enable or disable the account.")
@json_option
@pass_session
def update(
    session: Session,
    ref: str,
    name: str | None,
    role: str | None,
    enabled: bool | None,
    as_json: bool,
) -> None:
    """Change a user's name, role or enabled state."""
    fields = {"name": name, "role": role, "enabled": enabled}
    body = changes_or_fail({k: v for k, v in fields.items() if v is not None})
    updated("user", ref, session.update("user", ref, body), as_json)


add_read_delete_commands(user, "user", ["id", "email", "name", "role", "enabled"], "USER")


def _show_preferences(entity: dict[str, Any], as_json: bool) -> None:
    if as_json:
        echo_json(entity)
        return
    mail = "off (opted out)" if entity.get("email_opt_out") else "on"
    say(f"{entity.get('email')}: job e-mail {mail}")


@user.command("preferences")
@click.argument("ref", metavar="[USER]", default="me")
@json_option
@pass_session
def preferences(session: Session, ref: str, as_json: bool) -> None:
    """Show USER's preferences (default: yours), e.g. whether job e-mail is on."""
    _show_preferences(session.preferences(ref), as_json)


@user.command("opt-out")
@click.argument("ref", metavar="[USER]", default="me")
@json_option
@pass_session
def opt_out(session: Session, ref: str, as_json: bool) -> None:
    """Stop job e-mail to USER (default: you; another user only as an admin).

    The queue's and volumes' extra recipients still get theirs."""
    _show_preferences(session.set_email_opt_out(True, ref), as_json)


@user.command("opt-in")
@click.argument("ref", metavar="[USER]", default="me")
@json_option
@pass_session
def opt_in(session: Session, ref: str, as_json: bool) -> None:
    """Send job e-mail to USER again (default: you; another user only as an admin)."""
    _show_preferences(session.set_email_opt_out(False, ref), as_json)


@user.group("apikey")
def apikey() -> None:
    """API keys of a user (shown once, stored hashed)."""


@apikey.command("create")
@click.argument("email", metavar="USER")
@click.option("--description", help="What the key is for.")
@click.option("--expires", "expires_at", metavar="ISO-DATE", help="Expiry, e.g. 2027-01-31.")
@json_option
@pass_session
def apikey_create(
    session: Session, email: str, description: str | None, expires_at: str | None, as_json: bool
) -> None:
    """Make a new API key for USER and print it (it is shown only this once)."""
    entity = session.create_apikey(email, description=description, expires_at=expires_at)
    if as_json:
        echo_json(entity)
        return
    say(f"API key {entity.get('id')} for {email} (shown once, keep it safe):")
    click.echo(entity["api_key"])


@apikey.command("list")
@click.argument("email", metavar="USER")
@json_option
@pass_session
def apikey_list(session: Session, email: str, as_json: bool) -> None:
    """List USER's API keys (never the keys themselves)."""
    rows = session.list_apikeys(email)
    if as_json:
        echo_json(rows)
    else:
        cols = [
            "id",
            "prefix",
            "description",
            "created",
            "last_used_at",
            "expires_at",
            "revoked_at",
        ]
        print_table(rows, cols, "API keys")


@apikey.command("revoke")
@click.argument("email", metavar="USER")
@click.argument("key_id")
@pass_session
def apikey_revoke(session: Session, email: str, key_id: str) -> None:
    """Revoke one of USER's API keys."""
    session.revoke_apikey(email, key_id)
    say(f"revoked API key {key_id} of {email}")
