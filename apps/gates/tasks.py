"""Celery tasks of the gates: thin. The face task runs on the ``face`` queue (CELERY_TASK_ROUTES)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from celery import shared_task
from django.db import InterfaceError, OperationalError

from apps.audit.services import Actor
from apps.gates.models import GateAttempt
from apps.gates.services import (
    FACE_ENGINE,
    REGISTRY,
    gate_attempt_error,
    gate_face_liveness_run,
    gate_face_verify_run,
    gate_identity_check_run,
)

logger = logging.getLogger(__name__)


def _run(run: Callable[..., GateAttempt | None], attempt_id: int, *, actor: Actor) -> str:
    """Run one check. A database blip is retried (autoretry); anything else is a bug that
    ends the attempt as ``internal_error``, so the agent is told and may try again
    instead of waiting on a check that would stay running (409 gate_check_running)."""
    try:
        attempt = run(attempt_id=attempt_id)
    except (OperationalError, InterfaceError):
        raise
    except Exception:
        logger.exception("gate check of attempt %s failed unexpectedly", attempt_id)
        attempt = gate_attempt_error(attempt_id=attempt_id, actor=actor, code="internal_error")
    return attempt.status if attempt else "missing"


# acks_late: a worker that dies mid-check leaves the message for another; the
# services apply a result only to a still-running attempt, so a redelivery
# (or a retry after a database blip) applies it once. A check lost for good
# is ended by the sweeper (gate_attempts_expire, GATE_CHECK_DEADLINE_SECONDS).
@shared_task(
    bind=True, acks_late=True, autoretry_for=(OperationalError, InterfaceError), max_retries=3, retry_backoff=2
)
def gate_identity_check_task(self: Any, attempt_id: int) -> str:
    return _run(gate_identity_check_run, attempt_id, actor=REGISTRY)


@shared_task(
    bind=True, acks_late=True, autoretry_for=(OperationalError, InterfaceError), max_retries=3, retry_backoff=2
)
def gate_face_verify_task(self: Any, attempt_id: int) -> str:
    return _run(gate_face_verify_run, attempt_id, actor=FACE_ENGINE)


# The burst lasts the challenge (about 10 s), then landmarks and the face model run: the ``face`` queue.
@shared_task(
    bind=True, acks_late=True, autoretry_for=(OperationalError, InterfaceError), max_retries=3, retry_backoff=2
)
def gate_face_liveness_task(self: Any, attempt_id: int) -> str:
    return _run(gate_face_liveness_run, attempt_id, actor=FACE_ENGINE)
