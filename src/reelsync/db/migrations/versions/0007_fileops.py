"""File operations across control-plane processes: ``fileop`` (a mailbox row per operation).

Revision ID: 0007
Revises: 0006

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "fileop",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("server_id", sa.String(length=24), nullable=False),
        sa.Column("request", _JSON, nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answer", _JSON, nullable=True),
        sa.ForeignKeyConstraint(
            ["server_id"],
            ["server.id"],
            name=op.f("fk_fileop_server_id_server"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fileop")),
    )
    with op.batch_alter_table("fileop", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fileop_server_id"), ["server_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("fileop", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fileop_server_id"))
    op.drop_table("fileop")
