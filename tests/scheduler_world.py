"""A small studio for scheduler tests: sites hq (main) and london, volume ``projects`` at both,
agents registered straight in the database (online, listening or not), jobs submitted through the
services."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from reelsync.db import Database
from reelsync.db import models as m
from reelsync.db.types import utcnow
from reelsync.domain.ids import new_entity_id
from reelsync.domain.records import Actor, Job
from reelsync.services import jobs, queues, settings, sites, volumes
from reelsync.services.rollup import refresh_job


class World:
    def __init__(self, db: Database, admin: Actor) -> None:
        self.db = db
        self.admin = admin
        self.london = sites.create_site(db, admin, code="london").id
        self.paris = sites.create_site(db, admin, code="paris").id
        with db.session() as s:
            self.hq = s.scalar(select(m.Site.id).where(m.Site.code == "hq")) or ""
        volumes.create_volume(
            db,
            admin,
            code="projects",
            paths={"hq": "/mnt/p", "london": "/data/p", "paris": "/srv/p"},
        )

    def agent(
        self,
        site: str,
        *,
        dialable: bool = True,
        status: str = "online",
        port: int = 7000,
        checkin: datetime | None = None,
    ) -> str:
        site_id = {"hq": self.hq, "london": self.london, "paris": self.paris}[site]
        server_id = new_entity_id()
        now = utcnow()
        with self.db.session() as s:
            s.add(
                m.Server(
                    id=server_id,
                    site_id=site_id,
                    hostname=f"{site}-{server_id[:6]}",
                    status=status,
                    last_checkin=checkin or now,
                    peer_address="127.0.0.1" if dialable else None,
                    peer_port=port if dialable else None,
                    dialable=dialable,
                    info={},
                    created=now,
                    modified=now,
                )
            )
        return server_id

    def queue(self, code: str, priority: int, *, paused: bool = False) -> str:
        return queues.create_queue(
            self.db, self.admin, code=code, priority=priority, paused=paused
        ).id

    def setting(self, key: str, value: object, *, scope: str = "workspace", target=None) -> None:
        settings.set_setting(self.db, self.admin, scope=scope, key=key, value=value, target=target)

    def job(
        self,
        files: int | Sequence[str] = 1,
        *,
        to: str = "london",
        frm: str = "hq",
        queue: str | None = None,
        prefix: str = "shots",
        **extra: Any,
    ) -> Job:
        names = (
            [f"{prefix}/f{i:04d}.exr" for i in range(files)] if isinstance(files, int) else files
        )
        payload: dict[str, Any] = {
            "tasks": [
                {"source": f"share=projects/{n}", "destination": f"site={to}"} for n in names
            ],
            **extra,
        }
        if frm != "hq":
            payload["tasks"] = [
                {"source": f"site={frm}:share=projects/{n}", "destination": f"site={to}"}
                for n in names
            ]
        if queue:
            payload["queue"] = queue
        return jobs.submit_job(self.db, self.admin, payload)

    def tasks(self, job_id: str) -> list[m.Task]:
        with self.db.session() as s:
            return list(
                s.scalars(select(m.Task).where(m.Task.job_id == job_id).order_by(m.Task.created))
            )

    def statuses(self, job_id: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.tasks(job_id):
            out[t.status] = out.get(t.status, 0) + 1
        return out

    def job_row(self, job_id: str) -> m.Job:
        with self.db.session() as s:
            row = s.get(m.Job, job_id)
            assert row is not None
            return row

    def set_sizes(self, job_id: str, size: int) -> None:
        with self.db.session() as s:
            s.execute(update(m.Task).where(m.Task.job_id == job_id).values(size=size))
            job = s.get(m.Job, job_id)
            assert job is not None
            refresh_job(s, job)

    def age(self, job_id: str, seconds: float) -> None:
        """Make a job (and its tasks) older, to fix FIFO order without sleeping."""
        with self.db.session() as s:
            then = utcnow() - timedelta(seconds=seconds)
            s.execute(update(m.Job).where(m.Job.id == job_id).values(created=then))
            s.execute(update(m.Task).where(m.Task.job_id == job_id).values(created=then))
