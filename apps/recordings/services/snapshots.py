"""Snapshots (R5): a frame of the customer's video that the server captured from Janus in the live call; each opening audited."""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable

from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils.translation import gettext_lazy as _

from apps.audit.actions import AuditAction
from apps.audit.services import AnyActor, audit_record
from apps.calls.integrations.janus import JanusError, UnknownJanusServer, janus_server
from apps.calls.integrations.media_capture import CapturedFrame, capture_frames
from apps.calls.models import Call, CallParticipant, CallState, ParticipantRole
from apps.common.errors import ApplicationError, NotAllowed, NotFound, PermissionDenied
from apps.common.images import image_to_jpeg_bytes
from apps.common.locking import lock_object
from apps.recordings.models import Snapshot
from apps.staff.selectors import staff_profile_for

logger = logging.getLogger(__name__)

# --- Snapshots (R5) ----------------------------------------------------------------------


def _call_not_found() -> NotFound:
    return NotFound(_("This call does not exist."), code="call_not_found")


class CaptureFailed(ApplicationError):
    """The server could not take a frame from the customer's video (Janus down, no video in time)."""

    status_code = 503
    default_code = "capture_failed"


def _customer_feed(call: Call, actor: User) -> CallParticipant:
    """The customer participant whose published feed the server may capture, after checking ``actor``."""
    staff = staff_profile_for(actor)
    seats = CallParticipant.objects.filter(call=call, staff=staff).exclude(role=ParticipantRole.CUSTOMER)
    if staff is None or not seats.exists():
        raise PermissionDenied(_("Only staff in this call can capture the customer."), code="not_in_call")
    if call.state == CallState.ENDED:
        raise NotAllowed(_("The call is already over."), code="call_ended")
    if not seats.filter(left_at__isnull=True).exists():
        raise PermissionDenied(_("Only staff in this call can capture the customer."), code="not_in_call")
    customer = CallParticipant.objects.filter(call=call, role=ParticipantRole.CUSTOMER).first()
    if customer is None:
        raise NotAllowed(_("This call has no customer."), code="no_customer")
    if customer.janus_feed_id is None or customer.publishing_since is None:
        raise NotAllowed(
            _("The customer's video is not being received. Please wait until their camera is on."),
            code="customer_not_publishing",
        )
    return customer


def snapshot_capture(*, actor: User, call_id: int) -> Snapshot:
    """The server takes a frame of the customer's video from Janus and stores it (R5).

    No image comes from the caller: the server subscribes to the customer's
    published feed itself (apps.calls.integrations.media_capture), so an
    agent cannot pass off another picture as the customer. The capture runs
    outside any transaction (it takes about a second); the call is checked
    again under its lock before the frame is stored.
    """
    call = Call.objects.filter(pk=call_id).first()
    if call is None:
        raise _call_not_found()
    customer = _customer_feed(call, actor)
    assert customer.janus_feed_id is not None
    frames = snapshot_frames_capture(call=call, feed_id=customer.janus_feed_id, count=1)
    return snapshot_store_frame(actor=actor, call_id=call.pk, frame=frames[0])


def snapshot_frames_capture(
    *,
    call: Call,
    feed_id: int,
    count: int,
    interval: float = 0.0,
    duration: float | None = None,
    timeout: float | None = None,
    on_frame: Callable[[CapturedFrame], None] | None = None,
) -> list[CapturedFrame]:
    """Frames of ``feed_id`` in the call's room, taken by the server (CaptureFailed when it cannot)."""
    try:
        return capture_frames(
            janus_server(call.janus_server),
            room_id=call.room_id,
            feed_id=feed_id,
            count=count,
            interval=interval,
            duration=duration,
            timeout=timeout,
            on_frame=on_frame,
        )
    except (JanusError, UnknownJanusServer) as error:
        logger.warning("capturing feed %s of call %s failed: %s", feed_id, call.public_id, error)
        raise CaptureFailed(
            _("The customer's video could not be captured just now. Please try again."), code="capture_failed"
        ) from error


def snapshot_store_frame(*, actor: User, call_id: int, frame: CapturedFrame) -> Snapshot:
    """Store one frame the server captured from the customer's feed, audited with the call, feed and capture time.

    Only frames from ``apps.calls.integrations.media_capture`` reach here;
    no API hands this service an image.
    """
    with transaction.atomic(durable=True):  # after the capture, never inside a transaction
        call = lock_object(Call.objects, not_found=_call_not_found, pk=call_id)
        customer = _customer_feed(call, actor)
        if customer.janus_feed_id != frame.feed_id:
            # The customer republished (a reload) while the frame was taken: it may not be theirs any more.
            raise CaptureFailed(
                _("The customer's video changed during the capture. Please try again."), code="feed_changed"
            )
        image = frame.image.convert("RGB")
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
            taken_at=frame.captured_at,
            feed_id=frame.feed_id,
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
                    "feed": frame.feed_id,
                    "captured_at": frame.captured_at.isoformat(),
                    "source": "server",
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
