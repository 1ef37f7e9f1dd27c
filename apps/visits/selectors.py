"""Reads of visits."""

from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet
from django.utils import timezone

from apps.visits.models import Visit, VisitBlock


def visit_for_session(*, visit_id: object) -> Visit | None:
    """The visit a customer's browser session is bound to, or None (no visit, or a stale id)."""
    if not isinstance(visit_id, int):
        return None
    return Visit.objects.select_related("customer", "account").filter(pk=visit_id).first()


def visit_blocks_in_force(*, now: datetime | None = None) -> QuerySet[VisitBlock]:
    """Blocks not lifted and not yet expired, newest first (supervisors' list)."""
    now = now or timezone.now()
    return VisitBlock.objects.filter(lifted_at__isnull=True, blocked_until__gt=now).select_related("visit", "customer")
