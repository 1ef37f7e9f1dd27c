"""Database-level append-only guarantee for the audit trail.

The model already refuses updates and deletes, but raw SQL, a shell or
another program could still change rows. These triggers make the database
itself refuse. A database owner can still drop a trigger; that is what the
hash chain (``manage.py audit_verify``) is for.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

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

# SQLite has no TRUNCATE; its DELETE-without-WHERE still fires row triggers
# when a trigger exists (the truncate optimization is disabled).
SQLITE_CREATE = [
    f"""CREATE TRIGGER audit_record_no_update BEFORE UPDATE ON {TABLE}
        BEGIN SELECT RAISE(ABORT, 'audit records are append-only (UPDATE refused)'); END;""",
    f"""CREATE TRIGGER audit_record_no_delete BEFORE DELETE ON {TABLE}
        BEGIN SELECT RAISE(ABORT, 'audit records are append-only (DELETE refused)'); END;""",
]
SQLITE_DROP = ["DROP TRIGGER IF EXISTS audit_record_no_update;", "DROP TRIGGER IF EXISTS audit_record_no_delete;"]


def create_triggers(apps: Any, schema_editor: Any) -> None:
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        # params=None: no placeholder parsing, the % below is PL/pgSQL's own.
        schema_editor.execute(POSTGRESQL_CREATE, params=None)
    elif vendor == "sqlite":
        for statement in SQLITE_CREATE:
            schema_editor.execute(statement)
    else:  # pragma: no cover - only PostgreSQL and SQLite are supported
        raise RuntimeError(f"No append-only triggers for database vendor {vendor!r}.")


def drop_triggers(apps: Any, schema_editor: Any) -> None:
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(POSTGRESQL_DROP)
    elif vendor == "sqlite":
        for statement in SQLITE_DROP:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]

    operations = [migrations.RunPython(create_triggers, drop_triggers)]
