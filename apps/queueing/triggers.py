"""Database triggers that keep each queue's count of waiting entries (see migration 0010).

Every change of who waits used to count the queue's waiting entries to put
the size of the line into its one broadcast message: a walk of an index
over every waiting entry, about 0.7 ms per change with 2,500 waiting in a
queue and growing with the line (issue 18 asks for O(1) per change). The
count is now a column of the queue, kept by the database on every insert,
update and delete of an entry, whoever writes it (a service, a bulk
update, a data migration): it cannot drift from what the rows say.

PostgreSQL: statement-level triggers with transition tables, so a
dispatch batch's one UPDATE of 16 entries adds one UPDATE of its queue,
not 16. Queues are updated in id order, the order in which
``_queue_moved`` bumps them, so two moves in opposite directions never
deadlock. SQLite (the embedded default): row-level triggers.
"""

from __future__ import annotations

ENTRY_TABLE = "queueing_queueentry"
QUEUE_TABLE = "queueing_servicequeue"
WAITING = "waiting"

# The per-queue net change of waiting entries in one statement's rows.
_DELTAS = {
    "INSERT": f"SELECT queue_id, 1 AS delta FROM new_rows WHERE state = '{WAITING}'",
    "DELETE": f"SELECT queue_id, -1 AS delta FROM old_rows WHERE state = '{WAITING}'",
    "UPDATE": (
        f"SELECT queue_id, -1 AS delta FROM old_rows WHERE state = '{WAITING}' "
        f"UNION ALL SELECT queue_id, 1 FROM new_rows WHERE state = '{WAITING}'"
    ),
}


def _postgresql_function(operation: str) -> str:
    name = f"queueing_waiting_count_{operation.lower()}"
    return f"""
CREATE OR REPLACE FUNCTION {name}() RETURNS trigger AS $$
DECLARE
    change record;
BEGIN
    FOR change IN
        SELECT queue_id, sum(delta) AS delta FROM ({_DELTAS[operation]}) AS changes
        GROUP BY queue_id HAVING sum(delta) <> 0 ORDER BY queue_id
    LOOP
        UPDATE {QUEUE_TABLE} SET waiting_count = waiting_count + change.delta WHERE id = change.queue_id;
    END LOOP;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
"""


# A trigger with transition tables takes one event, hence three.
_REFERENCING = {
    "INSERT": "REFERENCING NEW TABLE AS new_rows",
    "DELETE": "REFERENCING OLD TABLE AS old_rows",
    "UPDATE": "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
}

POSTGRESQL_CREATE = "".join(
    _postgresql_function(operation)
    + f"""
CREATE TRIGGER queueing_waiting_count_{operation.lower()}
    AFTER {operation} ON {ENTRY_TABLE} {_REFERENCING[operation]}
    FOR EACH STATEMENT EXECUTE FUNCTION queueing_waiting_count_{operation.lower()}();
"""
    for operation in ("INSERT", "UPDATE", "DELETE")
)

POSTGRESQL_DROP = "".join(
    f"""
DROP TRIGGER IF EXISTS queueing_waiting_count_{operation} ON {ENTRY_TABLE};
DROP FUNCTION IF EXISTS queueing_waiting_count_{operation}();
"""
    for operation in ("insert", "update", "delete")
)

SQLITE_CREATE = (
    f"""
CREATE TRIGGER queueing_waiting_count_insert AFTER INSERT ON {ENTRY_TABLE} WHEN NEW.state = '{WAITING}'
BEGIN
    UPDATE {QUEUE_TABLE} SET waiting_count = waiting_count + 1 WHERE id = NEW.queue_id;
END
""",
    f"""
CREATE TRIGGER queueing_waiting_count_delete AFTER DELETE ON {ENTRY_TABLE} WHEN OLD.state = '{WAITING}'
BEGIN
    UPDATE {QUEUE_TABLE} SET waiting_count = waiting_count - 1 WHERE id = OLD.queue_id;
END
""",
    f"""
CREATE TRIGGER queueing_waiting_count_update AFTER UPDATE OF state, queue_id ON {ENTRY_TABLE}
WHEN OLD.state = '{WAITING}' OR NEW.state = '{WAITING}'
BEGIN
    UPDATE {QUEUE_TABLE} SET waiting_count = waiting_count - 1 WHERE id = OLD.queue_id AND OLD.state = '{WAITING}';
    UPDATE {QUEUE_TABLE} SET waiting_count = waiting_count + 1 WHERE id = NEW.queue_id AND NEW.state = '{WAITING}';
END
""",
)

SQLITE_DROP = tuple(
    f"DROP TRIGGER IF EXISTS queueing_waiting_count_{operation}" for operation in ("insert", "update", "delete")
)

# Every queue's count from its rows (the migration's starting point).
RECOUNT = (
    f"UPDATE {QUEUE_TABLE} SET waiting_count = "
    f"(SELECT count(*) FROM {ENTRY_TABLE} e WHERE e.queue_id = {QUEUE_TABLE}.id AND e.state = '{WAITING}')"
)
