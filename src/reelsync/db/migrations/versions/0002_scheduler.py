"""Scheduler: the listening agent and transfer batch of a task's lease, the dispatch index, and the
job's speed sample and estimated time remaining.

Revision ID: 0002
Revises: 0001

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.add_column(sa.Column("peer_id", sa.String(length=24), nullable=True))
        batch_op.add_column(sa.Column("transfer_id", sa.String(length=36), nullable=True))
        batch_op.create_foreign_key(
            op.f("fk_task_peer_id_server"), "server", ["peer_id"], ["id"], ondelete="SET NULL"
        )
        batch_op.create_index(
            "ix_task_dispatch", ["job_id", "status", "priority", "created"], unique=False
        )
        batch_op.create_index(
            "ix_task_transfer",
            ["transfer_id"],
            unique=False,
            sqlite_where=sa.text("transfer_id IS NOT NULL"),
            postgresql_where=sa.text("transfer_id IS NOT NULL"),
        )
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("etr", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("speed_sampled_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("speed_sampled_bytes", sa.BigInteger(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_column("speed_sampled_bytes")
        batch_op.drop_column("speed_sampled_at")
        batch_op.drop_column("etr")
    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_task_transfer",
            sqlite_where=sa.text("transfer_id IS NOT NULL"),
            postgresql_where=sa.text("transfer_id IS NOT NULL"),
        )
        batch_op.drop_index("ix_task_dispatch")
        batch_op.drop_constraint(op.f("fk_task_peer_id_server"), type_="foreignkey")
        batch_op.drop_column("transfer_id")
        batch_op.drop_column("peer_id")
