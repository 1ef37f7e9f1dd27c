"""Database-level append-only guarantee for the audit trail.

The model already refuses updates and deletes, but raw SQL, a shell or
another program could still change rows. These triggers make the database
itself refuse. A database owner can still drop a trigger; that is what the
hash chain (``manage.py audit_verify``) is for.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

from apps.audit.triggers import POSTGRESQL_CREATE, POSTGRESQL_DROP, SQLITE_CREATE, SQLITE_DROP


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
