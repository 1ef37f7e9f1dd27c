"""Reads of Gate 1 that other apps need."""

from __future__ import annotations

from apps.verification.models import Verification, VerificationState
from apps.visits.models import Visit


def verification_passed(*, visit: Visit) -> bool:
    """Gate 1 let this visit through to the queue (R6.1)."""
    return Verification.objects.filter(visit=visit, state=VerificationState.QUEUE_READY).exists()


def verification_for_visit(*, visit: Visit) -> Verification | None:
    return Verification.objects.filter(visit=visit).first()
