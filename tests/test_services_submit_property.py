"""Property: any job JSON either submits, or fails with a ReelsyncError and writes nothing."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from reelsync.db import Database
from reelsync.db import models as m
from reelsync.domain.records import Actor
from reelsync.errors import ReelsyncError
from reelsync.services import jobs, sites, volumes

_segment = st.sampled_from(["proj001", "sc0010", "a.exr", "..", ".", "", "x y", "é", "C:"])
_path = st.lists(_segment, max_size=4).map("/".join)
_prefix = st.sampled_from(
    [
        "",
        "volume=projects/",
        "share=projects/",
        "volume=(default)/",
        "volume=nope/",
        "acmepost:",
        "site=london:",
        "site=hq:",
        "site=paris:",
        "/mnt/p/",
        "/etc/",
        "a@b.c:",
        "folder=x/",
    ]
)
_party_path = st.builds(lambda p, q: p + q, _prefix, _path)
_task = st.one_of(
    _party_path,
    st.fixed_dictionaries(
        {"source": _party_path},
        optional={
            "destination": _party_path,
            "priority": st.integers(-5, 1005),
            "status": st.sampled_from(["queued", "onhold", "done", "bogus"]),
        },
    ),
)
_valid = st.sampled_from(["proj001/a", "proj001/b/c", "volume=projects/d.exr", "/mnt/p/e"])
_job = st.fixed_dictionaries(
    {
        "tasks": st.lists(st.one_of(_valid, _valid, _task), min_size=1, max_size=4),
        "destination": st.sampled_from(
            [
                "site=london",
                "site=london",
                "site=london:volume=projects/in/",
                "site=hq",
                "nowhere:x",
            ]
        ),
    },
    optional={
        "queue": st.sampled_from(["High", "medium", "nope"]),
        "status": st.sampled_from(["paused", "waiting", "done"]),
    },
)


def _counts(db: Database) -> tuple[int, int]:
    with db.session() as s:
        return (
            s.scalar(select(func.count()).select_from(m.Job)) or 0,
            s.scalar(select(func.count()).select_from(m.Task)) or 0,
        )


def test_submit_is_all_or_nothing(database: Database, admin: Actor) -> None:
    sites.create_site(database, admin, code="london")
    volumes.create_volume(
        database, admin, code="projects", paths={"hq": "/mnt/p", "london": "/data/p"}
    )
    outcomes = {"ok": 0, "refused": 0}
    messages: list[str] = []

    @given(payload=_job)
    @settings(
        max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    def run(payload: dict) -> None:
        before = _counts(database)
        try:
            job = jobs.submit_job(database, admin, payload)
        except ReelsyncError as exc:
            messages.append(str(exc))
            assert _counts(database) == before
            outcomes["refused"] += 1
            return
        after = _counts(database)
        assert after == (before[0] + 1, before[1] + job.tasks)
        assert 1 <= job.tasks <= len(payload["tasks"])
        outcomes["ok"] += 1

    run()
    assert outcomes["ok"]
    assert outcomes["refused"]
