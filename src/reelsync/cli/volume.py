"""``reelsync volume``: storage volumes and the path prefix of each at every site."""

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
from reelsync.errors import ValidationError

__all__ = ["parse_site_paths", "volume"]


def parse_site_paths(items: tuple[str, ...]) -> dict[str, str]:
    """``("hq=/mnt/projects", "london=/data/projects")`` -> {site: prefix}."""
    paths: dict[str, str] = {}
    for item in items:
        site_code, sep, prefix = item.partition("=")
        site_code, prefix = site_code.strip(), prefix.strip()
        if not sep or not site_code or not prefix:
            raise ValidationError(f"--path must be SITE=PREFIX, got {item!r}")
        if site_code in paths:
            raise ValidationError(f"--path given twice for site {site_code!r}")
        paths[site_code] = prefix
    return paths


@click.group()
def volume() -> None:
    """Volumes: named storage with a path prefix per site."""


@volume.command("create")
@click.argument("code")
@click.option("--name", help="Display name (default: the code).")
@click.option("--default", "is_default", is_flag=True, help="Make it the default volume.")
@click.option(
    "--path",
    "paths",
    multiple=True,
    metavar="SITE=PREFIX",
    help="Where the volume lives at a site (repeat per site).",
)
@json_option
@pass_session
def create(
    session: Session,
    code: str,
    name: str | None,
    is_default: bool,
    paths: tuple[str, ...],
    as_json: bool,
) -> None:
    """Create a volume.

    For example: reelsync volume create projects --default --path hq=/mnt/projects
    """
    body: dict[str, Any] = {"code": code, "paths": parse_site_paths(paths)}
    if name:
        body["name"] = name
    if is_default:
        body["default"] = True
    created("volume", session.create("volume", body), as_json)


@volume.command("update")
@click.argument("ref", metavar="REF")
@click.option("--name", help="New display name.")
@click.option("--default", "is_default", is_flag=True, default=None, help="Make it the default.")
@click.option("--enable/--disable", "enabled", default=None, help="Enable or disable it.")
@click.option(
    "--path", "paths", multiple=True, metavar="SITE=PREFIX", help="Set the path at a site."
)
@click.option("--remove-path", "removed", multiple=True, metavar="SITE", help="Drop a site's path.")
@json_option
@pass_session
def update(
    session: Session,
    ref: str,
    name: str | None,
    is_default: bool | None,
    enabled: bool | None,
    paths: tuple[str, ...],
    removed: tuple[str, ...],
    as_json: bool,
) -> None:
    """Change a volume.

    For example: reelsync volume update projects --path paris=/mnt/p --remove-path rome
    """
    path_changes: dict[str, str | None] = dict(parse_site_paths(paths))
    for site_code in removed:
        if site_code in path_changes:
            raise ValidationError(f"site {site_code!r} is both set and removed")
        path_changes[site_code] = None
    fields: dict[str, Any] = {"name": name, "default": is_default, "enabled": enabled}
    body = {k: v for k, v in fields.items() if v is not None}
    if path_changes:
        body["paths"] = path_changes
    updated("volume", ref, session.update("volume", ref, changes_or_fail(body)), as_json)


add_read_delete_commands(volume, "volume", ["id", "code", "name", "default", "paths"])
