"""A folder's entries as a person reads them: image sequences collapsed to one row.

Rules: files of one folder whose names differ only in their LAST run of digits, with the same
number of digits, followed by an extension (``.exr``; so shot folders ``sh0010``, ``sh0020`` stay
apart), are one sequence when there are at least :data:`MIN_FRAMES` of them: they read
``plate.####.exr 1001-1100`` (one ``#`` per digit; gaps listed: ``1001-1010,1020``). Everything
else stays one row per name. Folders come first, then rows in name order; a sequence sorts by its
pattern. Nothing here does I/O.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["MIN_FRAMES", "Entry", "Row", "collapse", "frame_ranges"]

MIN_FRAMES = 3
_LAST_DIGITS = re.compile(r"^(?P<head>.*?)(?P<digits>\d+)(?P<tail>\D*\.\D*)$")


@dataclass(frozen=True, slots=True)
class Entry:
    """One listed name: a folder or a file (its size in bytes, when known)."""

    name: str
    folder: bool
    size: int | None = None


@dataclass(frozen=True, slots=True)
class Row:
    """A folder, a file, or an image sequence (``frames`` set) of a listing."""

    name: str  # the file or folder name, or the sequence's pattern (``plate.####.exr``)
    folder: bool
    size: int | None
    names: tuple[str, ...]  # the files this row stands for (one, or every frame)
    frames: tuple[int, ...] = ()

    @property
    def sequence(self) -> bool:
        return bool(self.frames)

    @property
    def label(self) -> str:
        """``plate.####.exr 1001-1100`` for a sequence, else the name."""
        return f"{self.name} {frame_ranges(self.frames)}" if self.frames else self.name


def frame_ranges(frames: Sequence[int]) -> str:
    """``[1, 2, 3, 7]`` -> ``1-3,7``."""
    runs: list[list[int]] = []
    for frame in sorted(set(frames)):
        if runs and frame == runs[-1][1] + 1:
            runs[-1][1] = frame
        else:
            runs.append([frame, frame])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def _total(sizes: Iterable[int | None]) -> int | None:
    total = 0
    for size in sizes:
        if size is None:
            return None
        total += size
    return total


def collapse(entries: Iterable[Entry], *, min_frames: int = MIN_FRAMES) -> list[Row]:
    """The rows of one folder's ``entries``: folders, files, and sequences collapsed."""
    folders: list[Row] = []
    groups: dict[tuple[str, int, str], list[tuple[int, Entry]]] = defaultdict(list)
    singles: list[Entry] = []
    for entry in entries:
        if entry.folder:
            folders.append(Row(entry.name, True, entry.size, (entry.name,)))
            continue
        match = _LAST_DIGITS.match(entry.name)
        if match is None:
            singles.append(entry)
            continue
        key = (match["head"], len(match["digits"]), match["tail"])
        groups[key].append((int(match["digits"]), entry))
    files: list[Row] = [Row(e.name, False, e.size, (e.name,)) for e in singles]
    for (head, width, tail), members in groups.items():
        if len(members) < min_frames:
            files.extend(Row(e.name, False, e.size, (e.name,)) for _, e in members)
            continue
        members.sort(key=lambda item: item[0])
        files.append(
            Row(
                name=f"{head}{'#' * width}{tail}",
                folder=False,
                size=_total(e.size for _, e in members),
                names=tuple(e.name for _, e in members),
                frames=tuple(frame for frame, _ in members),
            )
        )
    folders.sort(key=lambda r: r.name)
    files.sort(key=lambda r: r.name)
    return folders + files
