"""The pre-submit hook: the admin's command that may refuse a job before it is created.

Rules: :class:`PreSubmitHook` implements :class:`reelsync.services.jobs.SubmitHook`. It looks up
``hook_pre_submit`` (the job's queue, else the workspace; never the job's own settings) and, when
set, runs it OUTSIDE any database transaction with the submitted job JSON (plus ``user``,
``queue`` and ``hook``) as ``${PATH_JSON_INPUT}``. A non-zero exit, a timeout or a missing program
refuses the job with a :class:`~reelsync.errors.ValidationError` carrying the hook's message.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reelsync.db import Database
from reelsync.domain.records import Actor
from reelsync.errors import NotFoundError
from reelsync.notify.hooks import check_pre_submit, run_hook
from reelsync.notify.outbox import hook_command
from reelsync.services import catalog

__all__ = ["PreSubmitHook"]


class PreSubmitHook:
    """Give one to ``create_app(..., submit_hook=PreSubmitHook())``."""

    def __init__(self, *, tmp_dir: Path | None = None) -> None:
        self._tmp_dir = tmp_dir

    def _lookup(self, db: Database, payload: Mapping[str, Any]) -> tuple[str | None, float, str]:
        ref = payload.get("queue") or payload.get("parent")
        with db.reader() as session:  # the catalog: no query within a request
            known = catalog.current(session)
            row: catalog.QueueRef | None
            try:
                row = known.queue(str(ref)) if ref else known.default_queue()
            except NotFoundError:
                row = None  # the submit itself will say the queue is unknown
            queue_id = row.id if row is not None else ""
            command, timeout_s = hook_command(session, queue_id, "pre-submit")
            return command, timeout_s, (row.code if row is not None else str(ref or ""))

    def __call__(self, db: Database, actor: Actor, payload: Mapping[str, Any]) -> None:
        command, timeout_s, queue_code = self._lookup(db, payload)
        if command is None:
            return
        document: dict[str, Any] = {k: v for k, v in payload.items() if k != "tasks"}
        tasks = payload.get("tasks")
        if tasks is None and "source" in payload:
            tasks = [{"source": payload.get("source"), "destination": payload.get("destination")}]
        document.update({"user": actor.email, "queue": queue_code, "tasks": tasks or []})
        if self._tmp_dir is not None:
            self._tmp_dir.mkdir(parents=True, exist_ok=True)
        result = run_hook(
            "pre-submit", command, document, timeout_s=timeout_s, tmp_dir=self._tmp_dir
        )
        check_pre_submit(result)
