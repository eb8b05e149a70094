"""Running totals for ``/metrics``: the ``tally`` table and the triggers that feed it.

Rules: every change of a job's status, queue or sites and of a task's status (or a done task's
size) inserts signed rows into ``tally`` in the same transaction, from database triggers, so no
code path can forget one: ``kind`` ``job`` counts jobs, ``task`` counts tasks and their bytes
once done, keyed by queue, site pair and status. Rows are only inserted (no counter row is ever
locked by two writers); :func:`compact_sql` folds them into one row per key now and then, so
summing the table costs what the number of keys does, not the history. Deleting a job removes
its tasks from the totals; pruning tasks does not (history keeps its totals).
"""

from __future__ import annotations

__all__ = ["DROP", "POSTGRESQL", "SQLITE"]

# The statements are fixed text built from constants here (no outside value reaches them).
# ruff: noqa: S608

_DONE_BYTES = "CASE WHEN {t}.status = 'done' THEN COALESCE({t}.size, 0) ELSE 0 END"
_COLUMNS = "kind, queue_id, source_site_id, destination_site_id, status, n, bytes"


def _job_row(row: str, sign: str) -> str:
    return (
        f"INSERT INTO tally ({_COLUMNS}) VALUES ('job', {row}.queue_id, {row}.source_site_id,"
        f" {row}.destination_site_id, {row}.status, {sign}1, 0)"
    )


def _job_tasks(row: str, sign: str) -> str:
    done = _DONE_BYTES.format(t="task")
    return (
        f"INSERT INTO tally ({_COLUMNS}) SELECT 'task', {row}.queue_id, {row}.source_site_id,"
        f" {row}.destination_site_id, task.status, {sign}count(*), {sign}COALESCE(sum({done}), 0)"
        f" FROM task WHERE task.job_id = {row}.id GROUP BY task.status"
    )


def _task_row(row: str, sign: str) -> str:
    done = _DONE_BYTES.format(t=row)
    return (
        f"INSERT INTO tally ({_COLUMNS}) SELECT 'task', job.queue_id, job.source_site_id,"
        f" job.destination_site_id, {row}.status, {sign}1, {sign}{done}"
        f" FROM job WHERE job.id = {row}.job_id"
    )


_MOVED = (
    "OLD.queue_id IS NOT NEW.queue_id OR OLD.source_site_id IS NOT NEW.source_site_id"
    " OR OLD.destination_site_id IS NOT NEW.destination_site_id"
)

SQLITE: tuple[str, ...] = (
    f"CREATE TRIGGER tally_job_insert AFTER INSERT ON job BEGIN {_job_row('NEW', '')}; END",
    "CREATE TRIGGER tally_job_update AFTER UPDATE OF status, queue_id, source_site_id,"
    f" destination_site_id ON job WHEN OLD.status IS NOT NEW.status OR {_MOVED} BEGIN"
    f" {_job_row('OLD', '-')}; {_job_row('NEW', '')}; END",
    "CREATE TRIGGER tally_job_move AFTER UPDATE OF queue_id, source_site_id, destination_site_id"
    f" ON job WHEN {_MOVED} BEGIN {_job_tasks('OLD', '-')}; {_job_tasks('NEW', '')}; END",
    "CREATE TRIGGER tally_job_delete BEFORE DELETE ON job BEGIN"
    f" {_job_row('OLD', '-')}; {_job_tasks('OLD', '-')}; END",
    f"CREATE TRIGGER tally_task_insert AFTER INSERT ON task BEGIN {_task_row('NEW', '')}; END",
    "CREATE TRIGGER tally_task_update AFTER UPDATE OF status, size ON task"
    " WHEN OLD.status IS NOT NEW.status OR (NEW.status = 'done' AND OLD.size IS NOT NEW.size)"
    f" BEGIN {_task_row('OLD', '-')}; {_task_row('NEW', '')}; END",
)

