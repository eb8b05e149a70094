"""placeholder"""

import click

__all__ = ["server"]


@click.group()
def server() -> None:
    """The control plane."""
