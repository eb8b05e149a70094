"""``reelsync server``: make a control plane's data dir (``init``) and run it (``run``).

The server modules (FastAPI, SQLAlchemy, Alembic: ~0.8 s of imports) are imported inside the two
commands, not at the top, so every other ``reelsync`` command starts fast."""

from __future__ import annotations

import os
from pathlib import Path

import click

from reelsync.cli.output import echo_json, say
from reelsync.config import parse_listen

__all__ = ["server"]

data_dir_option = click.option(
    "--data-dir",
    required=True,
    envvar="REELSYNC_DATA_DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="The control plane's data dir (REELSYNC_DATA_DIR).",
)


@click.group()
def server() -> None:
    """The control plane: make its data dir, run it."""


@server.command("init")
@data_dir_option
@click.option("--workspace", required=True, help="Workspace code, e.g. acmepost.")
@click.option("--admin", required=True, metavar="EMAIL", help="The first admin's e-mail.")
@click.option("--listen", metavar="HOST:PORT", help="Address to serve on (default 127.0.0.1:8443).")
@click.option(
    "--database-url",
    help="postgresql+psycopg://... (default: SQLite in the data dir; REELSYNC_DATABASE_URL).",
)
@click.option(
    "--name",
    "names",
    multiple=True,
    metavar="HOST",
    help="Extra DNS name or IP for the HTTPS certificate (repeatable).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def init(
    data_dir: Path,
    workspace: str,
    admin: str,
    listen: str | None,
    database_url: str | None,
    names: tuple[str, ...],
    as_json: bool,
) -> None:
    """Make the data dir, database, workspace, first admin and API key, CA and certificate."""
    from reelsync.server.datadir import bootstrap_database, init_data_dir

    if listen:
        parse_listen(listen)
    result = init_data_dir(
        data_dir,
        workspace=workspace,
        admin=admin,
        bootstrap=bootstrap_database,
        env=dict(os.environ),
        listen=listen,
        database_url=database_url,
        names=names,
    )
    if as_json:
        echo_json(result.as_json())
        return
    cfg = result.config
    say(f"initialised workspace {result.workspace} in {cfg.data_dir}")
    say(f"admin {result.admin}; API key (shown once, keep it safe):")
    click.echo(result.api_key)
    say("start the control plane:")
    say(f"  reelsync server run --data-dir {cfg.data_dir}")
    say("then, for the CLI:")
    say(f"  export REELSYNC_URL={cfg.url} REELSYNC_CA_FILE={cfg.ca_file}")
    say(f"  export REELSYNC_API_USER={result.admin} REELSYNC_API_KEY=<the key above>")
