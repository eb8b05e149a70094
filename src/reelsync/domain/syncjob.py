"""The site sync's job rule, shared by ``reelsync sync`` and the web UI's transfer page: one job
per project, direction, site and day, named ``<project> <direction> <site> <YYYY-MM-DD>``, found
by that name (the caller's) and appended to, else created. The project is a path's first
component."""

from __future__ import annotations

from datetime import date
from enum import StrEnum

__all__ = ["Direction", "job_name", "project_of"]


class Direction(StrEnum):
    DOWNLOAD = "download"  # main site -> remote site
    UPLOAD = "upload"  # remote site -> main site


def job_name(project: str, direction: Direction | str, site: str, day: date) -> str:
    """``proj001 download london 2026-11-27``."""
    return f"{project} {Direction(direction).value} {site} {day.isoformat()}"


def project_of(path: str) -> str:
    """``proj001/sc0010/sh0010/scans`` -> ``proj001``."""
    return path.split("/", 1)[0]
