from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reelsync.db import Database
from reelsync.domain.records import Actor, Role
from reelsync.errors import (
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PathError,
    PermissionDeniedError,
    ValidationError,
)
from reelsync.services import acls, apikeys, auth, queues, sites, users, volumes, workspace
from reelsync.services.bootstrap import InitResult, init_workspace


def _actor(user) -> Actor:
    return Actor(user_id=user.id, email=user.email, role=user.role)


def test_init_seeds_the_workspace(database: Database, workspace: InitResult, admin: Actor) -> None:
    assert workspace.api_key.startswith("rsk_")
    assert len(workspace.api_key) == 68
    assert workspace.main_site.code == "hq"
    assert workspace.main_site.main
    assert workspace_code(database) == "acmepost"
    qs = {q.code: q for q in queues.list_queues(database, admin)}
    assert (qs["high"].priority, qs["medium"].priority, qs["low"].priority) == (999, 500, 1)
    assert [q.code for q in qs.values() if q.default] == ["medium"]
    assert queues.get_queue(database, admin, "High").code == "high"
    with pytest.raises(ConflictError):
        init_workspace(database, "other", "x@y.com")


def workspace_code(db: Database) -> str:
    return workspace.get_workspace(db).code


def test_api_keys_authenticate_hashed_expire_and_revoke(
    database: Database, workspace: InitResult, admin: Actor
) -> None:
    actor = auth.authenticate(database, workspace.api_key)
    assert actor == admin
    assert auth.authenticate(database, workspace.api_key, email="ADMIN@acmepost.com") == admin
    with pytest.raises(AuthenticationError):
        auth.authenticate(database, workspace.api_key, email="other@acmepost.com")
    with pytest.raises(AuthenticationError):
        auth.authenticate(
            database, workspace.api_key[:-1] + ("1" if workspace.api_key[-1] == "0" else "0")
        )
    with pytest.raises(AuthenticationError):
        auth.authenticate(database, "")
    # stored hashed: the plain key is nowhere in the database
    with database.session() as s:
        from sqlalchemy import select

        from reelsync.db import models as m

        stored = s.execute(select(m.ApiKey.prefix, m.ApiKey.key_hash)).all()
    assert all(workspace.api_key not in (p, h) for p, h in stored)
    user = users.create_user(database, admin, email="Lisa@acmepost.com", role="employee")
    key, plain = apikeys.create_api_key(database, admin, "lisa@acmepost.com", description="ci")
    assert auth.authenticate(database, plain).email == "lisa@acmepost.com"
    lisa = _actor(user)
    assert [k.id for k in apikeys.list_api_keys(database, lisa, user.id)] == [key.id]
    with pytest.raises(PermissionDeniedError):
        apikeys.list_api_keys(database, lisa, "admin@acmepost.com")
    apikeys.revoke_api_key(database, lisa, user.id, key.id)
    with pytest.raises(AuthenticationError):
        auth.authenticate(database, plain)
    with pytest.raises(ValidationError):
        apikeys.create_api_key(
            database, admin, user.id, expires_at=datetime.now(UTC) - timedelta(seconds=1)
        )
    short, plain2 = apikeys.create_api_key(
        database, admin, user.id, expires_at=datetime.now(UTC) + timedelta(seconds=60)
    )
    assert short.expires_at is not None
    assert auth.authenticate(database, plain2).user_id == user.id
    users.update_user(database, admin, user.id, enabled=False)
    with pytest.raises(AuthenticationError, match="disabled"):
        auth.authenticate(database, plain2)


