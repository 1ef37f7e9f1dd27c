"""The registry of business types the remote counter serves (R7).

One place says, per business, which account kinds and statuses it accepts:
Gate 1 reads it to tell the customer whether they may proceed, queueing reads
it to route, and docs/businesses.md shows the same table. Adding a business
(R7.6) starts with one entry here.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from apps.customers.models import AccountKind, AccountStatus


@dataclass(frozen=True)
class BusinessType:
    code: str
    name: str | Promise
    account_kinds: frozenset[AccountKind]
    # Statuses with which the business may go ahead. CLOSED is never allowed.
    allowed_statuses: frozenset[AccountStatus]
    # The operation that performs it in the call (apps.operations.handlers),
    # by name so this lower app imports nothing above it.
    handler: str = ""
    # The in-call gates that must have passed before the operation (R6.5).
    # Every business served remotely requires all of them; the field exists
    # so a future business cannot silently skip one: registry validation
    # refuses a business that lists fewer.
    required_gates: tuple[str, ...] = ("identity", "face", "questions")

    def __post_init__(self) -> None:
        if AccountStatus.CLOSED in self.allowed_statuses:
            raise ValueError(f"{self.code}: a closed account can never be served.")
        if set(self.required_gates) != {"identity", "face", "questions"}:
            raise ValueError(f"{self.code}: every remote business requires gates 2–4 (R6.5).")


_PERSONAL = frozenset({AccountKind.DEBIT_CARD, AccountKind.PASSBOOK, AccountKind.CERTIFICATE_OF_DEPOSIT})

BUSINESSES: tuple[BusinessType, ...] = (
    BusinessType(
        code="activation",
        handler="activation",
        name=_("Account activation (card, passbook, certificate of deposit)"),
        account_kinds=_PERSONAL,
        allowed_statuses=frozenset({AccountStatus.INACTIVE}),
    ),
    BusinessType(
        code="password_reset",
        handler="password_reset",
        name=_("Password reset"),
        account_kinds=_PERSONAL,
        allowed_statuses=frozenset({AccountStatus.NORMAL, AccountStatus.DORMANT}),
    ),
    BusinessType(
        code="lost_report_release",
        handler="lost_report_release",
        name=_("Lost-report release"),
        account_kinds=_PERSONAL,
        allowed_statuses=frozenset({AccountStatus.REPORTED_LOST}),
    ),
    BusinessType(
        code="info_maintenance",
        handler="info_maintenance",
        name=_("Personal information maintenance"),
        account_kinds=_PERSONAL,
        allowed_statuses=frozenset(
            {AccountStatus.NORMAL, AccountStatus.INACTIVE, AccountStatus.DORMANT, AccountStatus.REPORTED_LOST}
        ),
    ),
    BusinessType(
        code="corporate_intent",
        handler="corporate_intent",
        name=_("Corporate account opening: legal representative's intent verification"),
        account_kinds=frozenset({AccountKind.CORPORATE}),
        allowed_statuses=frozenset({AccountStatus.INACTIVE}),
    ),
)

_BY_CODE = {business.code: business for business in BUSINESSES}


def business_get(code: str) -> BusinessType:
    """The business with this code; KeyError for an unknown one."""
    return _BY_CODE[code]


def business_choices() -> list[tuple[str, str | Promise]]:
    return [(business.code, business.name) for business in BUSINESSES]
