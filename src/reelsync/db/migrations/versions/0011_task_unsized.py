"""A job's tasks whose size is not known yet, by job: the progress rule asks on every report
whether any is left, which without this index walks every task of the job.

Revision ID: 0011
Revises: 0010

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UNSIZED = "size IS NULL"


def upgrade() -> None:
    op.create_index(
        "ix_task_unsized",
        "task",
        ["job_id"],
        sqlite_where=sa.text(_UNSIZED),
        postgresql_where=sa.text(_UNSIZED),
    )


def downgrade() -> None:
    op.drop_index("ix_task_unsized", table_name="task")
