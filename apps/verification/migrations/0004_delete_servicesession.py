"""Drop the old visit table once nothing points at it (see 0003).

Reversible: going back re-creates ``verification_servicesession`` and copies
every visit and its Gate 1 row into it, with the same ids, before the
foreign keys of the other apps are pointed back at it.
"""

from django.core.management.color import no_style
from django.db import migrations

VISIT_COLUMNS = (
    "id, public_id, business_code, mobile, created_at, customer_id, account_id, outcome, outcome_reason, closed_at"
)
GATE1_COLUMNS = (
    "state, updated_at, id_card_attempts, id_card_last_upload_at, id_card_photo, id_card_portrait, "
    "id_card_failure_code, read_name, read_id_number, read_sex, read_ethnicity, read_birth_date, read_address, "
    "match_attempts, refusal_code"
)


def merge_back(apps, schema_editor):
    visit_columns = ", ".join(f"v.{name.strip()}" for name in VISIT_COLUMNS.split(","))
    gate1_columns = ", ".join(f"g.{name.strip()}" for name in GATE1_COLUMNS.split(","))
    schema_editor.execute(
        f"INSERT INTO verification_servicesession ({VISIT_COLUMNS}, {GATE1_COLUMNS}) "
        f"SELECT {visit_columns}, {gate1_columns} FROM visits_visit v "
        "JOIN verification_verification g ON g.visit_id = v.id"
    )
    for statement in schema_editor.connection.ops.sequence_reset_sql(
        no_style(), [apps.get_model("verification", "ServiceSession")]
    ):
        schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [
        ("verification", "0003_visit_and_verification_split"),
        ("calls", "0004_alter_call_visit"),
        ("gates", "0002_alter_gateprogress_visit"),
        ("operations", "0002_alter_operation_visit"),
        ("queueing", "0003_alter_queueentry_visit"),
    ]

    operations = [
        # Runs forwards as nothing; backwards (after the table is re-created) it copies the rows back.
        migrations.RunPython(migrations.RunPython.noop, merge_back),
        migrations.DeleteModel(name="ServiceSession"),
    ]
