"""Each queue's count of waiting entries (issue 18: the line's size in a change message without counting the line).

``_queue_event`` keeps it from here on; this counts it once from the rows.
"""

from django.db import migrations, models

RECOUNT = """
UPDATE queueing_servicequeue SET waiting_count = (
    SELECT count(*) FROM queueing_queueentry e WHERE e.queue_id = queueing_servicequeue.id AND e.state = 'waiting'
)
"""


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
        migrations.RunSQL(RECOUNT, migrations.RunSQL.noop),
    ]
