from __future__ import annotations

import asyncio

import pytest

from reelsync.domain.fileops import FileOp, FileRequest, NoAgentFileOperator
from reelsync.errors import NotSupportedError, UnavailableError, ValidationError
from reelsync.server.accsyn.catalog import ENTITY_TYPES, attributes_for, check_supported


def test_entity_types_include_user() -> None:
    assert "user" in ENTITY_TYPES
    assert len(ENTITY_TYPES) > 2


@pytest.mark.parametrize(
    "kind", ["delivery", "compute", "request", "stream", "publish", "collection"]
)
def test_unsupported_kinds_say_so(kind: str) -> None:
    with pytest.raises(NotSupportedError, match="not supported by reelsync"):
        check_supported(kind)


def test_attribute_lists_by_role() -> None:
    assert "code" in attributes_for("queue", role="employee", create=False, update=False)
    assert "priority" in attributes_for("queue", role="admin", create=True, update=False)
    assert attributes_for("queue", role="employee", create=True, update=False) == []
    assert attributes_for(
        "'Transfer'", role="standard", create=False, update=False
    ) == attributes_for("job", role="standard", create=False, update=False)
    assert "status" in attributes_for("task", role="employee", create=False, update=True)
    # Deliveries are not served, but described: scripts inspect the model before choosing.
    delivery = attributes_for("delivery", role="standard", create=False, update=False)
    assert {"code", "name", "public"} <= set(delivery)
    assert not {"data", "config"} & set(delivery)
    assert attributes_for("delivery", role="admin", create=True, update=False) == []
    with pytest.raises(ValidationError, match="unknown entity type"):
        attributes_for("spaceship", role="admin", create=False, update=False)


def test_no_agent_operator_says_which_volume() -> None:
    request = FileRequest(FileOp.LS, volume_id="0" * 24, volume_code="projects", path="proj001")
    with pytest.raises(UnavailableError, match="no agent serves volume 'projects'"):
        asyncio.run(NoAgentFileOperator().run(request))
    assert FileOp.MKDIR.writes
    assert not FileOp.LS.writes
