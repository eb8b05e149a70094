"""Storage: SQLAlchemy 2 models, the Alembic migrations shipped in the package, and
:class:`Database` (engine + transactional sessions on SQLite or PostgreSQL)."""

from reelsync.db.database import Database, pool_size_for, upgrade_to_head

__all__ = ["Database", "pool_size_for", "upgrade_to_head"]
