"""The site sync's rules shared by ``reelsync sync`` and the web UI's transfer page."""

from __future__ import annotations

from datetime import date

import pytest

from reelsync.domain.paths import covers
from reelsync.domain.syncjob import (
    Direction,
    by_project,
    check_may_sync,
    direction_between,
    job_name,
    moved_note,
    project_queue,
    sync_tasks,
)
from reelsync.errors import NotFoundError, PermissionDeniedError, ValidationError


def test_direction_is_judged_from_the_main_site() -> None:
    assert direction_between("hq", "london", source_main=True, destination_main=False) == (
        Direction.DOWNLOAD,
        "london",
    )
    assert direction_between("london", "hq", source_main=False, destination_main=True) == (
        Direction.UPLOAD,
        "london",
    )
    with pytest.raises(ValidationError, match="between the main site and another site"):
        direction_between("london", "paris", source_main=False, destination_main=False)
    with pytest.raises(ValidationError, match="other than the source"):
        direction_between("hq", "hq", source_main=True, destination_main=True)


def test_a_projects_queue_is_its_own_else_the_default_with_a_note() -> None:
    rows = [("Proj001", False), ("medium", True)]
    assert project_queue("proj001", rows) == ("Proj001", None)
    assert project_queue("proj002", rows) == (
        "medium",
        "project proj002 has no queue; using the default queue medium",
    )
    with pytest.raises(NotFoundError, match="no default queue"):
        project_queue("proj002", [("proj001", False)])


def test_tasks_names_and_groups() -> None:
    paths = ["proj001/sc1", "proj002/sc9", "proj001/sc2"]
    assert by_project(paths) == {
        "proj001": ["proj001/sc1", "proj001/sc2"],
        "proj002": ["proj002/sc9"],
    }
    assert sync_tasks("projects", "hq", "london", {"proj001/sc1": 7}, ["proj001/sc1"]) == [
        {
            "source": "site=hq:share=projects/proj001/sc1",
            "destination": "site=london:share=projects/proj001/sc1",
            "size": 7,
        }
    ]
    assert job_name("proj001", "download", "london", date(2026, 11, 27)) == (
        "proj001 download london 2026-11-27"
    )
    assert "moved from queue proj001 to high" in moved_note("x", "proj001", "high")


def test_only_admins_and_employees_sync() -> None:
    check_may_sync("a@x", "admin")
    check_may_sync("e@x", "employee")
    with pytest.raises(PermissionDeniedError, match=r"s@x \(standard\) may not transfer"):
        check_may_sync("s@x", "standard")


def test_a_grant_covers_its_path_and_below_never_a_sibling() -> None:
    assert covers("", "proj001/sc0010")
    assert covers("proj001", "proj001")
    assert covers("proj001", "proj001/sc0010")
    assert not covers("proj001", "proj0012/sc0010")
    assert not covers("proj001/sc0010", "proj001")
