from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from apps.queueing.services.offers import dispatch_queue


# A dropped database connection rolls the dispatch transaction back whole;
# trying again (on a new connection) is safe.
@shared_task(
    acks_late=True, ignore_result=True, autoretry_for=(OperationalError, InterfaceError), max_retries=3, retry_backoff=1
)
def dispatch_queue_task(queue_id: int) -> int:
    """Match as many waiting customers of one queue as agents allow. Safe to run any number of times at once."""
    made = 0
    while dispatch_queue(queue_id=queue_id) is not None:
        made += 1
    return made
