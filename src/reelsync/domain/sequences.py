"""Image-sequence paths with a frame range (accsyn-compat spec section 4), expanded without I/O.

Rules:
- A path whose last segment holds one frame token -- ``%d``, ``%0Nd`` or a run of ``#`` (one
  ``#`` per digit) -- and ends in a frame range in brackets names one file per frame:
  ``plate.%04d.exr[1001-1100]``, ``plate.####.exr[1001-1003,1010]``. Ranges are ``A-B`` or ``A``,
  comma-separated, ``A <= B``, frames >= 0, at most :data:`MAX_FRAMES` frames in all; frames come
  out in the order given, each once.
- A ``%d``-style token with no range is refused with a hint (the frames cannot be known without
  listing the source); a ``#`` with no range is an ordinary character of a file name. Whoever can
  list the source (the accsyn adapter, through the agent) gives such a path every frame present:
  :func:`unranged_sequence`, then :func:`frames_present` and :func:`with_range`.
- :func:`frame_path` puts a frame into a pattern without a range (a sequence's destination).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from reelsync.errors import ValidationError

__all__ = [
    "MAX_FRAMES",
    "Sequence",
    "Unranged",
    "frame_path",
    "frames_present",
    "has_frame_range",
    "has_frame_token",
    "parse_sequence",
    "unranged_sequence",
    "with_range",
]

MAX_FRAMES = 100_000

_TOKEN = r"%(?P<pad>0?\d{0,2})d|(?P<hashes>#+)"
_SEQUENCE_RE = re.compile(
    rf"^(?P<head>[^/]*?)(?:{_TOKEN})(?P<tail>[^/%#\[]*)\[(?P<ranges>[^\]]*)\]$"
)
_PRINTF_RE = re.compile(r"%0?\d{0,2}d")
_ANY_TOKEN_RE = re.compile(_TOKEN)
_RANGE_RE = re.compile(r"^\s*(\d{1,9})\s*(?:-\s*(\d{1,9})\s*)?$")


@dataclass(frozen=True, slots=True)
class Sequence:
    """``directory/head<frame>tail`` for each of ``frames``; ``width`` is the zero padding."""

    directory: str
    head: str
    tail: str
    width: int
    frames: tuple[int, ...]

    @property
    def pattern(self) -> str:
        """The path with its token and without the range, e.g. ``a/plate.%04d.exr``."""
        name = (
            f"{self.head}%0{self.width}d{self.tail}" if self.width else f"{self.head}%d{self.tail}"
        )
        return f"{self.directory}/{name}" if self.directory else name

    def path(self, frame: int) -> str:
        name = f"{self.head}{frame:0{self.width}d}{self.tail}"
        return f"{self.directory}/{name}" if self.directory else name

    def paths(self) -> list[str]:
        return [self.path(frame) for frame in self.frames]


def _frames(text: str, original: str) -> tuple[int, ...]:
    frames: dict[int, None] = {}
    for part in text.split(","):
        match = _RANGE_RE.match(part)
        if match is None:
            raise ValidationError(
                f"bad frame range [{text}] in {original!r}", hint="e.g. [1001-1100] or [1,5,9-12]"
            )
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        if last < first:
            raise ValidationError(f"frame range {first}-{last} runs backwards in {original!r}")
        if len(frames) + (last - first + 1) > MAX_FRAMES:
            raise ValidationError(
                f"{original!r} names more than {MAX_FRAMES:,} frames",
                hint="split it into several tasks or jobs",
            )
        for frame in range(first, last + 1):
            frames[frame] = None
    return tuple(frames)


def parse_sequence(path: str) -> Sequence | None:
    """The sequence a normalised relative ``path`` names, or None when it is one plain file."""
    directory, _, name = path.rpartition("/")
    match = _SEQUENCE_RE.match(name)
    if match is None:
        if _PRINTF_RE.search(name):
            raise ValidationError(
                f"{path!r} looks like an image sequence but has no frame range",
                hint="add the frames, e.g. plate.%04d.exr[1001-1100]",
            )
        return None
    head, tail = match.group("head"), match.group("tail")
    if _ANY_TOKEN_RE.search(head) or _ANY_TOKEN_RE.search(tail):
        raise ValidationError(f"an image sequence has one frame token, {path!r} has more")
    hashes = match.group("hashes")
    width = len(hashes) if hashes is not None else int(match.group("pad") or 0)
    return Sequence(directory, head, tail, width, _frames(match.group("ranges"), path))


def has_frame_range(path: str) -> bool:
    """Whether the last segment of ``path`` is a frame token plus a range (well formed or not)."""
    return _SEQUENCE_RE.match(path.rpartition("/")[2]) is not None


def has_frame_token(path: str) -> bool:
    """Whether the last segment of ``path`` holds a ``%d``-style token or a run of ``#``."""
    return _ANY_TOKEN_RE.search(path.rpartition("/")[2]) is not None


def frame_path(pattern: str, frame: int) -> str:
    """``pattern`` (a path whose last segment holds one frame token, no range) for ``frame``."""
    directory, _, name = pattern.rpartition("/")
    tokens = list(_ANY_TOKEN_RE.finditer(name))
    if len(tokens) != 1:
        raise ValidationError(
            f"{pattern!r} needs exactly one frame token (%04d or ####), it has {len(tokens)}"
        )
    (match,) = tokens
    hashes = match.group("hashes")
    width = len(hashes) if hashes is not None else int(match.group("pad") or 0)
    filled = f"{name[: match.start()]}{frame:0{width}d}{name[match.end() :]}"
    return f"{directory}/{filled}" if directory else filled


@dataclass(frozen=True, slots=True)
class Unranged:
    """A ``%d``-style sequence path without its range: ``directory/head<frame>tail``."""

    directory: str
    head: str
    tail: str
    width: int  # 0: unpadded %d


_UNRANGED_RE = re.compile(r"^(?P<head>[^/%\[]*?)%(?P<pad>0?\d{0,2})d(?P<tail>[^/%\[\]]*)$")


def unranged_sequence(path: str) -> Unranged | None:
    """The range-less ``%d`` sequence ``path`` names (``a/plate.%04d.exr``), else None."""
    directory, _, name = path.rpartition("/")
    match = _UNRANGED_RE.match(name)
    if match is None:
        return None
    return Unranged(
        directory, match.group("head"), match.group("tail"), int(match.group("pad") or 0)
    )


def frames_present(sequence: Unranged, names: Iterable[str]) -> list[int]:
    """The frames of ``sequence`` among file ``names`` (padded as the token says), sorted."""
    digits = rf"\d{{{sequence.width},}}" if sequence.width else r"\d+"
    pattern = re.compile(rf"^{re.escape(sequence.head)}({digits}){re.escape(sequence.tail)}$")
    found = {int(m.group(1)) for m in map(pattern.match, names) if m is not None}
    return sorted(found)


def with_range(path: str, frames: Iterable[int]) -> str:
    """``path`` with the frame range of ``frames`` appended, runs collapsed (``[1-3,7]``)."""
    runs: list[list[int]] = []
    for frame in sorted(set(frames)):
        if runs and frame == runs[-1][1] + 1:
            runs[-1][1] = frame
        else:
            runs.append([frame, frame])
    if not runs:
        raise ValidationError(f"no frames for {path!r}")
    text = ",".join(f"{a}-{b}" if a != b else str(a) for a, b in runs)
    return f"{path}[{text}]"