def test_api_key_last_use_is_recorded_at_most_once_a_minute(
    database: Database, workspace: InitResult, admin: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    key, plain = apikeys.create_api_key(database, admin, admin.user_id, description="tool")
    assert key.last_used_at is None

    def last_used() -> datetime | None:
        (found,) = [
            k for k in apikeys.list_api_keys(database, admin, admin.user_id) if k.id == key.id
        ]
        return found.last_used_at

    before = datetime.now(UTC)
    auth.authenticate(database, plain)
    first = last_used()
    assert first is not None
    assert before - timedelta(seconds=1) <= first <= datetime.now(UTC)
    auth.authenticate(database, plain)  # within the minute: not written again
    assert last_used() == first
    # a minute later (the resolution made 0): a failed attempt (wrong e-mail) does not count
    # as a use, a good one is written again
    monkeypatch.setattr(auth, "LAST_USED_RESOLUTION", timedelta(0))
    with pytest.raises(AuthenticationError):
        auth.authenticate(database, plain, email="someone@else.com")
    assert last_used() == first
    auth.authenticate(database, plain)
    refreshed = last_used()
    assert refreshed is not None
    assert refreshed > first


def test_users_roles_and_visibility(database: Database, admin: Actor) -> None:
    emp = users.create_user(database, admin, email="emp@acmepost.com", role=Role.EMPLOYEE)
    std = users.create_user(database, admin, email="std@acmepost.com", name="Std")
    assert std.role is Role.STANDARD
    with pytest.raises(ConflictError):
        users.create_user(database, admin, email="EMP@acmepost.com")
    with pytest.raises(ValidationError):
        users.create_user(database, admin, email="not-an-email")
    with pytest.raises(ValidationError):
        users.create_user(database, admin, email="a@b.c", role="boss")
    e, s = _actor(emp), _actor(std)
    with pytest.raises(PermissionDeniedError):
        users.create_user(database, e, email="x@acmepost.com")
    assert {u.email for u in users.list_users(database, e)} == {
        "emp@acmepost.com",
        "std@acmepost.com",
    }
    assert [u.email for u in users.list_users(database, s)] == ["std@acmepost.com"]
    with pytest.raises(NotFoundError):
        users.get_user(database, s, "admin@acmepost.com")
    assert users.update_user(database, s, std.id, name="Standard").name == "Standard"
    with pytest.raises(PermissionDeniedError):
        users.update_user(database, s, std.id, role="admin")
    with pytest.raises(ConflictError, match="last enabled admin"):
        users.update_user(database, admin, admin.user_id, role="employee")
    with pytest.raises(ConflictError):
        users.delete_user(database, admin, admin.user_id)
    users.delete_user(database, admin, std.id)
    with pytest.raises(NotFoundError):
        users.get_user(database, admin, std.id)


def test_sites_one_main(database: Database, admin: Actor) -> None:
    london = sites.create_site(database, admin, code="London", name="London office")
    assert london.code == "london"
    assert not london.main
    with pytest.raises(ConflictError):
        sites.create_site(database, admin, code="london")
    with pytest.raises(ValidationError):
        sites.create_site(database, admin, code="bad code!")
    with pytest.raises(ValidationError):
        sites.create_site(database, admin, code="x" * 33)
    sites.update_site(database, admin, "london", main=True)
    mains = [s.code for s in sites.list_sites(database, admin) if s.main]
    assert mains == ["london"]
    with pytest.raises(ConflictError):
        sites.delete_site(database, admin, "london")
    sites.update_site(database, admin, "hq", main=True)
    sites.delete_site(database, admin, "london")
    with pytest.raises(NotFoundError):
        sites.get_site(database, admin, "london")


def test_volumes_default_paths_and_acl_visibility(database: Database, admin: Actor) -> None:
    sites.create_site(database, admin, code="london")
    v = volumes.create_volume(
        database,
        admin,
        code="projects",
        paths={"hq": "/mnt/projects/", "london": "D:\\data\\projects"},
    )
    assert v.default  # the first volume
    assert v.paths == {"hq": "/mnt/projects", "london": "D:/data/projects"}
    other = volumes.create_volume(
        database, admin, code="archive", default=True, paths={"hq": "\\\\nas\\archive"}
    )
    assert other.default
    assert other.paths == {"hq": "//nas/archive"}
    assert not volumes.get_volume(database, admin, "projects").default
    assert volumes.get_volume(database, admin, "(default)").code == "archive"
    with pytest.raises(PathError):
        volumes.create_volume(database, admin, code="rel", paths={"hq": "relative/path"})
    with pytest.raises(PathError):
        volumes.update_volume(database, admin, "projects", paths={"hq": "/mnt/../etc"})
    with pytest.raises(NotFoundError):
        volumes.update_volume(database, admin, "projects", paths={"paris": "/x"})
    updated = volumes.update_volume(database, admin, "projects", paths={"london": None})
    assert updated.paths == {"hq": "/mnt/projects"}
    emp = _actor(users.create_user(database, admin, email="e@acmepost.com", role="employee"))
    assert volumes.list_volumes(database, emp) == []
    acl = acls.grant(
        database,
        admin,
        user="e@acmepost.com",
        volume="projects",
        path="/proj001/",
        read=True,
        write=True,
    )
    assert acl.path == "proj001"
    again = acls.grant(
        database,
        admin,
        user="e@acmepost.com",
        volume="projects",
        path="proj001",
        read=True,
        write=False,
    )
    assert again.id == acl.id
    assert not again.write
    assert [x.code for x in volumes.list_volumes(database, emp)] == ["projects"]
    assert [a.id for a in acls.list_acls(database, emp)] == [acl.id]
    with pytest.raises(ValidationError):
        acls.grant(
            database, admin, user="e@acmepost.com", volume="projects", read=False, write=False
        )
    with pytest.raises(PermissionDeniedError):
        acls.grant(database, emp, user="e@acmepost.com", volume="archive")
    acls.revoke_acl(database, admin, acl.id)
    assert acls.list_acls(database, admin) == []
    with pytest.raises(ConflictError):
        volumes.delete_volume(database, admin, "archive")
    volumes.delete_volume(database, admin, "projects")


def test_queues(database: Database, admin: Actor) -> None:
    q = queues.create_queue(database, admin, code="proj001", priority=700)
    assert (q.name, q.priority, q.default) == ("proj001", 700, False)
    with pytest.raises(ValidationError):
        queues.create_queue(database, admin, code="x", priority=1001)
    with pytest.raises(ConflictError):
        queues.create_queue(database, admin, code="PROJ001")
    queues.update_queue(database, admin, "proj001", default=True, paused=True)
    assert queues.get_queue(database, admin, "medium").default is False
    with pytest.raises(ConflictError):
        queues.delete_queue(database, admin, "proj001")
    queues.delete_queue(database, admin, "low")
    with pytest.raises(NotFoundError):
        queues.get_queue(database, admin, "low")
