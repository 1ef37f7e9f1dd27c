"""Writes to customer data. In production these rows are synchronized from
core banking; here they are also what ``seed_demo`` uses.

Upserts are idempotent: writing the same values again changes nothing and
audits nothing, so a re-run of a sync or of ``seed_demo`` leaves the trail alone.
"""

from __future__ import annotations

from datetime import date
from typing import Any, TypeVar

from django.db import models, transaction
from django.utils.translation import gettext_lazy as _

from apps.audit.actions import AuditAction
from apps.audit.services import AnyActor, audit_record
from apps.common.checksums import id_number_is_valid
from apps.common.crypto import id_number_index, normalize_account_number
from apps.common.errors import ValidationFailed
from apps.common.masking import mask_account_number, mask_id_number, mask_mobile, mask_name
from apps.customers.models import (
    Account,
    AccountKind,
    AccountStatus,
    BlacklistEntry,
    BlacklistKind,
    Branch,
    Customer,
    CustomerLevel,
)

ModelT = TypeVar("ModelT", bound=models.Model)

# Values shown in the audit trail for these fields are masked (R8.2).
_MASKERS = {
    "address": lambda value: (value[:6] + "…") if value else value,
    "id_number": mask_id_number,
    "mobile": mask_mobile,
    "number": mask_account_number,
    "account_number": mask_account_number,
}


# Models whose "name" is a person's (a branch's is not): masked in the trail too.
_PERSON_MODELS: frozenset[type[models.Model]] = frozenset({Customer})


def _audit_value(field: str, value: Any, model: type[models.Model] | None = None) -> Any:
    if isinstance(value, models.Model):
        return value.pk
    if field == "name" and model in _PERSON_MODELS and isinstance(value, str):
        return mask_name(value)
    masker = _MASKERS.get(field)
    return masker(value) if masker else value


def _upsert(
    *,
    actor: AnyActor,
    instance: ModelT | None,
    model: type[ModelT],
    values: dict[str, Any],
    created_action: AuditAction,
    updated_action: AuditAction,
) -> ModelT:
    """Create ``model`` from ``values``, or bring ``instance`` up to them; audit what changed.

    Field validation runs here; constraints and uniqueness are left to the
    database, because blind-index columns are only derived in ``save``.
    """
    if instance is None:
        instance = model(**values)
        instance.full_clean(validate_unique=False, validate_constraints=False)
        instance.save()
        audit_record(
            actor=actor,
            action=created_action,
            target=instance,
            data={field: _audit_value(field, value, model) for field, value in values.items()},
        )
        return instance
    changed = {field: value for field, value in values.items() if getattr(instance, field) != value}
    if changed:
        before = {field: _audit_value(field, getattr(instance, field), model) for field in changed}
        for field, value in changed.items():
            setattr(instance, field, value)
        instance.full_clean(validate_unique=False, validate_constraints=False)
        instance.save()
        audit_record(
            actor=actor,
            action=updated_action,
            target=instance,
            data={
                "before": before,
                "after": {field: _audit_value(field, value, model) for field, value in changed.items()},
            },
        )
    return instance


@transaction.atomic
def branch_upsert(*, actor: AnyActor, code: str, name: str, city: str, address: str = "", province: str = "") -> Branch:
    return _upsert(
        actor=actor,
        instance=Branch.objects.select_for_update().filter(code=code).first(),
        model=Branch,
        values={"code": code, "name": name, "city": city, "address": address, "province": province},
        created_action=AuditAction.BRANCH_CREATED,
        updated_action=AuditAction.BRANCH_UPDATED,
    )


@transaction.atomic
def customer_upsert(
    *,
    actor: AnyActor,
    customer_number: str,
    name: str,
    id_number: str,
    mobile: str,
    level: CustomerLevel,
    home_branch: Branch,
) -> Customer:
    """Create or update a customer, keyed by the bank's customer number."""
    id_number = id_number.strip().upper()
    if not id_number_is_valid(id_number):
        raise ValidationFailed(_("The ID number is not a valid 18-digit resident ID number."), code="invalid_id_number")
    clash = Customer.objects.filter(id_number_index=id_number_index(id_number)).exclude(customer_number=customer_number)
    if clash.exists():
        raise ValidationFailed(_("Another customer already has this ID number."), code="duplicate_id_number")
    return _upsert(
        actor=actor,
        instance=Customer.objects.select_for_update().filter(customer_number=customer_number).first(),
        model=Customer,
        values={
            "customer_number": customer_number,
            "name": name,
            "id_number": id_number,
            "mobile": mobile,
            "level": level,
            "home_branch": home_branch,
        },
        created_action=AuditAction.CUSTOMER_CREATED,
        updated_action=AuditAction.CUSTOMER_UPDATED,
    )


