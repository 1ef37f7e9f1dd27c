"""Snapshots (R5): a frame of the customer's video captured in the live call, and each opening audited."""

from __future__ import annotations

import hashlib
import uuid

from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.audit.actions import AuditAction
from apps.audit.services import AnyActor, audit_record
from apps.calls.models import Call, CallParticipant, CallState, ParticipantRole
from apps.common.errors import NotAllowed, NotFound, PermissionDenied, ValidationFailed
from apps.common.images import ImageRejected, image_to_jpeg_bytes, load_untrusted_image
from apps.common.locking import lock_object
from apps.recordings.models import Snapshot
from apps.staff.selectors import staff_profile_for

# --- Snapshots (R5) ----------------------------------------------------------------------


def _call_not_found() -> NotFound:
    return NotFound(_("This call does not exist."), code="call_not_found")


def snapshot_capture(*, actor: User, call_id: int, image_bytes: bytes) -> Snapshot:
    """Store a frame of the customer's video, captured by a staff participant of the live call."""
    image_format_error: ImageRejected | None = None
    try:
        image = load_untrusted_image(image_bytes)
    except ImageRejected as rejected:
        image_format_error = rejected
    with transaction.atomic(durable=True):  # called by the snapshots API, never inside a transaction
        call = lock_object(Call.objects, not_found=_call_not_found, pk=call_id)
        staff = staff_profile_for(actor)
        if staff is None or not CallParticipant.objects.filter(call=call, staff=staff).exists():
            raise PermissionDenied(_("Only staff in this call can capture the customer."), code="not_in_call")
        if call.state == CallState.ENDED:
            raise NotAllowed(_("The call is already over."), code="call_ended")
        customer = CallParticipant.objects.filter(call=call, role=ParticipantRole.CUSTOMER).first()
        if customer is None:
            raise NotAllowed(_("This call has no customer."), code="no_customer")
        if image_format_error is not None:
            raise ValidationFailed(
                _("The captured image was refused: %(reason)s") % {"reason": image_format_error.message},
                code=f"image_{image_format_error.code}",
            )
        jpeg = image_to_jpeg_bytes(image)
        sha256 = hashlib.sha256(jpeg).hexdigest()
        snapshot = Snapshot(
            public_id=uuid.uuid4(),
            call=call,
            participant=customer,
            taken_by=actor,
            sha256=sha256,
            width=image.width,
            height=image.height,
            taken_at=timezone.now(),
        )
        snapshot.image.save(f"{snapshot.public_id}.jpg", ContentFile(jpeg), save=False)
        stored_name = str(snapshot.image.name)
        try:
            snapshot.save()
            audit_record(
                actor=actor,
                action=AuditAction.SNAPSHOT_CAPTURED,
                target=snapshot,
                data={
                    "snapshot": str(snapshot.public_id),
                    "call": str(call.public_id),
                    "sha256": sha256,
                    "bytes": len(jpeg),
                },
            )
        except Exception:
            default_storage.delete(stored_name)
            raise
    return snapshot


@transaction.atomic(durable=True)  # called by the snapshot image API only
def snapshot_view_record(*, actor: AnyActor, snapshot: Snapshot) -> None:
    """Audit one opening of a stored snapshot image."""
    audit_record(
        actor=actor,
        action=AuditAction.SNAPSHOT_VIEWED,
        target=snapshot,
        data={"snapshot": str(snapshot.public_id), "call": str(snapshot.call.public_id), "sha256": snapshot.sha256},
    )
