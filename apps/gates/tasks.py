"""Celery tasks of the gates: thin. The face task runs on the ``face`` queue (CELERY_TASK_ROUTES)."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.db import InterfaceError, OperationalError

from apps.gates.services import gate_face_verify_run, gate_identity_check_run


# acks_late: a worker that dies mid-check leaves the message for another; the
# services apply a result only to a still-running attempt, so a redelivery
# (or a retry after a database blip) applies it once.
@shared_task(
    bind=True, acks_late=True, autoretry_for=(OperationalError, InterfaceError), max_retries=3, retry_backoff=2
)
def gate_identity_check_task(self: Any, attempt_id: int) -> str:
    attempt = gate_identity_check_run(attempt_id=attempt_id)
    return attempt.status if attempt else "missing"


@shared_task(
    bind=True, acks_late=True, autoretry_for=(OperationalError, InterfaceError), max_retries=3, retry_backoff=2
)
def gate_face_verify_task(self: Any, attempt_id: int) -> str:
    attempt = gate_face_verify_run(attempt_id=attempt_id)
    return attempt.status if attempt else "missing"
