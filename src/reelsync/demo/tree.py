"""The demo's project: shots with EXR-like frame sequences and sidecar files, made reproducibly
from a seed; and the check that a copy matches the original file by file (xxh3-128 digests)."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import xxhash

__all__ = ["TreeCheck", "compare_trees", "digest_file", "make_project", "shot_paths"]

_EXR_MAGIC = b"\x76\x2f\x31\x01"  # OpenEXR's magic number, so tools see "EXR-like" frames


def shot_paths(project: str = "proj001", shots: Sequence[str] = ("sh0010", "sh0020")) -> list[str]:
    """``proj001/sc0010/sh0010/scans``, ... (relative to the projects volume)."""
    return [f"{project}/sc0010/{shot}/scans" for shot in shots]


def make_project(
    volume_root: Path,
    paths: Sequence[str],
    *,
    frames: int = 200,
    frame_size: tuple[int, int] = (24 * 1024, 96 * 1024),
    seed: int = 2026,
) -> tuple[int, int]:
    """Write ``frames`` frames plus sidecars under each of ``paths``; (files, bytes) made."""
    rng = random.Random(seed)
    files = total = 0
    for rel in paths:
        scans = volume_root / rel
        scans.mkdir(parents=True, exist_ok=True)
        shot = rel.split("/")[-2]
        for n in range(1001, 1001 + frames):
            body = _EXR_MAGIC + rng.randbytes(rng.randint(*frame_size))
            (scans / f"{shot}_plate.{n:04d}.exr").write_bytes(body)
            files, total = files + 1, total + len(body)
        sidecars = {
            f"{shot}_plate.json": json.dumps(
                {"shot": shot, "frames": [1001, 1000 + frames], "colorspace": "ACEScg"}, indent=2
            ),
            f"{shot}.cdl": "<ColorDecisionList><ColorDecision><ColorCorrection/>"
            "</ColorDecision></ColorDecisionList>\n",
            "notes.txt": f"{shot}: plates as shot, no retime.\n",
        }
        for name, text in sidecars.items():
            (scans / name).write_text(text, encoding="utf-8")
            files, total = files + 1, total + len(text.encode())
    return files, total


def digest_file(path: Path) -> str:
    h = xxhash.xxh3_128()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _files(root: Path, rel: str) -> Iterator[str]:
    base = root / rel
    for path in sorted(base.rglob("*")):
        if path.is_file():
            yield path.relative_to(root).as_posix()


@dataclass(frozen=True, slots=True)
class TreeCheck:
    files: int
    bytes: int
    missing: tuple[str, ...]
    different: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return self.files > 0 and not self.missing and not self.different


def compare_trees(source: Path, copy: Path, paths: Sequence[str]) -> TreeCheck:
    """Every file under ``paths`` at ``source`` must be at ``copy`` with the same digest."""
    files = size = 0
    missing: list[str] = []
    different: list[str] = []
    for rel in paths:
        for name in _files(source, rel):
            files += 1
            size += (source / name).stat().st_size
            target = copy / name
            if not target.is_file():
                missing.append(name)
            elif digest_file(target) != digest_file(source / name):
                different.append(name)
    return TreeCheck(files, size, tuple(missing), tuple(different))
