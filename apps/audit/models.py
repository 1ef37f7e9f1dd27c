"""The append-only, hash-chained audit trail (R8.1).

Each record stores ``previous_hash`` (the hash of the record before it in the
chain) and ``record_hash`` = SHA-256 over its own canonical content plus
``previous_hash``. Editing a record breaks its own hash; deleting one breaks
the link (and leaves a gap in ``sequence``) of the record after it.
``apps.audit.chain`` recomputes and checks both.

Nothing may change or remove a record: the model and queryset refuse, and a
database trigger (PostgreSQL and SQLite, migration 0002) refuses UPDATE, DELETE
and TRUNCATE even for raw SQL.

On PostgreSQL services do not chain records themselves: they insert a
``PendingAuditRecord`` in their own transaction, and the audit sequencer
(``apps.audit.sequencer``) moves committed pending rows into the chain in
batches (docs/architecture.md, "The audit trail").
"""

from __future__ import annotations

from typing import Any, ClassVar, NoReturn

from django.db import models
from django.utils.translation import gettext_lazy as _

from apps.audit.actions import AuditAction


class AppendOnlyError(Exception):
    """Raised on any attempt to change or delete an audit record."""


class AuditRecordQuerySet(models.QuerySet["AuditRecord"]):
    def update(self, **kwargs: Any) -> NoReturn:
        raise AppendOnlyError("Audit records cannot be updated.")

    def delete(self) -> NoReturn:
        raise AppendOnlyError("Audit records cannot be deleted.")


class ActorKind(models.TextChoices):
    STAFF = "staff", _("Staff")
    CUSTOMER = "customer", _("Customer")
    SYSTEM = "system", _("System")


class AuditRecord(models.Model):
    # Position in the chain, assigned under a lock: 1, 2, 3... with no gaps,
    # unlike the primary key (a rolled-back insert still consumes a sequence value).
    sequence = models.PositiveBigIntegerField(_("sequence"), unique=True, editable=False)
    created_at = models.DateTimeField(_("time"), editable=False, db_index=True)
    actor_kind = models.CharField(_("actor kind"), max_length=16, choices=ActorKind.choices)
    actor_id = models.CharField(_("actor id"), max_length=64, blank=True)
    actor_label = models.CharField(_("actor"), max_length=150, blank=True)
    # Codes are validated against AuditAction by audit_record; no ``choices``
    # here, so adding a code never needs a migration of this table.
    action = models.CharField(_("action"), max_length=64, db_index=True)
    target_type = models.CharField(_("target type"), max_length=64, blank=True, db_index=True)
    target_id = models.CharField(_("target id"), max_length=64, blank=True)
    target_label = models.CharField(_("target"), max_length=200, blank=True)
    # Never raw personal numbers: services put masked values here (tests check).
    data = models.JSONField(_("data"), default=dict, blank=True)
    previous_hash = models.CharField(_("previous hash"), max_length=64, editable=False)
    record_hash = models.CharField(_("record hash"), max_length=64, unique=True, editable=False)
    # The PendingAuditRecord this record was sequenced from (none when chained
    # inline). Unique: a pending row enters the chain at most once, and the
    # pending table's trigger lets a pending row be deleted only once its
    # record is here. Not part of the hash: it is bookkeeping, not evidence.
    pending_id = models.BigIntegerField(_("pending id"), null=True, blank=True, unique=True, editable=False)

    objects: ClassVar[AuditRecordQuerySet] = AuditRecordQuerySet.as_manager()  # type: ignore[assignment]

    class Meta:
        ordering = ("sequence",)
        verbose_name = _("audit record")
        verbose_name_plural = _("audit records")
        indexes = (models.Index(fields=("target_type", "target_id")),)

    def __str__(self) -> str:
        return f"#{self.sequence} {self.action}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnlyError("Audit records cannot be updated.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AppendOnlyError("Audit records cannot be deleted.")

    @property
    def action_label(self) -> str:
        try:
            return str(AuditAction(self.action).label)
        except ValueError:
            return self.action


class PendingAuditRecord(models.Model):
    """An audit record written by a service and not yet chained: the sequencer's queue.

    Services only ever INSERT here, in the transaction of the change they
    describe, so they wait for nobody. The sequencer reads committed rows in
    id order, appends them to the chain and deletes them in one transaction;
    a database trigger refuses UPDATE and TRUNCATE, and refuses DELETE of a
    row whose ``AuditRecord`` does not exist (PostgreSQL, migration 0003).
    """

    created_at = models.DateTimeField(_("time"), editable=False)
    actor_kind = models.CharField(_("actor kind"), max_length=16, choices=ActorKind.choices)
    actor_id = models.CharField(_("actor id"), max_length=64, blank=True)
    actor_label = models.CharField(_("actor"), max_length=150, blank=True)
    action = models.CharField(_("action"), max_length=64)
    target_type = models.CharField(_("target type"), max_length=64, blank=True)
    target_id = models.CharField(_("target id"), max_length=64, blank=True)
    target_label = models.CharField(_("target"), max_length=200, blank=True)
    data = models.JSONField(_("data"), default=dict, blank=True)

    class Meta:
        ordering = ("id",)
        verbose_name = _("pending audit record")
        verbose_name_plural = _("pending audit records")

    def __str__(self) -> str:
        return f"pending {self.pk} {self.action}"
