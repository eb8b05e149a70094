"""``reelsync acl``: who may read or write which volume (or a sub-path of it). A grant is written
``VOLUME[/SUB/PATH][:ACCESS]`` with ACCESS ``r``, ``w`` or ``rw`` (default ``r``)."""

from __future__ import annotations

from dataclasses import dataclass

import click

from reelsync.cli.connection import pass_session
from reelsync.cli.crud import created, json_option
from reelsync.cli.output import echo_json, print_table, say
from reelsync.client import Session
from reelsync.errors import ValidationError

__all__ = ["Grant", "acl", "parse_grant"]


@dataclass(frozen=True, slots=True)
class Grant:
    volume: str
    path: str
    read: bool
    write: bool


def parse_grant(text: str) -> Grant:
    """``projects:rw``, ``projects/proj001:r`` -> a Grant."""
    target, sep, access = text.rpartition(":")
    if not sep:
        target, access = text, "r"
    access = access.strip().lower()
    if access not in ("r", "w", "rw", "wr"):
        raise ValidationError(f"access must be r, w or rw, got {access!r} in {text!r}")
    volume, _, path = target.strip().strip("/").partition("/")
    if not volume:
        raise ValidationError(f"a grant needs a volume: VOLUME[/PATH][:r|w|rw], got {text!r}")
    return Grant(volume=volume, path=path.strip("/"), read="r" in access, write="w" in access)


@click.group()
def acl() -> None:
    """Access rules: which user may read or write which volume path."""


@acl.command("grant")
@click.argument("user")
@click.argument("target", metavar="VOLUME[/PATH][:r|w|rw]")
@json_option
@pass_session
def grant(session: Session, user: str, target: str, as_json: bool) -> None:
    """Let USER read and/or write a volume or a path in it."""
    g = parse_grant(target)
    entity = session.grant(user, g.volume, path=g.path, read=g.read, write=g.write)
    created("acl", entity, as_json)


@acl.command("list")
@click.option("--user", help="Only this user's rules.")
@click.option("--volume", help="Only rules on this volume.")
@json_option
@pass_session
def list_cmd(session: Session, user: str | None, volume: str | None, as_json: bool) -> None:
    """List access rules."""
    rows = session.acls(user=user, volume=volume)
    if as_json:
        echo_json(rows)
    else:
        print_table(rows, ["id", "user", "volume", "path", "read", "write"], "acls")


@acl.command("revoke")
@click.argument("acl_id")
@pass_session
def revoke(session: Session, acl_id: str) -> None:
    """Remove an access rule by its id."""
    session.revoke_acl(acl_id)
    say(f"revoked acl {acl_id}")
