from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from reelsync.db import Database, upgrade_to_head
from reelsync.db.models import Base


# SQLite's reflection cannot read expression indexes (ix_job_name_lower, ix_task_job_order):
# the test below checks those by name instead.
@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based")
def test_migrations_build_the_models_schema(database_url: str) -> None:
    upgrade_to_head(database_url)
    upgrade_to_head(database_url)  # idempotent
    db = Database(database_url)
    try:
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
            assert diff == []
            tables = set(inspect(conn).get_table_names())
            if db.is_sqlite:
                listed = "SELECT name FROM sqlite_master WHERE type = 'index'"
            else:
                listed = "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
            indexes = set(conn.execute(text(listed)).scalars())
        assert {"ix_job_name_lower", "ix_task_job_order", "ix_job_live"} <= indexes
        assert {
            "workspace",
            "user_account",
            "api_key",
            "site",
            "volume",
            "volume_path",
            "server",
            "enrollment_token",
            "queue",
            "job",
            "task",
            "acl",
            "setting",
            "outbox",
            "webhook",
        } <= tables
    finally:
        db.dispose()


def test_sqlite_pragmas(tmp_path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x' / 'r.db'}")
    try:
        with db.engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30000
    finally:
        db.dispose()
