"""The visit gets its own app; Gate 1 keeps its fields in a row of its own.

Every ``verification.ServiceSession`` row is copied, with the same id, into
``visits.Visit`` (the visit's lifecycle, who and which account, the outcome)
and ``verification.Verification`` (Gate 1's state and what it read). Values
are copied as stored, so encrypted columns stay encrypted under the same keys.
The foreign keys of calls, gates, operations and queueing are then pointed at
``visits.Visit`` (their 0002-0004 migrations), and 0004 drops the old table.
"""

import django.db.models.deletion
import django_fsm
from django.core.management.color import no_style
from django.db import migrations, models

import apps.common.crypto

VISIT_COLUMNS = (
    "id, public_id, business_code, mobile, created_at, updated_at, customer_id, account_id, "
    "outcome, outcome_reason, closed_at"
)
GATE1_COLUMNS = (
    "state, updated_at, id_card_attempts, id_card_last_upload_at, id_card_photo, id_card_portrait, "
    "id_card_failure_code, read_name, read_id_number, read_sex, read_ethnicity, read_birth_date, read_address, "
    "match_attempts, refusal_code"
)


def reset_sequences(schema_editor, models_to_reset):
    """After inserts with explicit ids, new rows must not collide (PostgreSQL; SQLite needs nothing)."""
    for statement in schema_editor.connection.ops.sequence_reset_sql(no_style(), models_to_reset):
        schema_editor.execute(statement)


def split_visits(apps, schema_editor):
    schema_editor.execute(
        f"INSERT INTO visits_visit ({VISIT_COLUMNS}) SELECT {VISIT_COLUMNS} FROM verification_servicesession"
    )
    schema_editor.execute(
        f"INSERT INTO verification_verification (id, visit_id, {GATE1_COLUMNS}) "
        f"SELECT id, id, {GATE1_COLUMNS} FROM verification_servicesession"
    )
    reset_sequences(schema_editor, [apps.get_model("visits", "Visit"), apps.get_model("verification", "Verification")])


def forget_split(apps, schema_editor):
    # Going back, 0004's reverse has already copied the rows back into
    # verification_servicesession; the new tables are dropped by the
    # reversal of their CreateModel operations.
    schema_editor.execute("DELETE FROM verification_verification")
    schema_editor.execute("DELETE FROM visits_visit")


class Migration(migrations.Migration):
    dependencies = [
        ("verification", "0002_servicesession_closed_at_servicesession_outcome_and_more"),
        ("visits", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="Verification",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "visit",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="verification",
                        to="visits.visit",
                        verbose_name="visit",
                    ),
                ),
                (
                    "state",
                    django_fsm.FSMField(
                        choices=[
                            ("business_chosen", "Business chosen"),
                            ("id_card_processing", "Reading ID card"),
                            ("id_card_read", "ID card read"),
                            ("identity_matched", "Identity matched"),
                            ("account_accepted", "Account accepted"),
                            ("queue_ready", "Ready to queue"),
                            ("refused", "Refused"),
                        ],
                        default="business_chosen",
                        max_length=50,
                        protected=True,
                        verbose_name="state",
                    ),
                ),
                ("updated_at", models.DateTimeField(auto_now=True, verbose_name="updated at")),
                ("id_card_attempts", models.PositiveSmallIntegerField(default=0)),
                ("id_card_last_upload_at", models.DateTimeField(blank=True, null=True)),
                ("id_card_photo", models.FileField(blank=True, upload_to="visits/id_cards/")),
                ("id_card_portrait", models.FileField(blank=True, upload_to="visits/portraits/")),
                ("id_card_failure_code", models.CharField(blank=True, max_length=32)),
                ("read_name", models.CharField(blank=True, max_length=64)),
                ("read_id_number", apps.common.crypto.EncryptedCharField(blank=True, max_length=18, null=True)),
                ("read_sex", models.CharField(blank=True, max_length=1)),
                ("read_ethnicity", models.CharField(blank=True, max_length=16)),
                ("read_birth_date", models.DateField(blank=True, null=True)),
                ("read_address", apps.common.crypto.EncryptedCharField(blank=True, max_length=200, null=True)),
                ("match_attempts", models.PositiveSmallIntegerField(default=0)),
                (
                    "refusal_code",
                    models.CharField(
                        blank=True,
                        choices=[
                            ("no_matching_customer", "Name, ID number and mobile number match no customer"),
                            ("too_many_attempts", "Too many attempts"),
                            ("account_not_found", "Account not found"),
                            ("account_not_owned", "Account belongs to someone else"),
                            ("account_kind_not_served", "Account kind not served by this business"),
                            ("account_status", "Account status does not allow this business"),
                            ("blacklisted", "On a blacklist"),
                        ],
                        max_length=32,
                        verbose_name="refusal",
                    ),
                ),
            ],
            options={
                "verbose_name": "Gate 1 verification",
                "verbose_name_plural": "Gate 1 verifications",
            },
            bases=(django_fsm.ConcurrentTransitionMixin, models.Model),
        ),
        migrations.RunPython(split_visits, forget_split),
    ]