_PG_MOVED = _MOVED.replace("IS NOT", "IS DISTINCT FROM")
_PG_TASKS_CHANGED = f"""
    INSERT INTO tally ({_COLUMNS})
    SELECT 'task', job.queue_id, job.source_site_id, job.destination_site_id, c.status,
           sum(c.n), sum(c.bytes)
    FROM (
        SELECT job_id, status, -1 AS n, -({_DONE_BYTES.format(t="o")}) AS bytes FROM old_rows o
        UNION ALL
        SELECT job_id, status, 1, {_DONE_BYTES.format(t="r")} FROM new_rows r
    ) c JOIN job ON job.id = c.job_id
    GROUP BY job.queue_id, job.source_site_id, job.destination_site_id, c.status
    HAVING sum(c.n) <> 0 OR sum(c.bytes) <> 0;
"""

POSTGRESQL: tuple[str, ...] = (
    f"""CREATE FUNCTION tally_job() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        {_job_row("NEW", "")};
        RETURN NEW;
    ELSIF TG_OP = 'DELETE' THEN
        {_job_row("OLD", "-")};
        {_job_tasks("OLD", "-")};
        RETURN OLD;
    END IF;
    IF OLD.status IS DISTINCT FROM NEW.status OR {_PG_MOVED} THEN
        {_job_row("OLD", "-")};
        {_job_row("NEW", "")};
    END IF;
    IF {_PG_MOVED} THEN
        {_job_tasks("OLD", "-")};
        {_job_tasks("NEW", "")};
    END IF;
    RETURN NEW;
END $$""",
    "CREATE TRIGGER tally_job_insert AFTER INSERT ON job FOR EACH ROW EXECUTE FUNCTION tally_job()",
    "CREATE TRIGGER tally_job_update AFTER UPDATE ON job FOR EACH ROW EXECUTE FUNCTION tally_job()",
    "CREATE TRIGGER tally_job_delete BEFORE DELETE ON job FOR EACH ROW"
    " EXECUTE FUNCTION tally_job()",
    f"""CREATE FUNCTION tally_tasks_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO tally ({_COLUMNS})
    SELECT 'task', job.queue_id, job.source_site_id, job.destination_site_id, r.status,
           count(*), COALESCE(sum({_DONE_BYTES.format(t="r")}), 0)
    FROM new_rows r JOIN job ON job.id = r.job_id
    GROUP BY job.queue_id, job.source_site_id, job.destination_site_id, r.status;
    RETURN NULL;
END $$""",
    f"""CREATE FUNCTION tally_tasks_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {_PG_TASKS_CHANGED}
    RETURN NULL;
END $$""",
    "CREATE TRIGGER tally_task_insert AFTER INSERT ON task REFERENCING NEW TABLE AS new_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION tally_tasks_added()",
    "CREATE TRIGGER tally_task_update AFTER UPDATE ON task REFERENCING OLD TABLE AS old_rows"
    " NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION tally_tasks_changed()",
)

DROP: dict[str, tuple[str, ...]] = {
    "sqlite": tuple(
        f"DROP TRIGGER IF EXISTS {name}"
        for name in (
            "tally_job_insert",
            "tally_job_update",
            "tally_job_move",
            "tally_job_delete",
            "tally_task_insert",
            "tally_task_update",
        )
    ),
    "postgresql": (
        "DROP TRIGGER IF EXISTS tally_task_update ON task",
        "DROP TRIGGER IF EXISTS tally_task_insert ON task",
        "DROP TRIGGER IF EXISTS tally_job_delete ON job",
        "DROP TRIGGER IF EXISTS tally_job_update ON job",
        "DROP TRIGGER IF EXISTS tally_job_insert ON job",
        "DROP FUNCTION IF EXISTS tally_tasks_changed()",
        "DROP FUNCTION IF EXISTS tally_tasks_added()",
        "DROP FUNCTION IF EXISTS tally_job()",
    ),
}
