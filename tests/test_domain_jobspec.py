from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reelsync.domain.jobspec import parse_job_spec, parse_task_specs
from reelsync.domain.party import PartyKind
from reelsync.domain.status import JobStatus, TaskStatus
from reelsync.errors import NotSupportedError, ReelsyncError, ValidationError


def test_form_a_single_task_at_job_level() -> None:
    spec = parse_job_spec(
        {
            "source": "proj/a",
            "dest": "site=london",
            "queue": "High",
            "status": "paused",
            "mirror": "true",
        }
    )
    assert len(spec.tasks) == 1
    assert spec.tasks[0].destination is not None
    assert spec.tasks[0].destination.party.kind is PartyKind.SITE
    assert (spec.queue, spec.status, spec.mirror) == ("High", JobStatus.PAUSED, True)


def test_form_b_objects_and_bare_strings() -> None:
    spec = parse_job_spec(
        {
            "code": "n",
            "destination": "site=london",
            "tasks": [
                "a",
                {
                    "source": "b",
                    "priority": "700",
                    "status": "onhold",
                    "metadata": {"k": 1},
                    "settings": {"transfer_mode": "copy", "x": True},
                },
            ],
        }
    )
    assert spec.name == "n"
    assert spec.destination is not None
    a, b = spec.tasks
    assert a.destination is None
    assert a.uri is None
    assert (b.priority, b.status, dict(b.metadata)) == (700, TaskStatus.ONHOLD, {"k": 1})
    assert dict(b.settings) == {"transfer_mode": "copy", "x": "true"}


def test_form_c_keyed_by_uri_and_single_object() -> None:
    specs = parse_task_specs({"0": {"source": "a"}, "frames": {"source": "b"}})
    assert [s.uri for s in specs] == ["0", "frames"]
    single = parse_task_specs({"source": "a", "destination": "site=x"})
    assert len(single) == 1
    assert single[0].uri is None


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ([], ValidationError),
        ({}, ValidationError),
        ({"tasks": [{"destination": "site=x"}]}, ValidationError),
        ({"tasks": [{"source": "a", "bogus": 1}]}, ValidationError),
        ({"tasks": [{"source": "a", "destination": "x", "dest": "y"}]}, ValidationError),
        ({"tasks": ["a"], "type": 2}, NotSupportedError),
        ({"tasks": ["a"], "recipients": ["x@y"]}, NotSupportedError),
        ({"tasks": ["a"], "status": "nope"}, ValidationError),
        ({"tasks": ["a"], "append": "maybe"}, ValidationError),
        ({"tasks": [{"source": "a", "priority": 1001}]}, ValidationError),
        ({"tasks": [{"source": 5}]}, ValidationError),
        ({"tasks": ["a"], "name": ""}, ValidationError),
        ({"tasks": ["a"], "settings": {"k": [1]}}, ValidationError),
    ],
)
def test_bad_payloads(payload: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_job_spec(payload)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=10,
)


@given(
    st.dictionaries(
        st.sampled_from(
            [
                "tasks",
                "source",
                "destination",
                "dest",
                "queue",
                "status",
                "name",
                "settings",
                "metadata",
                "append",
                "mirror",
                "priority",
            ]
        ),
        _json,
        max_size=5,
    )
)
@settings(suppress_health_check=[HealthCheck.too_slow])  # generation is slow on a loaded machine
def test_any_json_parses_or_fails_cleanly(payload: dict) -> None:
    with contextlib.suppress(ReelsyncError):
        parse_job_spec(payload)
