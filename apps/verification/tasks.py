from __future__ import annotations

from celery import shared_task

from apps.verification.services import verification_id_card_process


@shared_task(bind=True, acks_late=True, max_retries=3, default_retry_delay=2)
def ocr_read_id_card(self, visit_id: int, attempt: int) -> str:  # type: ignore[no-untyped-def]
    """Read the ID card photo of one upload attempt. Safe to deliver twice."""
    verification = verification_id_card_process(visit_id=visit_id, attempt=attempt)
    return str(verification.state)
