"""Rows for tests that start past a step tested elsewhere (Gate 1's flow is in tests/verification)."""

from __future__ import annotations

from typing import Any

from apps.verification.models import Verification, VerificationState
from apps.visits.models import Visit
from apps.visits.services import visit_recording_consent

GATE1_FIELDS = frozenset(
    {"refusal_code", "read_name", "read_id_number", "id_card_attempts", "match_attempts", "id_card_failure_code"}
)


def visit_with_gate1(
    *, state: str = VerificationState.QUEUE_READY, recording_consent: bool | None = None, **fields: Any
) -> Visit:
    """A visit whose Gate 1 is in ``state`` (by default passed: ready to queue).

    Keyword arguments that are Gate 1's (``refusal_code``, ``read_name``, …)
    go on its ``Verification`` row, the rest on the visit. A visit ready to
    queue has also agreed to the recorded call, as the page asks before
    joining (through the service, so the audit trail has it); pass
    ``recording_consent=False`` for one that has not.
    """
    gate1 = {name: fields.pop(name) for name in list(fields) if name in GATE1_FIELDS}
    visit = Visit.objects.create(**fields)
    Verification.objects.create(visit=visit, state=state, **gate1)
    if recording_consent is None:
        recording_consent = state == VerificationState.QUEUE_READY and not visit.outcome
    if recording_consent:
        visit = visit_recording_consent(visit_id=visit.pk, camera=True, microphone=True)
    return visit
