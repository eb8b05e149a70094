"""``reelsync demo``: the main job on one machine (see :mod:`reelsync.demo`)."""

from __future__ import annotations

import os
import signal
from types import FrameType

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

    # Ctrl-C and SIGTERM must always stop and clean up, even when this process was started with
    # SIGINT ignored (a background job of a non-interactive shell, some CI runners).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    run_demo(os.environ, keep=keep, files=files)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
