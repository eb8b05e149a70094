from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reelsync.domain.status import (
    JobStatus,
    TaskStatus,
    check_job_transition,
    check_task_transition,
    parse_job_status,
    rollup,
)
from reelsync.errors import InvalidTransitionError, ValidationError

J, T = JobStatus, TaskStatus


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ({}, J.DONE),
        ({T.EXCLUDED: 3}, J.DONE),
        ({T.DONE: 2, T.EXCLUDED: 1}, J.DONE),
        ({T.ONHOLD: 1, T.DONE: 2}, J.PAUSED),
        ({T.FAILED: 1, T.DONE: 5}, J.FAILED),
        ({T.FAILED: 1, T.ONHOLD: 1}, J.FAILED),
        ({T.QUEUED: 2}, J.WAITING),
        ({T.QUEUED: 2, T.DONE: 1}, J.RUNNING),
        ({T.EXECUTING: 1}, J.RUNNING),
    ],
)
def test_rollup_from_waiting(counts: dict[TaskStatus, int], expected: JobStatus) -> None:
    assert rollup(J.WAITING, counts) is expected


def test_paused_and_aborted_jobs_keep_their_hold() -> None:
    assert rollup(J.PAUSED, {T.QUEUED: 1}) is J.PAUSED
    assert rollup(J.ABORTED, {T.QUEUED: 1}) is J.ABORTED


def test_new_tasks_revive_a_done_job() -> None:
    assert rollup(J.DONE, {T.DONE: 3, T.QUEUED: 1}) is J.RUNNING


def test_user_job_edges() -> None:
    check_job_transition(J.PAUSED, J.WAITING)
    check_job_transition(J.DONE, J.WAITING)
    with pytest.raises(InvalidTransitionError, match="cannot be set to 'running'"):
        check_job_transition(J.WAITING, J.RUNNING)
    with pytest.raises(InvalidTransitionError, match="done cannot be set to paused"):
        check_job_transition(J.DONE, J.PAUSED)


def test_user_task_edges() -> None:
    check_task_transition(T.QUEUED, T.ONHOLD)
    with pytest.raises(InvalidTransitionError):
        check_task_transition(T.QUEUED, T.EXECUTING)
    with pytest.raises(InvalidTransitionError):
        check_task_transition(T.DONE, T.ONHOLD)
    check_task_transition(T.QUEUED, T.BOOTING, system=True)
    with pytest.raises(InvalidTransitionError):
        check_task_transition(T.DONE, T.EXECUTING, system=True)


def test_unknown_status_is_a_clear_error() -> None:
    with pytest.raises(ValidationError, match="unknown job status 'runing'"):
        parse_job_status("runing")


@given(st.dictionaries(st.sampled_from(list(TaskStatus)), st.integers(0, 5)))
def test_rollup_is_total_and_finished_only_without_active_work(
    counts: dict[TaskStatus, int],
) -> None:
    status = rollup(J.WAITING, counts)
    active = sum(counts.get(s, 0) for s in (T.PENDING, T.QUEUED, T.BOOTING, T.EXECUTING))
    if active:
        assert status in (J.WAITING, J.RUNNING)
    else:
        assert status in (J.DONE, J.FAILED, J.PAUSED)
