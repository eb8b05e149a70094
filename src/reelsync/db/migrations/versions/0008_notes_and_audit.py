"""accsyn round 2: every entity's notes (``description``, ``metadata``, ``creator_id``,
``modifier_id``), a volume's ``email`` and ``queue_id``, per-OS volume prefixes
(``volume_path.os_prefixes``), a job's ``modifier_id``, the workspace's ``description``, and the
``audit_event`` table (a user deleted with their jobs aborted).

Revision ID: 0008
Revises: 0007

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_NOTED = ("user_account", "site", "volume", "queue", "server")


def upgrade() -> None:
    for table in _NOTED:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("description", sa.Text(), nullable=True))
            batch_op.add_column(sa.Column("metadata", _JSON, nullable=True))
            batch_op.add_column(sa.Column("creator_id", sa.String(length=24), nullable=True))
            batch_op.add_column(sa.Column("modifier_id", sa.String(length=24), nullable=True))
    with op.batch_alter_table("workspace", schema=None) as batch_op:
        batch_op.add_column(sa.Column("description", sa.Text(), nullable=True))
    with op.batch_alter_table("volume", schema=None) as batch_op:
        batch_op.add_column(sa.Column("email", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("queue_id", sa.String(length=24), nullable=True))
    with op.batch_alter_table("volume_path", schema=None) as batch_op:
        batch_op.add_column(sa.Column("os_prefixes", _JSON, nullable=True))
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("modifier_id", sa.String(length=24), nullable=True))
    op.create_table(
        "audit_event",
        sa.Column("id", sa.String(length=24), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_id", sa.String(length=24), nullable=True),
        sa.Column("actor", sa.String(length=320), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("entity_type", sa.String(length=32), nullable=False),
        sa.Column("entity_id", sa.String(length=36), nullable=False),
        sa.Column("detail", _JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_event")),
    )
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_event_created"), ["created"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_event_created"))
    op.drop_table("audit_event")
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_column("modifier_id")
    with op.batch_alter_table("volume_path", schema=None) as batch_op:
        batch_op.drop_column("os_prefixes")
    with op.batch_alter_table("volume", schema=None) as batch_op:
        batch_op.drop_column("queue_id")
        batch_op.drop_column("email")
    with op.batch_alter_table("workspace", schema=None) as batch_op:
        batch_op.drop_column("description")
    for table in reversed(_NOTED):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("modifier_id")
            batch_op.drop_column("creator_id")
            batch_op.drop_column("metadata")
            batch_op.drop_column("description")
