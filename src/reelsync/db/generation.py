"""The catalog generation: one row whose value changes, from database triggers, in every
transaction that changes what the workspace is configured with (workspace, sites, volumes and
their paths, queues, settings, grants, webhooks, users, API keys but their last-used time).

Rules: the value is a fresh random number on each change, never a count, so a change rolled
back never comes back as the value of another one; a process may keep anything it read from
those tables for as long as the value it read with it is the one in the row
(:mod:`reelsync.services.catalog`). The triggers are fixed text built from the constants here.
"""

from __future__ import annotations

__all__ = ["DROP", "POSTGRESQL", "SQLITE", "WATCHED"]


#: table -> the columns whose update counts ("" = any update)
WATCHED: dict[str, str] = {
    "workspace": "",
    "site": "",
    "volume": "",
    "volume_path": "",
    "queue": "",
    "setting": "",
    "acl": "",
    "webhook": "",
    "user_account": "",
    "api_key": "user_id, prefix, key_hash, expires_at, revoked_at",
}

_SQLITE_BUMP = "UPDATE catalog_generation SET value = random() WHERE id = 1;"


def _sqlite() -> tuple[str, ...]:
    out: list[str] = []
    for table, columns in WATCHED.items():
        update = f"UPDATE OF {columns}" if columns else "UPDATE"
        for event, name in (("INSERT", "i"), (update, "u"), ("DELETE", "d")):
            out.append(
                f"CREATE TRIGGER catalog_{table}_{name} AFTER {event} ON {table}"
                f" BEGIN {_SQLITE_BUMP} END"
            )
    return tuple(out)


def _postgresql() -> tuple[str, ...]:
    out = [
        """CREATE FUNCTION catalog_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE catalog_generation SET value = floor(random() * 9.0e18)::bigint WHERE id = 1;
    RETURN NULL;
END $$"""
    ]
    for table, columns in WATCHED.items():
        update = f"UPDATE OF {columns}" if columns else "UPDATE"
        out.append(
            f"CREATE TRIGGER catalog_{table} AFTER INSERT OR {update} OR DELETE ON {table}"
            " FOR EACH STATEMENT EXECUTE FUNCTION catalog_bump()"
        )
    return tuple(out)


SQLITE = _sqlite()
POSTGRESQL = _postgresql()
DROP: dict[str, tuple[str, ...]] = {
    "sqlite": tuple(
        f"DROP TRIGGER IF EXISTS catalog_{table}_{name}"
        for table in WATCHED
        for name in ("i", "u", "d")
    ),
    "postgresql": (
        *(f"DROP TRIGGER IF EXISTS catalog_{table} ON {table}" for table in WATCHED),
        "DROP FUNCTION IF EXISTS catalog_bump()",
    ),
}
