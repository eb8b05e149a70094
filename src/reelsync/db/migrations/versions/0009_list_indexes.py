"""Indexes for lists at a studio's size: jobs newest first (all, by status, user, queue, the live
ones), job names case-insensitively, a job's tasks in uri order, finished tasks by age.

Revision ID: 0009
Revises: 0008

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LIVE = "status NOT IN ('done', 'aborted')"


def upgrade() -> None:
    op.create_index("ix_job_created", "job", ["created", "id"])
    op.create_index("ix_job_status_created", "job", ["status", "created", "id"])
    op.create_index("ix_job_user_created", "job", ["user_id", "created", "id"])
    op.create_index("ix_job_queue_created", "job", ["queue_id", "created", "id"])
    op.create_index(
        "ix_job_live",
        "job",
        ["created", "id"],
        sqlite_where=sa.text(_LIVE),
        postgresql_where=sa.text(_LIVE),
    )
    op.create_index("ix_job_name_lower", "job", [sa.text("lower(name)")])
    op.drop_index("ix_job_user_id", table_name="job")
    op.drop_index("ix_job_queue_id", table_name="job")
    op.create_index("ix_task_job_order", "task", ["job_id", sa.text("length(uri)"), "uri"])
    op.create_index(
        "ix_task_finished",
        "task",
        ["finished"],
        sqlite_where=sa.text("finished IS NOT NULL"),
        postgresql_where=sa.text("finished IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_task_finished", table_name="task")
    op.drop_index("ix_task_job_order", table_name="task")
    op.create_index("ix_job_queue_id", "job", ["queue_id"])
    op.create_index("ix_job_user_id", "job", ["user_id"])
    for name in (
        "ix_job_name_lower",
        "ix_job_live",
        "ix_job_queue_created",
        "ix_job_user_created",
        "ix_job_status_created",
        "ix_job_created",
    ):
        op.drop_index(name, table_name="job")
