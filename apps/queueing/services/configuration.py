"""Queue configuration (R2.3): queues, the businesses they serve, and their overflow targets."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils.translation import gettext_lazy as _

from apps.audit.actions import AuditAction
from apps.audit.services import AnyActor, audit_record
from apps.common.errors import NotFound, ValidationFailed
from apps.queueing.models import (
    OverflowTarget,
    ServiceQueue,
)


def queue_for_business(*, business_code: str) -> ServiceQueue:
    """The queue that takes customers of a business first (lowest code wins a tie)."""
    for queue in ServiceQueue.objects.order_by("code"):
        if business_code in queue.businesses:
            return queue
    raise NotFound(_("No queue serves this business at the moment."), code="no_queue")


@transaction.atomic
def service_queue_upsert(
    *, actor: AnyActor, code: str, name: str, businesses: list[str], **options: Any
) -> ServiceQueue:
    queue, created = ServiceQueue.objects.select_for_update().get_or_create(
        code=code, defaults={"name": name, "businesses": businesses, **options}
    )
    changed = {
        field: value
        for field, value in {"name": name, "businesses": businesses, **options}.items()
        if getattr(queue, field) != value
    }
    if not created and not changed:
        return queue
    for field, value in changed.items():
        setattr(queue, field, value)
    queue.full_clean()
    queue.save()
    audit_record(
        actor=actor,
        action=AuditAction.QUEUE_CONFIGURED,
        target=queue,
        data={"created": created, "changed": sorted(changed) if not created else []},
    )
    return queue


@transaction.atomic
def overflow_target_set(*, actor: AnyActor, queue: ServiceQueue, target: ServiceQueue, position: int) -> OverflowTarget:
    """Make ``target`` the overflow destination of ``queue`` at ``position`` (1 = tried first)."""
    if queue.pk == target.pk:
        raise ValidationFailed(_("A queue cannot overflow into itself."), code="overflow_to_itself")
    link, created = OverflowTarget.objects.select_for_update().get_or_create(
        queue=queue, target=target, defaults={"position": position}
    )
    if not created and link.position == position:
        return link
    link.position = position
    link.save()
    audit_record(
        actor=actor,
        action=AuditAction.QUEUE_CONFIGURED,
        target=queue,
        data={"overflow_to": target.code, "position": position},
    )
    return link


@transaction.atomic
def overflow_target_remove(*, actor: AnyActor, link: OverflowTarget) -> None:
    queue = link.queue
    target_code = link.target.code
    OverflowTarget.objects.filter(pk=link.pk).delete()
    audit_record(actor=actor, action=AuditAction.QUEUE_CONFIGURED, target=queue, data={"overflow_removed": target_code})
