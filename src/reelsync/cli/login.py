"""``reelsync login``: check a URL and API key against the server, then save them in the
credentials file (``~/.config/reelsync/credentials``, TOML, mode 0600) for later commands."""

from __future__ import annotations

import os
from pathlib import Path

import click
import tomli_w

from reelsync.cli.output import say
from reelsync.client import Session
from reelsync.config import credentials_path, load_client_config

__all__ = ["login", "write_credentials"]


def write_credentials(path: Path, data: dict[str, str]) -> None:
    """Write the credentials file with mode 0600 from its first byte."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        os.fchmod(fh.fileno(), 0o600)
        tomli_w.dump(data, fh)
    tmp.replace(path)


@click.command()
@click.option("--url", "login_url", help="Server URL, e.g. https://hq.example:8443.")
@click.option("--user", "api_user", help="Your e-mail.")
@click.option("--ca-file", "login_ca_file", type=click.Path(dir_okay=False, exists=True))
@click.option(
    "--api-key", prompt=True, hide_input=True, envvar="REELSYNC_API_KEY", help="Your API key."
)
@click.pass_context
def login(
    ctx: click.Context,
    login_url: str | None,
    api_user: str | None,
    login_ca_file: str | None,
    api_key: str,
) -> None:
    """Check your API key and save it for later commands."""
    root = ctx.find_root().params
    config = load_client_config(
        os.environ,
        url=login_url or root.get("url"),
        api_user=api_user,
        api_key=api_key,
        ca_file=login_ca_file or root.get("ca_file"),
        insecure=bool(root.get("insecure")),
    )
    with Session(config) as session:
        me = session.me()
    data = {
        "url": config.url,
        "api_user": str(me.get("email") or api_user or ""),
        "api_key": api_key,
    }
    if config.ca_file is not None:
        data["ca_file"] = str(config.ca_file.resolve())
    path = credentials_path(os.environ)
    write_credentials(path, data)
    say(f"logged in to {config.url} as {data['api_user']}; saved in {path}")
