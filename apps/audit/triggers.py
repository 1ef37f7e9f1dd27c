"""Database triggers that make the audit table append-only (see migration 0002).

The SQL lives here so that the migration, the test-only flush and the tests
that simulate tampering all use the same statements.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db.backends.base.base import BaseDatabaseWrapper
from psycopg import sql

TABLE = "audit_auditrecord"

POSTGRESQL_CREATE = f"""
CREATE OR REPLACE FUNCTION audit_record_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit records are append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_record_no_update_delete
    BEFORE UPDATE OR DELETE ON {TABLE}
    FOR EACH ROW EXECUTE FUNCTION audit_record_refuse_change();

CREATE TRIGGER audit_record_no_truncate
    BEFORE TRUNCATE ON {TABLE}
    FOR EACH STATEMENT EXECUTE FUNCTION audit_record_refuse_change();
"""

POSTGRESQL_DROP = f"""
DROP TRIGGER IF EXISTS audit_record_no_truncate ON {TABLE};
DROP TRIGGER IF EXISTS audit_record_no_update_delete ON {TABLE};
DROP FUNCTION IF EXISTS audit_record_refuse_change();
"""

PENDING_TABLE = "audit_pendingauditrecord"

# The sequencer's queue: rows are never changed, and a row may leave only once
# the record made from it is in the chain (same transaction). So a role that
# may DELETE here (the application's, which also runs the sequencer) still
# cannot drop a record before it is chained. Embedded SQLite never queues.
POSTGRESQL_PENDING_CREATE = f"""
CREATE OR REPLACE FUNCTION audit_pending_guard() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF EXISTS (SELECT 1 FROM {TABLE} WHERE pending_id = OLD.id) THEN
            RETURN OLD;
        END IF;
        RAISE EXCEPTION 'pending audit record % is not chained yet (DELETE refused)', OLD.id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RAISE EXCEPTION 'pending audit records are append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_pending_guard_update_delete
    BEFORE UPDATE OR DELETE ON {PENDING_TABLE}
    FOR EACH ROW EXECUTE FUNCTION audit_pending_guard();

CREATE TRIGGER audit_pending_no_truncate
    BEFORE TRUNCATE ON {PENDING_TABLE}
    FOR EACH STATEMENT EXECUTE FUNCTION audit_pending_guard();
"""  # noqa: S608 - constants of ours, no input

POSTGRESQL_PENDING_DROP = f"""
DROP TRIGGER IF EXISTS audit_pending_no_truncate ON {PENDING_TABLE};
DROP TRIGGER IF EXISTS audit_pending_guard_update_delete ON {PENDING_TABLE};
DROP FUNCTION IF EXISTS audit_pending_guard();
"""

# SQLite has no TRUNCATE; DELETE without WHERE still fires row triggers when
# a trigger exists (the truncate optimization is then disabled).
SQLITE_CREATE = (
    f"""CREATE TRIGGER audit_record_no_update BEFORE UPDATE ON {TABLE}
        BEGIN SELECT RAISE(ABORT, 'audit records are append-only (UPDATE refused)'); END;""",
    f"""CREATE TRIGGER audit_record_no_delete BEFORE DELETE ON {TABLE}
        BEGIN SELECT RAISE(ABORT, 'audit records are append-only (DELETE refused)'); END;""",
)
SQLITE_DROP = ("DROP TRIGGER IF EXISTS audit_record_no_update;", "DROP TRIGGER IF EXISTS audit_record_no_delete;")


@contextmanager
def audit_triggers_suspended(connection: BaseDatabaseWrapper) -> Iterator[None]:
    """Let this connection change audit rows for the duration (tests only).

    PostgreSQL: ``session_replication_role = replica`` skips ordinary triggers
    for this session only (needs a superuser, as the test database owner is).
    When the session runs as the application role (``SET ROLE``, as the test
    suite does), it steps back to the superuser it logged in as for the
    duration: the application role itself can do none of this.
    SQLite: the triggers are dropped and re-created.
    """
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT current_user, session_user")
            current, session = cursor.fetchone()
            if current != session:
                cursor.execute("SET ROLE NONE")
            cursor.execute("SET session_replication_role = replica")
            try:
                yield
            finally:
                cursor.execute("SET session_replication_role = DEFAULT")
                if current != session:
                    cursor.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(current)).as_string(cursor.connection))
        else:
            for statement in SQLITE_DROP:
                cursor.execute(statement)
            try:
                yield
            finally:
                for statement in SQLITE_CREATE:
                    cursor.execute(statement)
