"""The job and task status machines (accsyn-compat spec section 3), in one place.

Rules: a *user* may write only the statuses in ``JOB_WRITABLE`` / ``TASK_WRITABLE``, along the
edges of ``_JOB_USER_EDGES`` / ``_TASK_USER_EDGES``; the scheduler moves tasks along
``_TASK_SYSTEM_EDGES``. A job's status is otherwise *derived* from its tasks by :func:`rollup`:
only excluded tasks left => done; only on-hold tasks left => paused; a failed task with the rest
done => failed; new tasks revive a finished job.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from reelsync.errors import InvalidTransitionError, ValidationError

__all__ = [
    "JOB_ACTIVE",
    "JOB_FINISHED",
    "JOB_WRITABLE",
    "TASK_ACTIVE",
    "TASK_WRITABLE",
    "JobStatus",
    "TaskStatus",
    "check_job_transition",
    "check_task_transition",
    "parse_job_status",
    "parse_task_status",
    "rollup",
]


class JobStatus(StrEnum):
    INIT = "init"
    WAITING = "waiting"
    RUNNING = "running"
    PAUSED = "paused"
    FAILED = "failed"
    ABORTED = "aborted"
    DONE = "done"


class TaskStatus(StrEnum):
    PENDING = "pending"
    QUEUED = "queued"
    BOOTING = "booting"
    EXECUTING = "executing"
    FAILED = "failed"
    ONHOLD = "onhold"
    EXCLUDED = "excluded"
    DONE = "done"


JOB_FINISHED = frozenset({JobStatus.DONE, JobStatus.ABORTED})
# "Active" in the web UI and in `reelsync job list --active`: jobs that have not ended (a failed job
# has ended: it is listed under "failed").
JOB_ACTIVE = frozenset({JobStatus.INIT, JobStatus.WAITING, JobStatus.RUNNING, JobStatus.PAUSED})
JOB_WRITABLE = frozenset({JobStatus.WAITING, JobStatus.PAUSED, JobStatus.ABORTED, JobStatus.DONE})
TASK_WRITABLE = frozenset(
    {TaskStatus.QUEUED, TaskStatus.FAILED, TaskStatus.ONHOLD, TaskStatus.EXCLUDED, TaskStatus.DONE}
)
#: Tasks that still have work to do (waiting for a slot or moving bytes).
TASK_ACTIVE = frozenset(
    {TaskStatus.PENDING, TaskStatus.QUEUED, TaskStatus.BOOTING, TaskStatus.EXECUTING}
)
TASK_IN_FLIGHT = frozenset({TaskStatus.BOOTING, TaskStatus.EXECUTING})

_J = JobStatus
_JOB_USER_EDGES: Mapping[JobStatus, frozenset[JobStatus]] = {
    # resume, retry, revive
    _J.WAITING: frozenset(
        {_J.INIT, _J.WAITING, _J.PAUSED, _J.FAILED, _J.ABORTED, _J.DONE, _J.RUNNING}
    ),
    _J.PAUSED: frozenset({_J.INIT, _J.WAITING, _J.RUNNING, _J.PAUSED, _J.FAILED}),
    _J.ABORTED: frozenset({_J.INIT, _J.WAITING, _J.RUNNING, _J.PAUSED, _J.FAILED, _J.ABORTED}),
    _J.DONE: frozenset(
        {_J.INIT, _J.WAITING, _J.RUNNING, _J.PAUSED, _J.FAILED, _J.ABORTED, _J.DONE}
    ),
}

_T = TaskStatus
_TASK_USER_EDGES: Mapping[TaskStatus, frozenset[TaskStatus]] = {
    _T.QUEUED: frozenset(_T),  # re-queue anything, even a done task (transfer it again)
    _T.ONHOLD: frozenset({_T.PENDING, _T.QUEUED, _T.FAILED, _T.ONHOLD, _T.BOOTING, _T.EXECUTING}),
    _T.EXCLUDED: frozenset(_T),
    _T.DONE: frozenset(_T),
    _T.FAILED: frozenset({_T.PENDING, _T.QUEUED, _T.BOOTING, _T.EXECUTING, _T.FAILED}),
}
_TASK_SYSTEM_EDGES: Mapping[TaskStatus, frozenset[TaskStatus]] = {
    _T.QUEUED: frozenset({_T.PENDING, _T.BOOTING, _T.EXECUTING, _T.FAILED, _T.QUEUED}),
    _T.BOOTING: frozenset({_T.QUEUED}),
    _T.EXECUTING: frozenset({_T.BOOTING, _T.QUEUED}),
    _T.DONE: frozenset({_T.BOOTING, _T.EXECUTING}),
    _T.FAILED: frozenset({_T.PENDING, _T.QUEUED, _T.BOOTING, _T.EXECUTING}),
    _T.EXCLUDED: frozenset({_T.PENDING, _T.QUEUED}),
}


def parse_job_status(value: str) -> JobStatus:
    try:
        return JobStatus(str(value).strip().lower())
    except ValueError:
        names = ", ".join(s.value for s in JobStatus)
        raise ValidationError(f"unknown job status {value!r}; expected one of {names}") from None


def parse_task_status(value: str) -> TaskStatus:
    try:
        return TaskStatus(str(value).strip().lower())
    except ValueError:
        names = ", ".join(s.value for s in TaskStatus)
        raise ValidationError(f"unknown task status {value!r}; expected one of {names}") from None


def check_job_transition(current: JobStatus, target: JobStatus) -> None:
    """Raise unless a user may move a job from ``current`` to ``target``."""
    if target not in JOB_WRITABLE:
        allowed = ", ".join(sorted(s.value for s in JOB_WRITABLE))
        raise InvalidTransitionError(
            f"a job's status cannot be set to {target.value!r}; a user may set {allowed}"
        )
    if current not in _JOB_USER_EDGES[target]:
        raise InvalidTransitionError(
            f"a job that is {current.value} cannot be set to {target.value}"
        )


def check_task_transition(current: TaskStatus, target: TaskStatus, *, system: bool = False) -> None:
    """Raise unless the move is allowed; ``system=True`` for the scheduler and agents."""
    if system:
        edges = _TASK_SYSTEM_EDGES.get(target, frozenset())
        if current not in edges:
            raise InvalidTransitionError(
                f"a task that is {current.value} cannot become {target.value}"
            )
        return
    if target not in TASK_WRITABLE:
        allowed = ", ".join(sorted(s.value for s in TASK_WRITABLE))
        raise InvalidTransitionError(
            f"a task's status cannot be set to {target.value!r}; a user may set {allowed}"
        )
    if current not in _TASK_USER_EDGES[target]:
        raise InvalidTransitionError(
            f"a task that is {current.value} cannot be set to {target.value}"
        )


def rollup(current: JobStatus, counts: Mapping[TaskStatus, int]) -> JobStatus:
    """The job status its tasks imply. ``current`` keeps user holds (paused, aborted)."""
    if current is JobStatus.ABORTED:
        return current
    n = {s: counts.get(s, 0) for s in TaskStatus}
    active = n[_T.PENDING] + n[_T.QUEUED] + n[_T.BOOTING] + n[_T.EXECUTING]
    if current is JobStatus.INIT and active:
        return JobStatus.INIT
    if active:
        if current is JobStatus.PAUSED:
            return JobStatus.PAUSED
        if n[_T.BOOTING] or n[_T.EXECUTING] or n[_T.DONE] or n[_T.FAILED]:
            return JobStatus.RUNNING
        return JobStatus.WAITING
    if n[_T.FAILED]:
        return JobStatus.FAILED
    if n[_T.ONHOLD]:
        return JobStatus.PAUSED
    return JobStatus.DONE
