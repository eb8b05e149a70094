"""``reelsync agent``: enrollment tokens and the agent list (admin, over the REST API), and the
agent itself on a site machine (``enroll``, ``run``)."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
from pathlib import Path
from typing import Any

import click

from reelsync.cli.connection import pass_session
from reelsync.cli.output import echo_json, print_table, say
from reelsync.client import Session
from reelsync.errors import NotFoundError, ValidationError

__all__ = ["agent"]

data_dir_option = click.option(
    "--data-dir",
    required=True,
    envvar="REELSYNC_AGENT_DATA_DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="The agent's data dir (REELSYNC_AGENT_DATA_DIR).",
)


@click.group()
def agent() -> None:
    """Site agents: enrollment tokens, the agent list, and running an agent."""


@agent.command("token")
@click.option("--site", required=True, help="Site the new agent will serve (e.g. london).")
@click.option(
    "--ttl",
    type=click.IntRange(60, 30 * 24 * 3600),
    default=3600,
    show_default=True,
    help="Seconds the token stays valid.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_session
def token(session: Session, site: str, ttl: int, as_json: bool) -> None:
    """Make a one-time enrollment token for an agent at SITE (admin)."""
    answer = session.request("POST", "/servers/tokens", json_body={"site": site, "ttl_s": ttl})
    if as_json:
        echo_json(answer)
        return
    enrollment = answer.get("enrollment") or {}
    say(f"enrollment token for site {enrollment.get('site', site)}, valid until "
        f"{enrollment.get('expires_at')} (one use):")  # fmt: skip
    click.echo(answer["token"])
    say("on the site machine run:")
    say("  reelsync agent enroll --server URL --ca-file ca.crt --token TOKEN --data-dir DIR")


def _items(body: Any) -> list[dict[str, Any]]:
    if isinstance(body, dict):
        return list(body.get("items") or [])
    return list(body or [])


@agent.command("list")
@click.option("--site", help="Only agents of this site.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_session
def list_agents(session: Session, site: str | None, as_json: bool) -> None:
    """Every agent with its site, status, volumes and last check-in."""
    servers = _items(session.request("GET", "/servers", params={"site": site}))
    volumes = _items(session.request("GET", "/volumes"))
    for server in servers:
        server["volumes"] = sorted(
            v["code"] for v in volumes if server.get("site") in (v.get("paths") or {})
        )
    if as_json:
        echo_json(servers)
        return
    for server in servers:
        online = server.get("status") == "online"
        server["rate"] = (
            f"out {_mib(server.get('rate_sent'))} / in {_mib(server.get('rate_received'))}"
            if online
            else "-"
        )
        server["limit"] = _limit_cell(server)
    print_table(
        servers,
        ["id", "site", "hostname", "status", "volumes", "rate", "limit", "last_checkin"],
        "agents",
    )


def _mib(value: Any) -> str:
    """Bytes/s as MiB/s for people."""
    return f"{float(value) / (1 << 20):.1f} MiB/s" if value else "0 MiB/s"


def _limit_cell(server: dict[str, Any]) -> str:
    central, applied = server.get("bandwidth_limit"), server.get("applied_limit")
    if central:
        text = f"{_mib(central)} (central)"
        if server.get("status") == "online" and applied != central:
            text += ", not applied yet"
        return text
    return f"{_mib(applied)} (agent.toml)" if applied else "none"


@agent.command("limit")
@click.argument("name")
@click.argument("mib_s")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_session
def limit(session: Session, name: str, mib_s: str, as_json: bool) -> None:
    """Set agent NAME's bandwidth limit to MIB_S MiB/s, each direction (admin), or 'none' to
    go back to its agent.toml; the agent applies it at its next heartbeat."""
    if mib_s.strip().lower() in ("none", "off", "0"):
        value = 0.0
    else:
        try:
            value = float(mib_s)
        except ValueError:
            raise ValidationError(f"the limit must be MiB/s or 'none', got {mib_s!r}") from None
        if not value > 0:
            raise ValidationError(f"the limit must be positive MiB/s or 'none', got {mib_s!r}")
    target = _find_agent(session, name)
    answer = session.request(
        "PATCH", f"/servers/{target['id']}", json_body={"bandwidth_limit": value * (1 << 20)}
    )
    if as_json:
        echo_json(answer)
        return
    what = f"{value:g} MiB/s each way" if value else "its agent.toml limit"
    say(f"agent {answer.get('hostname')} ({answer.get('id')}) will use {what} from its next beat")


def _find_agent(session: Session, name: str) -> dict[str, Any]:
    """The agent whose id or hostname is ``name`` (a hostname must be unambiguous)."""
    servers = _items(session.request("GET", "/servers"))
    by_id = [s for s in servers if s.get("id") == name]
    found = by_id or [s for s in servers if s.get("hostname") == name]
    if not found:
        raise NotFoundError(f"no agent {name!r}", hint="see: reelsync agent list")
    if len(found) > 1:
        ids = ", ".join(f"{s['id']} ({s.get('site')})" for s in found)
        raise ValidationError(f"{len(found)} agents are named {name!r}: {ids}; give the id")
    return found[0]


@agent.command("revoke")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_session
def revoke(session: Session, name: str, as_json: bool) -> None:
    """Revoke agent NAME (id or hostname) for good (admin): the control plane refuses its
    requests, it gets no more work, and its peers refuse its certificate."""
    target = _find_agent(session, name)
    answer = session.request("POST", f"/servers/{target['id']}/revoke")
    if as_json:
        echo_json(answer)
        return
    say(f"revoked agent {answer.get('hostname')} ({answer.get('id')}) at site {answer.get('site')}")


@agent.command("enroll")
@click.option(
    "--server",
    "server_url",
    required=True,
    metavar="URL[,URL...]",
    help="Control plane URL; with replicas, each one's, comma-separated (the agent fails over).",
)
@click.option("--token", "token_text", required=True, help="From: reelsync agent token --site S")
@data_dir_option
@click.option(
    "--ca-file",
    "agent_ca",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Workspace CA to verify the control plane (its DATA_DIR/tls/ca.crt).",
)
@click.option("--insecure", "agent_insecure", is_flag=True, help="Do not verify the server.")
@click.option("--hostname", help="Name to register (default: this machine's host name).")
@click.option(
    "--listen",
    default="0.0.0.0:45190-45210",
    show_default=True,
    metavar="HOST:PORTS",
    help="Where peers connect (a port or a FIRST-LAST range).",
)
@click.option("--advertise", metavar="HOST", help="Address peers should dial (default: seen).")
@click.option(
    "--dialable/--not-dialable",
    default=True,
    show_default=True,
    help="Whether peers can reach this agent (behind NAT: --not-dialable, it dials out).",
)
@click.option("--bandwidth-limit", type=float, metavar="MIB_S", help="MiB/s at most, each way.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def enroll(
    server_url: str,
    token_text: str,
    data_dir: Path,
    agent_ca: Path | None,
    agent_insecure: bool,
    hostname: str | None,
    listen: str,
    advertise: str | None,
    dialable: bool,
    bandwidth_limit: float | None,
    as_json: bool,
) -> None:
    """Enroll this machine as an agent: key made here, certificate from the workspace CA."""
    from reelsync.agent.enrollment import enroll as do_enroll
    from reelsync.agent.settings import parse_port_range

    _host, sep, ports = listen.rpartition(":")
    if not sep:
        raise ValidationError(f"--listen must be HOST:PORTS, got {listen!r}")
    parse_port_range(ports)
    if bandwidth_limit is not None and bandwidth_limit <= 0:
        raise ValidationError("--bandwidth-limit must be positive (MiB/s)")
    result = asyncio.run(
        do_enroll(
            server_url,
            token_text,
            data_dir,
            ca_file=agent_ca,
            insecure=agent_insecure,
            hostname=hostname,
            listen=listen,
            advertise=advertise,
            dialable=dialable,
            bandwidth_limit_mib_s=bandwidth_limit,
        )
    )
    if as_json:
        echo_json(
            {
                "server_id": result.server_id,
                "site": result.site,
                "workspace": result.workspace,
                "data_dir": str(result.data_dir),
                "config": str(result.config_file),
            }
        )
        return
    say(f"enrolled agent {result.server_id} at site {result.site}; config {result.config_file}")
    say(f"run it: reelsync agent run --data-dir {data_dir}")


@agent.command("run")
@data_dir_option
def run(data_dir: Path) -> None:
    """Run the agent until SIGTERM or SIGINT (then it is offline at once).

    One agent process per data dir: a second one on the same DATA_DIR stops at once."""
    from reelsync.agent.daemon import Agent
    from reelsync.agent.lock import DataDirLock
    from reelsync.agent.settings import load_agent_settings

    settings = load_agent_settings(data_dir, dict(os.environ))
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # What start-up made lives as long as the process: out of the cyclic collector's way. And it
    # runs after 10,000 allocations, not 700: planning or listing a folder allocates a few
    # objects per file, and collecting every 700 of them cost a fifth of a re-sync's CPU.
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        daemon = Agent(settings)
        await daemon.run(stop)

    with DataDirLock(settings.data_dir):  # one process per data dir
        asyncio.run(main())
    say("agent stopped")
