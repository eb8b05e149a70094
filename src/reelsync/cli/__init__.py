"""The ``reelsync`` command. Sub-command groups live in sibling modules named after what they
drive, imported when first used; this module owns the root group and the one error boundary: a
:class:`ReelsyncError` becomes one line on stderr and its ``exit_code``; nothing a user typed
ever prints a traceback."""

from __future__ import annotations

import atexit
import gc
import importlib
import os
import sys
import threading
from typing import Any

import click

from reelsync import __version__
from reelsync.cli.connection import Connection
from reelsync.errors import ReelsyncError

# ``import httpx`` also imports httpx's own command-line tool (``httpx._main``: pygments,
# rich.syntax, ~10 ms of a command's start) when click and rich are installed. reelsync never
# runs it: its import is declined before a command imports httpx (which then defines a stand-in
# ``httpx.main``).
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

__all__ = ["cli", "main"]


#: Whether :func:`main` paused the cyclic collector for start-up (not yet resumed).
_gc_paused = False

#: Sub-commands whose process, once the command returned (whatever its exit code), ends without
#: the interpreter's teardown (:func:`_quick_exit`): clients holding no file open for writing.
_QUICK_EXIT = frozenset({"sync"})

#: The sub-command this process runs (set by the root group's callback).
_invoked: str | None = None


def _resume_gc() -> None:
    """End :func:`main`'s start-up pause of the cyclic collector: what start-up made (the modules
    of the sub-command) lives as long as the process, so it is frozen out of the collector's way
    rather than walked by its next collections."""
    global _gc_paused
    if _gc_paused:
        _gc_paused = False
        gc.freeze()
        gc.enable()


def _one_line(exc: BaseException) -> str:
    """The error's text on one line (a driver's message may span several)."""
    return " ".join(str(exc).split())


#: Sub-command -> the module that defines it (same name). Imported only when used, so a command
#: starts without loading what the others need (the engine, the web server, the database).
_SUBCOMMANDS = (
    "acl", "agent", "demo", "job", "login", "queue", "server", "site", "sync", "transfer", "user",
    "volume",
)  # fmt: skip


class _Group(click.Group):
    """Loads sub-commands on first use; turns reelsync errors into one clear line and the error's
    exit code."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *_SUBCOMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in _SUBCOMMANDS:
            module = importlib.import_module(f"reelsync.cli.{cmd_name}")
            self.add_command(getattr(module, cmd_name))
        return self.commands.get(cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ReelsyncError as exc:
            click.echo(f"error: {_one_line(exc)}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="reelsync")
@click.option("--url", help="Control plane URL (else REELSYNC_URL or the credentials file).")
@click.option(
    "--ca-file",
    type=click.Path(dir_okay=False),
    help="Workspace CA to verify the server (else REELSYNC_CA_FILE; DATA_DIR/tls/ca.crt).",
)
@click.option("--insecure", is_flag=True, help="Do not verify the server's TLS certificate.")
@click.pass_context
def cli(ctx: click.Context, url: str | None, ca_file: str | None, insecure: bool) -> None:
    """reelsync: move production assets between hq and remote sites."""
    global _invoked
    _resume_gc()  # the sub-command is imported (click resolves it before this callback runs)
    _invoked = ctx.invoked_subcommand
    conn = ctx.ensure_object(Connection)
    conn.url, conn.ca_file, conn.insecure = url, ca_file, insecure


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point. Usage mistakes are one line too (with the --help to read).
    Start-up (the sub-command's imports, a third of a short command's life) runs without the
    cyclic collector, which has nothing to find there, and the interpreter's last collection at
    exit need not walk the whole heap either: the process is ending. A process of its own
    (``argv`` None: the console script, ``python -m reelsync``) whose command is in
    ``_QUICK_EXIT`` returned skips the interpreter's teardown too."""
    global _gc_paused
    if gc.isenabled():
        _gc_paused = True
        gc.disable()
    atexit.register(gc.freeze)
    try:
        result = cli.main(args=argv, prog_name="reelsync", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:  # a group given no sub-command
        click.echo(exc.ctx.get_help() if exc.ctx is not None else exc.format_message())
        sys.exit(0)
    except click.UsageError as exc:
        where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        click.echo(f"error: {exc.format_message()}{where}", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except ReelsyncError as exc:  # raised outside a command (e.g. while parsing options)
        click.echo(f"error: {_one_line(exc)}", err=True)
        sys.exit(exc.exit_code)
    except (click.Abort, KeyboardInterrupt):
        click.echo("interrupted", err=True)
        sys.exit(130)
    finally:
        _resume_gc()  # when the command ended before its callback (--help, a usage error)
    code = result if isinstance(result, int) else 0
    if argv is None and _invoked in _QUICK_EXIT:
        _quick_exit(code)
    sys.exit(code)


def _quick_exit(code: int) -> None:
    """End a process whose command is done without the interpreter's teardown (freeing every
    module and object one by one: ~15 ms of a no-op ``sync --wait``, after its last request): the
    exit functions run and the output is flushed first, as the interpreter would. Only when no
    other thread is left (the interpreter would wait for it); otherwise returns."""
    if threading.active_count() != 1:
        return
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed pipe: let the interpreter say so and set the code
        return
    os._exit(code)
