"""Rows for tests that start past a step tested elsewhere (Gate 1's flow is in tests/verification)."""

from __future__ import annotations

from typing import Any

from apps.verification.models import Verification, VerificationState
from apps.visits.models import Visit

GATE1_FIELDS = frozenset(
    {"refusal_code", "read_name", "read_id_number", "id_card_attempts", "match_attempts", "id_card_failure_code"}
)


def visit_with_gate1(*, state: str = VerificationState.QUEUE_READY, **fields: Any) -> Visit:
    """A visit whose Gate 1 is in ``state`` (by default passed: ready to queue).

    Keyword arguments that are Gate 1's (``refusal_code``, ``read_name``, …)
    go on its ``Verification`` row, the rest on the visit.
    """
    gate1 = {name: fields.pop(name) for name in list(fields) if name in GATE1_FIELDS}
    visit = Visit.objects.create(**fields)
    Verification.objects.create(visit=visit, state=state, **gate1)
    return visit
