"""``reelsync server``: make a control plane's data dir (``init``) and run it (``run``).

The server modules (FastAPI, SQLAlchemy, Alembic: ~0.8 s of imports) are imported inside the two
commands, not at the top, so every other ``reelsync`` command starts fast."""

from __future__ import annotations

import os
from pathlib import Path

import click

from reelsync.cli.output import echo_json, say
from reelsync.config import load_server_config, parse_listen

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
@click.option(
    "--public-url",
    metavar="URL",
    help="The URL agents and users reach this server at (its host joins the certificate).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def init(
    data_dir: Path,
    workspace: str,
    admin: str,
    listen: str | None,
    database_url: str | None,
    names: tuple[str, ...],
    public_url: str | None,
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
        public_url=public_url,
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
    say(f"the web UI: {cfg.url}/ui/ (sign in with the key above)")
    if cfg.smtp.host is None:
        say(SMTP_MISSING)


SMTP_MISSING = (
    "note: no SMTP server is configured, so job e-mails wait in the outbox unsent: set [smtp] "
    "host (port, tls, user, password, sender) in server.toml or REELSYNC_SMTP_HOST, and restart"
)


@server.command("init-replica")
@click.option(
    "--from",
    "source",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The data dir of the first control plane (on PostgreSQL).",
)
@data_dir_option
@click.option("--listen", metavar="HOST:PORT", help="Address this replica serves on.")
@click.option(
    "--name",
    "names",
    multiple=True,
    metavar="HOST",
    help="Extra DNS name or IP for this replica's HTTPS certificate (repeatable).",
)
@click.option("--public-url", metavar="URL", help="The URL agents and users reach it at.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def init_replica(
    source: Path,
    data_dir: Path,
    listen: str | None,
    names: tuple[str, ...],
    public_url: str | None,
    as_json: bool,
) -> None:
    """Make the data dir of another control plane process on the same PostgreSQL database.

    It gets a copy of the workspace CA and the ticket signing key from --from (so agents of
    either process trust both) and its own HTTPS certificate; then run it with
    `reelsync server run --data-dir DATA_DIR`. The database is shared: nothing is created in it.
    """
    from reelsync.server.datadir import init_replica as make_replica

    config = make_replica(
        source, data_dir, env=dict(os.environ), listen=listen, names=names, public_url=public_url
    )
    if as_json:
        echo_json(
            {"url": config.url, "data_dir": str(config.data_dir), "ca_file": str(config.ca_file)}
        )
        return
    say(f"replica data dir {config.data_dir} (same workspace CA and database as {source})")
    say("start it:")
    say(f"  reelsync server run --data-dir {config.data_dir}")


@server.command("run")
@data_dir_option
@click.option("--listen", metavar="HOST:PORT", help="Override the address in server.toml.")
@click.option("--no-tls", is_flag=True, help="Serve plain HTTP (behind a TLS proxy only).")
@click.option(
    "--accsyn-dev-port",
    type=click.IntRange(1, 65535),
    help="Also serve plain HTTP on 127.0.0.1:PORT for the accsyn client's dev mode.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
@click.option(
    "--workers",
    type=int,
    default=None,
    help="Worker processes sharing the port (PostgreSQL; default: one per core, at most 8; "
    "SQLite: 1). Also [server] workers in server.toml or REELSYNC_WORKERS.",
)
def run(
    data_dir: Path,
    listen: str | None,
    no_tls: bool,
    accsyn_dev_port: int | None,
    log_level: str,
    workers: int | None,
) -> None:
    """Serve the control plane until SIGTERM or Ctrl-C."""
    from reelsync.server.process import bind_listeners, check_data_dir, serve
    from reelsync.server.workers import worker_count

    config = load_server_config(data_dir, os.environ)
    changes: dict[str, object] = {"log_level": log_level}
    if listen:
        changes["host"], changes["port"] = parse_listen(listen)
    if no_tls:
        changes["tls"] = False
    if accsyn_dev_port is not None:
        changes["accsyn_dev_port"] = accsyn_dev_port
    config = config.with_overrides(**changes)
    count = worker_count(config, workers if workers is not None else config.workers)
    check_data_dir(config)
    sockets = bind_listeners(config)  # a busy port fails before the database is touched
    try:
        from reelsync.server.controlplane import control_plane, run_worker_processes

        if count > 1:
            run_worker_processes(config, count, sockets)
            return
        with control_plane(config) as app:
            serve(config, app, sockets)
    finally:
        for sock in sockets:
            sock.close()
