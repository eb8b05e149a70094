from __future__ import annotations

from typing import Any

import pytest

from reelsync.errors import NotSupportedError, QuerySyntaxError, ValidationError
from reelsync.server.accsyn import dispatch
from reelsync.server.accsyn.selection import select
from reelsync.server.accsyn.wire import parse_envelope

RECORDS: list[dict[str, Any]] = [
    {"id": "a" * 24, "code": "proj001", "user": "1" * 24, "user_code": "lisa@x.com", "size": 1},
    {"id": "b" * 24, "code": "proj002", "user": "2" * 24, "user_code": "bob@x.com", "size": 2},
    {"id": "c" * 24, "code": "backup", "user": "1" * 24, "user_code": "lisa@x.com", "size": 3},
]


def find(**envelope: Any) -> list[dict[str, Any]]:
    return select(parse_envelope({"uri": "job/find", **envelope}), RECORDS)


def test_query_id_and_references() -> None:
    assert [r["size"] for r in find(query="code='proj*'")] == [1, 2]
    assert [r["size"] for r in find(query="user=lisa@x.com")] == [1, 3]
    assert [r["size"] for r in find(query=f"user={'2' * 24}")] == [2]
    assert [r["size"] for r in find(query="Job WHERE size>=2")] == [2, 3]
    assert [r["size"] for r in find(id="B" * 24)] == [2]
    assert find(query="backup")[0]["size"] == 3  # lone value: id, code or e-mail
    assert [r["size"] for r in find(query="user.code=lisa@x.com")] == [1, 3]
    assert [r["size"] for r in find(query="user.email='BOB@x.com'")] == [2]
    assert [r["size"] for r in find(query=f"user.id={'2' * 24}")] == [2]
    assert [r["size"] for r in find(query="code in 'proj002,backup'")] == [2, 3]
    with pytest.raises(ValidationError, match="job has no attribute 'colour'"):
        find(query="colour=red")
    assert find(query="type=2 AND default=true") == []  # queues are jobs: their attributes too


def test_paging_and_attributes_and_no_helper_keys() -> None:
    assert [r["size"] for r in find(data={"skip": 1, "limit": 1})] == [2]
    assert find(data={"attributes": ["code"]})[0] == {"id": "a" * 24, "code": "proj001"}
    assert all("user_code" not in r for r in find())
    with pytest.raises(ValidationError, match="limit must be a whole number"):
        find(data={"limit": -1})
    with pytest.raises(ValidationError, match="attributes must be a list"):
        find(data={"attributes": "code"})
    with pytest.raises(QuerySyntaxError, match="at the end of the query"):
        find(query="code=")


def test_dispatch_errors() -> None:
    from reelsync.server.accsyn import handlers

    handlers.register()
    assert ("PUT", "task/edit") in dispatch.routes()
    assert ("GET", "job/task/find") in dispatch.routes()
    with pytest.raises(NotSupportedError, match="deliveries"):
        dispatch.lookup("POST", ("delivery", "create"))
    with pytest.raises(NotSupportedError, match="delivery recipients"):
        dispatch.lookup("PUT", ("job", "recipient", "add"))
    with pytest.raises(NotSupportedError, match="publishing"):
        dispatch.lookup("PUT", ("workspace", "publish", "preprocess"))
    with pytest.raises(ValidationError, match="unknown operation GET 'queue/explode'"):
        dispatch.lookup("GET", ("queue", "explode"))
    with pytest.raises(ValidationError, match="unknown entity type 'spaceship'"):
        dispatch.lookup("GET", ("spaceship", "find"))
    with pytest.raises(ValidationError, match="GET is not an operation on 'setting'|setting"):
        dispatch.lookup("PATCH", ("setting",))


def test_public_api_is_pinned() -> None:
    import reelsync.domain.fileops as fileops
    import reelsync.server.accsyn as accsyn

    assert accsyn.__all__ == ["LOOKUP_PATH", "Backend", "build_router"]
    assert fileops.__all__ == ["FileOp", "FileOperator", "FileRequest", "NoAgentFileOperator"]
