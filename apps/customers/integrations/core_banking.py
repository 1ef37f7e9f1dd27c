"""The bank's core system, behind a small typed interface (R7).

Every request carries a ``reference`` (the operation's id): core banking
applies a reference once and answers a replay with the same success, which is
what makes a retry after a timeout safe. A timeout leaves the outcome unknown
to the caller — the change may or may not have been applied — so callers
retry with the same reference, never a new one.

PINs reach core banking only as ``pin_block``: the PIN encrypted for core
banking and bound to the account (``pin_block.py``); the sandbox opens it, as
a core's HSM would, and keeps only a keyed verification value. The PIN itself
never leaves the request that carried it, and nothing stores it in clear.

``SandboxCoreBanking`` stands in for the real system over the project's own
Account and Customer tables (through apps.customers services), with the real
one's latency, service errors and timeouts — some of which happen after the
change was applied.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from django.utils import timezone

from apps.audit.services import Actor
from apps.customers.integrations.pin_block import PinBlockInvalid, pin_block_open, pin_verification_value

CORE = Actor.system("core_banking")
_T = TypeVar("_T")


class CoreBankingError(Exception):
    code = "core_banking_error"


class CoreBankingUnavailable(CoreBankingError):
    """The request was refused before doing anything (service error)."""

    code = "core_banking_unavailable"


class CoreBankingTimeout(CoreBankingError):
    """No answer in time: the change may or may not have been applied."""

    code = "core_banking_timeout"


class CoreBankingRejected(CoreBankingError):
    """Core banking answered no: the request breaks one of its rules (e.g. the account's status changed)."""

    code = "core_banking_rejected"


@dataclass(frozen=True)
class CoreResult:
    reference: str
    # False when core banking had already applied this reference (a replay).
    applied_now: bool


@dataclass(frozen=True)
class Transaction:
    """One posted movement on an account, as core banking's statement enquiry returns it."""

    posted_at: datetime
    # In fen (0.01 yuan); positive.
    amount_fen: int
    # "debit" (money out) or "credit" (money in).
    direction: str
    counterparty: str
    # The merchant category of the counterparty (supermarket, dining, utilities, ...).
    category: str


# Counterparties of the sandbox's statements, by category: Gate 4 draws its
# wrong payees from the same category so that no option stands out.
SANDBOX_COUNTERPARTIES: dict[str, tuple[str, ...]] = {
    "supermarket": ("华润万家", "永辉超市", "物美超市", "家乐福", "大润发", "沃尔玛", "利群商厦", "银座超市"),
    "dining": ("肯德基", "麦当劳", "星巴克", "海底捞", "瑞幸咖啡", "必胜客", "喜茶", "真功夫"),
    "utilities": ("国家电网", "中国移动", "中国联通", "中国电信", "市自来水公司", "港华燃气", "市热力公司"),
    "transport": ("中国铁路12306", "滴滴出行", "中国石化", "中国石油", "东方航空", "南方航空", "山东航空"),
    "online": ("京东", "淘宝", "拼多多", "唯品会", "苏宁易购", "美团", "饿了么", "抖音商城"),
}


@dataclass(frozen=True)
class AccountOpeningApplication:
    """A company's pending application to open an account, as core banking holds it (R7.5)."""

    number: str
    account_number: str
    # "pending" until the legal representative's intent is recorded, then "intent_confirmed" or "intent_refused".
    status: str
    company_name: str
    # The unified social credit code (GB 32100-2015).
    credit_code: str
    legal_rep_name: str
    legal_rep_id_number: str
    legal_rep_mobile: str


class CoreBanking(Protocol):
    def account_opening_application(self, *, account_number: str) -> AccountOpeningApplication | None: ...

    def account_opening_intent_record(
        self, *, application_number: str, confirmed: bool, reference: str
    ) -> CoreResult: ...

    def account_transactions(self, *, account_number: str, days: int) -> list[Transaction]: ...

    def account_activate(self, *, account_number: str, pin_block: str, reference: str) -> CoreResult: ...

    def account_pin_reset(self, *, account_number: str, pin_block: str, reference: str) -> CoreResult: ...

    def account_lost_report_release(self, *, account_number: str, reference: str) -> CoreResult: ...

    def customer_info_update(self, *, customer_number: str, changes: dict[str, Any], reference: str) -> CoreResult: ...


class SandboxCoreBanking:
    """Core banking over our own tables, slow and fallible like the real one.

    Each call waits a latency drawn in [``latency_min_ms``, ``latency_max_ms``];
    with probability ``error_rate`` it raises CoreBankingUnavailable having
    done nothing; with probability ``timeout_rate`` it waits ``timeout_seconds``
    and raises CoreBankingTimeout — after applying the change in
    ``timeout_after_apply_share`` of those cases, as a real system whose answer
    was lost would. ``seed`` makes the draws reproducible.
    """

    def __init__(
        self,
        *,
        latency_min_ms: int = 100,
        latency_max_ms: int = 600,
        error_rate: float = 0.01,
        timeout_rate: float = 0.01,
        timeout_seconds: float = 5.0,
        timeout_after_apply_share: float = 0.5,
        seed: int | None = None,
    ) -> None:
        for name, rate in (
            ("error_rate", error_rate),
            ("timeout_rate", timeout_rate),
            ("timeout_after_apply_share", timeout_after_apply_share),
        ):
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {rate}")
        if error_rate + timeout_rate > 1.0:
            raise ValueError("error_rate + timeout_rate must not exceed 1")
        self.latency_min_ms = latency_min_ms
        self.latency_max_ms = max(latency_min_ms, latency_max_ms)
        self.error_rate = error_rate
        self.timeout_rate = timeout_rate
        self.timeout_seconds = timeout_seconds
        self.timeout_after_apply_share = timeout_after_apply_share
        self._random = random.Random(seed)  # noqa: S311 - simulation draws, not secrets
        self._lock = threading.Lock()
        # Applications registered explicitly (a test's "the company named someone else"),
        # and intents recorded, by application number.
        self._applications: dict[str, AccountOpeningApplication] = {}
        self._intents: dict[str, tuple[bool, str]] = {}

    def _call(self, apply: Callable[[], _T]) -> _T:
        with self._lock:
            latency = self._random.uniform(self.latency_min_ms, self.latency_max_ms) / 1000
            draw = self._random.random()
            after_apply = self._random.random() < self.timeout_after_apply_share
        time.sleep(latency)
        if draw < self.error_rate:
            raise CoreBankingUnavailable("core banking answered with a service error")
        if draw < self.error_rate + self.timeout_rate:
            if after_apply:
                apply()
            time.sleep(max(0.0, self.timeout_seconds - latency))
            raise CoreBankingTimeout(f"core banking did not answer within {self.timeout_seconds:g} s")
        return apply()

    def _account(self, account_number: str, reference: str, *, require: set[str], **change: Any) -> CoreResult:
        from apps.customers.models import Account
        from apps.customers.services import account_core_update

        def apply() -> CoreResult:
            account = Account.objects.filter(number=account_number).first()
            if account is None:
                raise CoreBankingRejected("no such account")
            if account.core_reference != reference and account.status not in require:
                raise CoreBankingRejected(f"account status is {account.status}")
            applied = account_core_update(
                actor=CORE, number=account_number, reference=reference, on=timezone.localdate(), **change
            )
            return CoreResult(reference=reference, applied_now=applied)

        return self._call(apply)

    def account_transactions(self, *, account_number: str, days: int) -> list[Transaction]:
        """The account's statement for the last ``days`` days, newest first.

        The history is made up but stable: drawn from a generator seeded by
        the account number, so the same account shows the same payments on
        every enquiry (as a real statement would) until they age out.
        """
        from apps.customers.models import Account

        def read() -> list[Transaction]:
            account = Account.objects.filter(number=account_number).only("opened_on").first()
            if account is None:
                raise CoreBankingRejected("no such account")
            return _sandbox_statement(account_number, since=account.opened_on, days=days, now=timezone.now())

        return self._call(read)

    def application_register(self, application: AccountOpeningApplication) -> None:
        """Put an application into the sandbox's books (what the branch would have keyed in)."""
        with self._lock:
            self._applications[application.account_number] = application

    def account_opening_application(self, *, account_number: str) -> AccountOpeningApplication | None:
        """The company's application behind an inactive corporate account, or None if there is none.

        Unless one was registered, the sandbox derives it from the account:
        the company named on it and its owner as the legal representative,
        with a stable application number and a valid credit code.
        """
        from apps.customers.models import Account, AccountKind, AccountStatus

        def read() -> AccountOpeningApplication | None:
            with self._lock:
                registered = self._applications.get(account_number)
            application = registered or _derived_application(
                Account.objects.select_related("owner")
                .filter(number=account_number, kind=AccountKind.CORPORATE, status=AccountStatus.INACTIVE)
                .first()
            )
            if application is None:
                return None
            with self._lock:
                recorded = self._intents.get(application.number)
            if recorded is not None:
                status = "intent_confirmed" if recorded[0] else "intent_refused"
                application = AccountOpeningApplication(**{**application.__dict__, "status": status})
            return application

        return self._call(read)

    def account_opening_intent_record(self, *, application_number: str, confirmed: bool, reference: str) -> CoreResult:
        """Record the legal representative's answer on the application (once per reference)."""

        def apply() -> CoreResult:
            with self._lock:
                previous = self._intents.get(application_number)
                if previous is not None and previous[1] != reference:
                    raise CoreBankingRejected("the intent of this application is already recorded")
                self._intents[application_number] = (confirmed, reference)
            return CoreResult(reference=reference, applied_now=previous is None)

        return self._call(apply)

    def account_activate(self, *, account_number: str, pin_block: str, reference: str) -> CoreResult:
        from apps.customers.models import AccountStatus

        pin_hash = _verification_value(pin_block, account_number=account_number)
        return self._account(
            account_number, reference, require={"inactive"}, status=AccountStatus.NORMAL, pin_hash=pin_hash
        )

    def account_pin_reset(self, *, account_number: str, pin_block: str, reference: str) -> CoreResult:
        pin_hash = _verification_value(pin_block, account_number=account_number)
        return self._account(account_number, reference, require={"normal", "dormant"}, pin_hash=pin_hash)

    def account_lost_report_release(self, *, account_number: str, reference: str) -> CoreResult:
        from apps.customers.models import AccountStatus

        return self._account(account_number, reference, require={"reported_lost"}, status=AccountStatus.NORMAL)

    def customer_info_update(self, *, customer_number: str, changes: dict[str, Any], reference: str) -> CoreResult:
        from apps.customers.services import customer_core_update

        def apply() -> CoreResult:
            applied = customer_core_update(
                actor=CORE, customer_number=customer_number, reference=reference, changes=changes
            )
            return CoreResult(reference=reference, applied_now=applied)

        return self._call(apply)


def _verification_value(block: str, *, account_number: str) -> str:
    """The sandbox's HSM: open the block made for this account and keep only a keyed verification value."""
    try:
        pin = pin_block_open(block, account_number=account_number)
    except PinBlockInvalid as exc:
        raise CoreBankingRejected("the PIN block does not open for this account") from exc
    return pin_verification_value(pin, account_number=account_number)


def _derived_application(account: Any) -> AccountOpeningApplication | None:
    if account is None or not account.company_name:
        return None
    from apps.common.checksums import USCC_ALPHABET, uscc_check_char

    digest = hashlib.sha256(f"sandbox-application:{account.number}".encode()).digest()
    body = "91" + "370200" + "".join(USCC_ALPHABET[byte % 31] for byte in digest[:9])
    owner = account.owner
    return AccountOpeningApplication(
        number=f"KH{account.opened_on:%Y%m%d}{int.from_bytes(digest[9:12], 'big') % 1_000_000:06d}",
        account_number=account.number,
        status="pending",
        company_name=account.company_name,
        credit_code=body + uscc_check_char(body),
        legal_rep_name=owner.name,
        legal_rep_id_number=owner.id_number,
        legal_rep_mobile=owner.mobile,
    )


def _sandbox_statement(account_number: str, *, since: Any, days: int, now: datetime) -> list[Transaction]:
    digest = hashlib.sha256(f"sandbox-statement:{account_number}".encode()).digest()
    rng = random.Random(int.from_bytes(digest[:8], "big"))  # noqa: S311 - made-up statements, not secrets
    # Each account pays a handful of regular payees: who, from its own seed.
    payees = [(category, rng.choice(names)) for category, names in SANDBOX_COUNTERPARTIES.items()]
    payees = rng.sample(payees, k=rng.randint(2, len(payees)))
    # Payments land on a day grid anchored to the epoch so the history slides with time.
    day_index = int(now.timestamp() // 86400)
    statement = []
    for back in range(days):
        day = day_index - back
        day_rng = random.Random(int.from_bytes(digest[8:16], "big") ^ day)  # noqa: S311
        if day_rng.random() > 0.35:
            continue
        category, payee = day_rng.choice(payees)
        amount = int(day_rng.lognormvariate(10.3, 1.1))  # median about 300 yuan, in fen
        posted = datetime.fromtimestamp(day * 86400, tz=now.tzinfo) + timedelta(hours=day_rng.uniform(8, 22))
        if posted > now or posted.date() < since:
            continue
        statement.append(Transaction(posted, max(amount, 100), "debit", payee, category))
    return statement


def build_core_banking(adapter: str, options: dict[str, Any]) -> CoreBanking:
    if adapter == "sandbox":
        return SandboxCoreBanking(**options)
    raise ValueError(f"unknown core banking adapter {adapter!r}")


_core_singleton: CoreBanking | None = None
_singleton_lock = threading.Lock()


def get_core_banking() -> CoreBanking:
    """The process-wide adapter chosen by ``settings.CORE_BANKING_ADAPTER``."""
    global _core_singleton  # noqa: PLW0603 - a deliberate per-process singleton
    if _core_singleton is None:
        with _singleton_lock:
            if _core_singleton is None:
                from django.conf import settings

                _core_singleton = build_core_banking(settings.CORE_BANKING_ADAPTER, dict(settings.CORE_BANKING_SANDBOX))
    return _core_singleton
