from __future__ import annotations

from celery import shared_task
from django.conf import settings

from apps.verification.services import (
    verification_account_photo_process,
    verification_id_card_process,
    verification_photos_purge,
)


@shared_task(bind=True, acks_late=True, max_retries=3, default_retry_delay=2)
def ocr_read_id_card(self, visit_id: int, attempt: int) -> str:  # type: ignore[no-untyped-def]
    """Read the ID card photo of one upload attempt. Safe to deliver twice."""
    verification = verification_id_card_process(visit_id=visit_id, attempt=attempt)
    return str(verification.state)


@shared_task(bind=True, acks_late=True, max_retries=3, default_retry_delay=2)
def ocr_read_account_photo(self, visit_id: int, attempt: int) -> str:  # type: ignore[no-untyped-def]
    """Read the account number in the photo of one upload attempt. Safe to deliver twice."""
    verification = verification_account_photo_process(visit_id=visit_id, attempt=attempt)
    return str(verification.account_photo_state)


@shared_task
def verification_photos_purge_task() -> int:
    """Remove the Gate 1 photos of visits closed longer ago than RECORDINGS_RETENTION_DAYS."""
    return verification_photos_purge(retention_days=settings.RECORDINGS_RETENTION_DAYS)
