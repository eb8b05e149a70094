"""The catalog generation: a row the triggers change with every change of the workspace's
configuration, so a process may keep what it read of it (``services/catalog.py``).

Revision ID: 0012
Revises: 0011

"""

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from reelsync.db import generation

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "catalog_generation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_generation")),
    )
    # random from the start too: a database made again at the same URL never matches a
    # catalog a process kept of the one before
    op.execute(
        sa.text("INSERT INTO catalog_generation (id, value) VALUES (1, :start)").bindparams(
            start=secrets.randbits(62)
        )
    )
    dialect = op.get_bind().dialect.name
    for statement in generation.POSTGRESQL if dialect == "postgresql" else generation.SQLITE:
        op.execute(statement)


def downgrade() -> None:
    for statement in generation.DROP[op.get_bind().dialect.name]:
        op.execute(statement)
    op.drop_table("catalog_generation")
