"""``reelsync demo``: the main job on one machine (see :mod:`reelsync.demo`)."""

from __future__ import annotations

import click

__all__ = ["demo"]


@click.command("demo")
@click.option("--keep", is_flag=True, help="Leave it running until Ctrl-C.")
def demo(keep: bool) -> None:
    """Run reelsync on this machine with embedded defaults, then clean up."""
    from reelsync.demo import run_demo  # the server stack loads only for this command

    run_demo(keep=keep)
