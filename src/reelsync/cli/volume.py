"""``reelsync volume``: storage volumes and the path prefix of each at every site."""

from __future__ import annotations

from typing import Any

import click

from reelsync.cli.connection import pass_session
from reelsync.cli.crud import add_read_delete_commands, created, json_option
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
    """Create a volume, e.g. ``volume create projects --default --path hq=/mnt/projects``."""
    body: dict[str, Any] = {"code": code, "paths": parse_site_paths(paths)}
    if name:
        body["name"] = name
    if is_default:
        body["default"] = True
    created("volume", session.create("volume", body), as_json)


add_read_delete_commands(volume, "volume", ["id", "code", "name", "default", "paths"])
