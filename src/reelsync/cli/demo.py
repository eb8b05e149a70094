"""``reelsync demo``: the main job on one machine (see :mod:`reelsync.demo`)."""

from __future__ import annotations

import os

import click

__all__ = ["demo"]


@click.command("demo")
@click.option("--keep", is_flag=True, help="Leave it running until Ctrl-C.")
@click.option(
    "--files",
    type=click.IntRange(1, 100_000),
    default=200,
    show_default=True,
    help="Frames per shot (two shots, plus sidecar files).",
)
def demo(keep: bool, files: int) -> None:
    """Run the whole job on this machine: control plane, two agents, a sync, then clean up."""
    from reelsync.demo import run_demo  # the demo's imports load only for this command

    run_demo(os.environ, keep=keep, files=files)
