"""The ``reelsync`` command. Sub-command groups live in sibling modules named after what they
drive; this module owns the root group and the one error boundary: a :class:`ReelsyncError` becomes
one line on stderr and its ``exit_code``; nothing a user typed ever prints a traceback."""

from __future__ import annotations

import sys
from typing import Any

import click

from reelsync import __version__
from reelsync.errors import ReelsyncError

__all__ = ["cli", "main"]


class _Group(click.Group):
    """Turns reelsync errors into one clear line and the error's exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ReelsyncError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="reelsync")
def cli() -> None:
    """reelsync: move production assets between hq and remote sites."""


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    try:
        cli.main(args=argv, prog_name="reelsync", standalone_mode=True)
    except KeyboardInterrupt:  # pragma: no cover - interactive
        click.echo("interrupted", err=True)
        sys.exit(130)
