"""Reads of visits."""

from __future__ import annotations

from apps.visits.models import Visit


def visit_for_session(*, visit_id: object) -> Visit | None:
    """The visit a customer's browser session is bound to, or None (no visit, or a stale id)."""
    if not isinstance(visit_id, int):
        return None
    return Visit.objects.select_related("customer", "account").filter(pk=visit_id).first()