@transaction.atomic
def account_upsert(
    *,
    actor: AnyActor,
    number: str,
    kind: AccountKind,
    status: AccountStatus,
    owner: Customer,
    opening_branch: Branch,
    opened_on: date,
    status_since: date,
    company_name: str = "",
) -> Account:
    number = normalize_account_number(number)
    return _upsert(
        actor=actor,
        instance=Account.objects.select_for_update().filter(number=number).first(),
        model=Account,
        values={
            "number": number,
            "kind": kind,
            "status": status,
            "owner": owner,
            "opening_branch": opening_branch,
            "opened_on": opened_on,
            "status_since": status_since,
            "company_name": company_name,
        },
        created_action=AuditAction.ACCOUNT_CREATED,
        updated_action=AuditAction.ACCOUNT_UPDATED,
    )


@transaction.atomic
def blacklist_entry_upsert(
    *,
    actor: AnyActor,
    kind: BlacklistKind,
    id_number: str = "",
    account_number: str = "",
    source: str,
    listed_since: date,
    reason: str,
    active: bool = True,
) -> BlacklistEntry:
    """List (or update the listing of) a person and/or account on one list.

    An entry is identified by its list and what it matches; delisting sets
    ``active=False`` and keeps the row.
    """
    id_number = id_number.strip().upper()
    account_number = normalize_account_number(account_number)
    if not id_number and not account_number:
        raise ValidationFailed(_("A blacklist entry needs an ID number or an account number."), code="empty_entry")
    existing = (
        BlacklistEntry.objects.select_for_update()
        .filter(
            kind=kind,
            id_number_index=id_number_index(id_number) if id_number else "",
            account_number=account_number,
        )
        .first()
    )
    return _upsert(
        actor=actor,
        instance=existing,
        model=BlacklistEntry,
        values={
            "kind": kind,
            "id_number": id_number or None,
            "account_number": account_number,
            "source": source,
            "listed_since": listed_since,
            "reason": reason,
            "active": active,
        },
        created_action=AuditAction.BLACKLIST_ENTRY_ADDED,
        updated_action=AuditAction.BLACKLIST_ENTRY_UPDATED,
    )


# --- Core banking's side of the businesses (R7) --------------------------------------------
# Called by the core-banking sandbox (apps/customers/integrations/core_banking.py),
# which stands in for the bank's core system over these tables. ``reference``
# makes each call idempotent: a replay of an applied request returns False.


@transaction.atomic
def account_core_update(
    *,
    actor: AnyActor,
    number: str,
    reference: str,
    status: AccountStatus | None = None,
    pin_hash: str | None = None,
    on: date,
) -> bool:
    """Apply a core-banking change to an account (status and/or PIN hash). False if already applied."""
    account = Account.objects.select_for_update().get(number=normalize_account_number(number))
    if account.core_reference == reference:
        return False
    changed: dict[str, Any] = {"reference": reference}
    if status is not None and status != account.status:
        changed["status"] = [account.status, status.value]
        account.status = status
        account.status_since = on
    if pin_hash is not None:
        # Never the hash itself in the trail: only that it changed.
        changed["pin"] = "changed"
        account.pin_hash = pin_hash
    account.core_reference = reference
    account.save()
    audit_record(
        actor=actor,
        action=AuditAction.ACCOUNT_UPDATED,
        target=account,
        data={"account": mask_account_number(account.number), **changed},
    )
    return True


CUSTOMER_INFO_FIELDS = ("address", "mobile", "occupation", "id_valid_until")


@transaction.atomic
def customer_core_update(*, actor: AnyActor, customer_number: str, reference: str, changes: dict[str, Any]) -> bool:
    """Apply maintained personal information (R7.4). False if this reference was already applied."""
    unknown = set(changes) - set(CUSTOMER_INFO_FIELDS)
    if unknown:
        raise ValidationFailed(_("These fields cannot be maintained remotely."), code="field_not_maintainable")
    customer = Customer.objects.select_for_update().get(customer_number=customer_number)
    if customer.core_reference == reference:
        return False
    audited = {}
    for field, value in changes.items():
        audited[field] = [_audit_value(field, getattr(customer, field)), _audit_value(field, value)]
        setattr(customer, field, value)
    customer.core_reference = reference
    customer.save()
    audit_record(
        actor=actor,
        action=AuditAction.CUSTOMER_UPDATED,
        target=customer,
        data={"reference": reference, "changes": audited},
    )
    return True
