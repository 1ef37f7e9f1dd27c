"""Each queue's count of waiting entries, kept by triggers (issue 18: O(1) per change; apps/queueing/triggers.py)."""

from typing import Any

from django.db import migrations, models

from apps.queueing.triggers import POSTGRESQL_CREATE, POSTGRESQL_DROP, RECOUNT, SQLITE_CREATE, SQLITE_DROP


def create_triggers(apps: Any, schema_editor: Any) -> None:
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        # params=None: no placeholder parsing of the PL/pgSQL.
        schema_editor.execute(POSTGRESQL_CREATE, params=None)
    elif vendor == "sqlite":
        for statement in SQLITE_CREATE:
            schema_editor.execute(statement)
    else:  # pragma: no cover - only PostgreSQL and SQLite are supported
        raise RuntimeError(f"No waiting-count triggers for database vendor {vendor!r}.")
    # In the migration's transaction: no entry changes between the count and the triggers.
    schema_editor.execute(RECOUNT)


def drop_triggers(apps: Any, schema_editor: Any) -> None:
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(POSTGRESQL_DROP)
    elif vendor == "sqlite":
        for statement in SQLITE_DROP:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [
        ("queueing", "0009_change_version_label"),
    ]

    operations = [
        migrations.AddField(
            model_name="servicequeue",
            name="waiting_count",
            field=models.BigIntegerField(default=0, editable=False, verbose_name="customers waiting"),
        ),
        migrations.RunPython(create_triggers, drop_triggers),
    ]
