"""Making a workspace: schema, the workspace row, the main site ``hq``, the seeded queues, the
first admin and their API key.

Rules: a database holds one workspace; a second init is a ConflictError that changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from reelsync.db import Database
from reelsync.db import models as m
from reelsync.db.types import utcnow
from reelsync.domain.codes import parse_code
from reelsync.domain.ids import new_entity_id
from reelsync.domain.records import ApiKey, Role, Site, User, Workspace
from reelsync.errors import ConflictError
from reelsync.services import queues, sites, users
from reelsync.services.apikeys import add_api_key

__all__ = ["InitResult", "init_workspace"]


@dataclass(frozen=True, slots=True)
class InitResult:
    workspace: Workspace
    admin: User
    api_key: str  # plain, shown once
    key: ApiKey
    main_site: Site


def init_workspace(
    db: Database,
    workspace_code: str,
    admin_email: str,
    *,
    admin_name: str = "",
    main_site: str = "hq",
) -> InitResult:
    """Upgrade the schema and seed a fresh workspace. Returns the admin's plain API key."""
    db.upgrade()
    code = parse_code("workspace", workspace_code)
    with db.session() as session:
        existing = session.scalar(select(m.Workspace.code).limit(1))
        if existing is not None:
            raise ConflictError(f"this database already holds workspace {existing!r}")
        workspace = m.Workspace(
            id=new_entity_id(), code=code, name=workspace_code.strip(), created=utcnow()
        )
        session.add(workspace)
        site = sites.add_site(session, code=main_site, name=main_site, main=True)
        for q_code, q_name, priority, default in queues.SEEDED_QUEUES:
            queues.add_queue(session, code=q_code, name=q_name, priority=priority, default=default)
        admin = users.add_user(session, email=admin_email, name=admin_name, role=Role.ADMIN)
        key, plain = add_api_key(session, admin.id, description="created by server init")
        session.flush()
        return InitResult(
            workspace=Workspace(
                id=workspace.id, code=workspace.code, name=workspace.name, created=workspace.created
            ),
            admin=users.record(admin),
            api_key=plain,
            key=key,
            main_site=sites.record(site),
        )
