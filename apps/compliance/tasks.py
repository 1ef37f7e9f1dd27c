from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from apps.compliance.services import audit_export_run


# Retried only for what may pass on its own (database connection, disk or
# storage); a bug fails the export once, visibly. acks_late: a worker that
# dies mid-export leaves the message for another, which starts a new attempt.
@shared_task(
    acks_late=True,
    autoretry_for=(OperationalError, InterfaceError, OSError),
    max_retries=3,
    retry_backoff=10,
    retry_jitter=True,
    ignore_result=True,
)
def compliance_export_run(export_id: int) -> str:
    """Generate the file of one audit export. Safe to deliver twice: a done export is not redone."""
    return str(audit_export_run(export_id=export_id).state)
