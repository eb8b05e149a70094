"""The live progress bars a person follows jobs with (rich): one line per job that fits 80
columns. Imported only when bars are drawn (by :func:`reelsync.sync.watch.watch_jobs`), so a
command that draws none never loads rich."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn
from rich.table import Column
from rich.text import Text

from reelsync.domain.units import size_text

__all__ = ["job_bars"]


class _Amount(ProgressColumn):
    """``12.0 MiB/22.9 MiB`` in the one units convention; ``12.0 MiB`` when the size is unknown."""

    def render(self, task: Task) -> Text:
        done = size_text(task.completed)
        return Text(f"{done}/{size_text(task.total)}" if task.total else done, no_wrap=True)


class _Field(ProgressColumn):
    """A field of the job's bar (the server's speed, the ETA): empty when not given."""

    def __init__(self, name: str, table_column: Column | None = None) -> None:
        super().__init__(table_column)
        self.name = name

    def render(self, task: Task) -> Text:
        return Text(str(task.fields.get(self.name) or ""), no_wrap=True)


def job_bars(console: Console | None = None) -> Progress:
    """One line per job that fits 80 columns: the name gives way (ellipsis), nothing wraps. On
    ``console``, else stderr."""
    fixed = Column(no_wrap=True)
    return Progress(
        TextColumn(
            "[bold]{task.description}",
            table_column=Column(no_wrap=True, overflow="ellipsis", min_width=12, ratio=1),
        ),
        BarColumn(bar_width=12),
        TextColumn("{task.percentage:>5.1f}%", table_column=fixed),
        _Amount(table_column=Column(no_wrap=True)),
        _Field("speed", table_column=Column(no_wrap=True)),
        _Field("eta", table_column=Column(no_wrap=True)),
        TextColumn("{task.fields[status]}", table_column=Column(no_wrap=True)),
        console=console or Console(stderr=True),
        transient=False,
        expand=True,
    )
