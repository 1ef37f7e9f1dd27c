"""One handler per business (R7.6): what the agent's start needs, who confirms, what core banking is asked.

The business registry (apps/businesses/registry.py) names each business's
handler; ``HANDLERS`` maps those names to the objects below. Adding a business
is: an entry in the registry, a handler here (``prepare`` and ``perform``),
and, if the customer must confirm something new, a panel on their page —
docs/businesses.md walks through it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.common.checksums import uscc_is_valid
from apps.common.crypto import normalize_mobile
from apps.common.errors import NotAllowed, ValidationFailed
from apps.common.masking import mask_mobile
from apps.customers.integrations.core_banking import AccountOpeningApplication, CoreBanking
from apps.customers.models import Account, AccountStatus, Customer
from apps.operations.models import ConfirmBy, Operation
from apps.operations.pins import pin_block


@dataclass(frozen=True)
class Prepared:
    confirm_by: ConfirmBy
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


class OperationHandler(Protocol):
    def look_up(self, *, core: CoreBanking, account: Account) -> Any:
        """What core banking must say before the start (asked outside any lock); None if nothing."""
        ...

    def prepare(self, *, customer: Customer, account: Account, data: dict[str, Any], looked_up: Any = None) -> Prepared:
        """Check the agent's request and say what will change; raise ApplicationError if it cannot."""
        ...

    def perform(self, *, core: CoreBanking, operation: Operation, pin: str | None) -> str:
        """Ask core banking; return the result code. Raises CoreBankingError."""
        ...


class _NothingToLookUp:
    def look_up(self, *, core: CoreBanking, account: Account) -> Any:
        return None


def _account_number(operation: Operation) -> str:
    account = operation.visit.account
    assert account is not None  # a visit reaches a call only with its account accepted (Gate 1)
    return account.number


def _customer_number(operation: Operation) -> str:
    customer = operation.visit.customer
    assert customer is not None
    return customer.customer_number


def _require_status(account: Account, *statuses: AccountStatus) -> None:
    if account.status not in statuses:
        raise NotAllowed(
            _("The account's status (%(status)s) does not allow this business.")
            % {"status": AccountStatus(account.status).label},
            code="account_status",
        )


class Activation(_NothingToLookUp):
    def prepare(self, *, customer: Customer, account: Account, data: dict[str, Any], looked_up: Any = None) -> Prepared:
        _require_status(account, AccountStatus.INACTIVE)
        return Prepared(ConfirmBy.CUSTOMER_PIN, before={"status": account.status}, after={"status": "normal"})

    def perform(self, *, core: CoreBanking, operation: Operation, pin: str | None) -> str:
        assert pin is not None
        number = _account_number(operation)
        core.account_activate(
            account_number=number, pin_block=pin_block(pin, account_number=number), reference=str(operation.public_id)
        )
        return "activated"


class PasswordReset(_NothingToLookUp):
    def prepare(self, *, customer: Customer, account: Account, data: dict[str, Any], looked_up: Any = None) -> Prepared:
        _require_status(account, AccountStatus.NORMAL, AccountStatus.DORMANT)
        return Prepared(ConfirmBy.CUSTOMER_PIN)

    def perform(self, *, core: CoreBanking, operation: Operation, pin: str | None) -> str:
        assert pin is not None
        number = _account_number(operation)
        core.account_pin_reset(
            account_number=number, pin_block=pin_block(pin, account_number=number), reference=str(operation.public_id)
        )
        return "pin_reset"


class LostReportRelease(_NothingToLookUp):
    def prepare(self, *, customer: Customer, account: Account, data: dict[str, Any], looked_up: Any = None) -> Prepared:
        _require_status(account, AccountStatus.REPORTED_LOST)
        # The agent sees when the loss was reported before releasing it (R7.3).
        return Prepared(
            ConfirmBy.AGENT,
            before={"status": account.status},
            after={"status": "normal"},
            details={"reported_lost_on": account.status_since.isoformat()},
        )

    def perform(self, *, core: CoreBanking, operation: Operation, pin: str | None) -> str:
        core.account_lost_report_release(account_number=_account_number(operation), reference=str(operation.public_id))
        return "released"


MAINTAINABLE = ("address", "mobile", "occupation", "id_valid_until")


def _clean_change(name: str, value: Any) -> Any:
    if not isinstance(value, str):
        raise ValidationFailed(_("Please enter the new values as text."), code="invalid_value")
    value = value.strip()
    if name == "mobile":
        value = normalize_mobile(value)
        if len(value) != 11 or not value.startswith("1"):
            raise ValidationFailed(_("Please enter an 11-digit mainland mobile number."), code="invalid_mobile")
    elif name == "id_valid_until":
        try:
            valid_until = date.fromisoformat(value)
        except ValueError as exc:
            raise ValidationFailed(_("Please enter the ID card's expiry date."), code="invalid_date") from exc
        if valid_until <= timezone.localdate():
            raise ValidationFailed(_("The ID card's new expiry date must be in the future."), code="invalid_date")
        return valid_until.isoformat()
    elif name == "address" and not 4 <= len(value) <= 200:
        raise ValidationFailed(_("Please enter a full address (4 to 200 characters)."), code="invalid_address")
    elif name == "occupation" and not 1 <= len(value) <= 64:
        raise ValidationFailed(_("Please enter an occupation (up to 64 characters)."), code="invalid_occupation")
    return value


