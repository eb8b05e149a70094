"""Running totals for /metrics: the ``tally`` table, fed by triggers on job and task, seeded
with what the database holds now.

Revision ID: 0010
Revises: 0009

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from reelsync.db import tally

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SEED = (
    "INSERT INTO tally (kind, queue_id, source_site_id, destination_site_id, status, n, bytes)"
    " SELECT 'job', queue_id, source_site_id, destination_site_id, status, count(*), 0"
    " FROM job GROUP BY queue_id, source_site_id, destination_site_id, status",
    "INSERT INTO tally (kind, queue_id, source_site_id, destination_site_id, status, n, bytes)"
    " SELECT 'task', job.queue_id, job.source_site_id, job.destination_site_id, task.status,"
    " count(*), COALESCE(sum(CASE WHEN task.status = 'done' THEN COALESCE(task.size, 0)"
    " ELSE 0 END), 0) FROM task JOIN job ON job.id = task.job_id"
    " GROUP BY job.queue_id, job.source_site_id, job.destination_site_id, task.status",
)


def upgrade() -> None:
    op.create_table(
        "tally",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("queue_id", sa.String(length=24), nullable=False),
        sa.Column("source_site_id", sa.String(length=24), nullable=False),
        sa.Column("destination_site_id", sa.String(length=24), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tally")),
    )
    dialect = op.get_bind().dialect.name
    for statement in _SEED:
        op.execute(statement)
    for statement in tally.POSTGRESQL if dialect == "postgresql" else tally.SQLITE:
        op.execute(statement)


def downgrade() -> None:
    for statement in tally.DROP[op.get_bind().dialect.name]:
        op.execute(statement)
    op.drop_table("tally")