def _current(customer: Customer, name: str) -> str:
    value = getattr(customer, name)
    if value is None:
        return ""
    return value.isoformat() if isinstance(value, date) else str(value)


class InfoMaintenance(_NothingToLookUp):
    def prepare(self, *, customer: Customer, account: Account, data: dict[str, Any], looked_up: Any = None) -> Prepared:
        changes = data.get("changes")
        if not isinstance(changes, dict) or not changes or set(changes) - set(MAINTAINABLE):
            raise ValidationFailed(
                _("Say which of address, mobile, occupation and ID validity change."), code="invalid_changes"
            )
        after = {name: _clean_change(name, value) for name, value in changes.items()}
        before = {name: _current(customer, name) for name in after}
        if all(before[name] == after[name] for name in after):
            raise ValidationFailed(_("The new values are the same as the current ones."), code="nothing_changes")
        # The customer confirms the before/after on their own phone (R7.4).
        return Prepared(ConfirmBy.CUSTOMER, before=before, after=after)

    def perform(self, *, core: CoreBanking, operation: Operation, pin: str | None) -> str:
        changes: dict[str, Any] = dict(operation.after)
        if "id_valid_until" in changes:
            changes["id_valid_until"] = date.fromisoformat(changes["id_valid_until"])
        core.customer_info_update(
            customer_number=_customer_number(operation),
            changes=changes,
            reference=str(operation.public_id),
        )
        return "updated"


# The fixed script of the legal representative's intent verification (R7.5),
# read and answered on the legal representative's own phone.
INTENT_SCRIPT = (
    ("company_confirmed", _("Do you confirm that you are the legal representative of %(company)s?")),
    ("purpose", _("What will the account be used for?")),
    ("intent", _("Do you, of your own will, want %(company)s to open this account?")),
)


class CorporateIntent:
    """The legal representative's intent, checked against the company's application in core banking.

    Before the start, core banking is asked for the pending account-opening
    application behind the account: the company, its unified social credit
    code (its check character must hold) and its legal representative, whose
    name, ID number and mobile must be the person Gate 1 identified and
    Gate 2 verified. The customer then answers the script on their phone.
    """

    def look_up(self, *, core: CoreBanking, account: Account) -> Any:
        return core.account_opening_application(account_number=account.number)

    def prepare(self, *, customer: Customer, account: Account, data: dict[str, Any], looked_up: Any = None) -> Prepared:
        _require_status(account, AccountStatus.INACTIVE)
        application: AccountOpeningApplication | None = looked_up
        if application is None or application.status != "pending":
            raise NotAllowed(
                _("Core banking has no pending account-opening application for this account."),
                code="no_pending_application",
            )
        if not uscc_is_valid(application.credit_code):
            raise NotAllowed(
                _("The company's unified social credit code on the application is not valid."),
                code="company_record_invalid",
            )
        if mismatched := legal_rep_mismatches(customer, application):
            raise NotAllowed(
                _("The person verified in this call is not the legal representative named on the application."),
                code="legal_rep_mismatch",
                extra={"mismatched": mismatched},
            )
        return Prepared(
            ConfirmBy.CUSTOMER_INTENT,
            details={
                "company": application.company_name,
                "credit_code": application.credit_code,
                "application": application.number,
            },
        )

    def perform(self, *, core: CoreBanking, operation: Operation, pin: str | None) -> str:
        answers = operation.details.get("answers", {})
        confirmed = intent_confirmed(answers)
        core.account_opening_intent_record(
            application_number=operation.details["application"],
            confirmed=confirmed,
            reference=str(operation.public_id),
        )
        return "intent_confirmed" if confirmed else "intent_refused"


def legal_rep_mismatches(customer: Customer, application: AccountOpeningApplication) -> list[str]:
    """Which of the three elements (name, ID number, mobile) differ between the customer and the application."""
    pairs = {
        "name": (customer.name, application.legal_rep_name),
        "id_number": (customer.id_number.upper(), application.legal_rep_id_number.strip().upper()),
        "mobile": (normalize_mobile(customer.mobile), normalize_mobile(application.legal_rep_mobile)),
    }
    return [element for element, (ours, theirs) in pairs.items() if ours != theirs]


def intent_confirmed(answers: dict[str, Any]) -> bool:
    return answers.get("company_confirmed") is True and answers.get("intent") is True


def intent_answers_clean(data: dict[str, Any]) -> dict[str, Any]:
    """The legal representative's answers to the script: two yes/no and the stated purpose."""
    answers = data.get("answers")
    if not isinstance(answers, dict):
        raise ValidationFailed(_("Answer every question of the script."), code="invalid_answers")
    purpose = answers.get("purpose")
    if (
        not isinstance(answers.get("company_confirmed"), bool)
        or not isinstance(answers.get("intent"), bool)
        or not isinstance(purpose, str)
        or not 1 <= len(purpose.strip()) <= 200
    ):
        raise ValidationFailed(_("Answer every question of the script."), code="invalid_answers")
    return {"company_confirmed": answers["company_confirmed"], "purpose": purpose.strip(), "intent": answers["intent"]}


def masked_for_agent(name: str, value: str) -> str:
    return mask_mobile(value) if name == "mobile" and value else value


HANDLERS: dict[str, OperationHandler] = {
    "activation": Activation(),
    "password_reset": PasswordReset(),
    "lost_report_release": LostReportRelease(),
    "info_maintenance": InfoMaintenance(),
    "corporate_intent": CorporateIntent(),
}
