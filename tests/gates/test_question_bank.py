"""Gate 4's question bank, maintained by the bank (R6.4): templates, sources, plausible options, policy.

These run the draw against the database and the core-banking sandbox's real
statements; the in-call path (the customer answering on their page) is
tests/gates/test_questions.py and tests/operations/test_customer_page.py.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.audit.models import AuditRecord
from apps.customers.integrations.core_banking import SANDBOX_COUNTERPARTIES, SandboxCoreBanking
from apps.customers.models import Account, AccountKind, AccountStatus, Branch, Customer
from apps.customers.services import account_upsert, branch_upsert
from apps.gates.models import QuestionPolicy, QuestionTemplate
from apps.gates.questions import (
    AMOUNT_BANDS,
    PROVINCE_CITIES,
    AskContext,
    QuestionBankTooSmall,
    TemplateRow,
    amount_band,
    questions_draw,
)
from apps.gates.selectors import question_policy_for, question_templates_active
from apps.gates.services import question_policy_set, question_template_save
from tests.conftest import SYSTEM
from tests.security.helpers import force_login_verified

pytestmark = pytest.mark.django_db

QUIET_CORE = SandboxCoreBanking(latency_min_ms=0, latency_max_ms=0, error_rate=0, timeout_rate=0)


@pytest.fixture
def bank(db: None) -> list[Branch]:
    """A bank of one province with several branches in two cities."""
    rows = [
        ("0100", "滨海分行营业部", "滨海"),
        ("0101", "市南支行", "滨海"),
        ("0102", "市北支行", "滨海"),
        ("0103", "高新区支行", "滨海"),
        ("0201", "青山县支行", "青山"),
        ("0202", "青山开发区支行", "青山"),
    ]
    return [branch_upsert(actor=SYSTEM, code=c, name=n, city=city, province="山东") for c, n, city in rows]


@pytest.fixture
def holder(bank: list[Branch], make_customer: Callable[..., Customer]) -> tuple[Customer, Account]:
    customer = make_customer()
    customer.home_branch = bank[1]
    customer.save(update_fields=["home_branch"])
    account = account_upsert(
        actor=SYSTEM,
        number="6217860000000000011",
        kind=AccountKind.DEBIT_CARD,
        status=AccountStatus.NORMAL,
        owner=customer,
        opening_branch=bank[2],
        opened_on=date(2015, 3, 1),
        status_since=date(2015, 3, 1),
    )
    return customer, account


def _context(holder: tuple[Customer, Account], *, visible: tuple[str, ...] = (), statement: Any = "read") -> AskContext:
    customer, account = holder
    if statement == "read":
        statement = QUIET_CORE.account_transactions(account_number=account.number, days=90)
    return AskContext(customer=customer, account=account, statement=statement, visible=visible)


def _only(source: str, code: str = "q") -> list[TemplateRow]:
    return [TemplateRow(code=code, text="问", text_en="Q", answer_source=source, weight=1)]


def test_a_question_added_in_the_back_office_is_drawn_with_its_own_words(
    client: Client, administrator: User, holder: tuple[Customer, Account]
) -> None:
    force_login_verified(client, administrator)
    response = client.post(
        reverse("admin:gates_questiontemplate_add"),
        {
            "code": "year-opened",
            "text": "您的这个账户开立于哪一年？",
            "text_en": "Which year did you open this account?",
            "answer_source": "account.opening_year",
            "weight": 5,
            "active": "on",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    template = QuestionTemplate.objects.get(code="year-opened")
    assert AuditRecord.objects.filter(action="gates.question_template.saved", target_id=str(template.pk)).exists()
    # Retire everything else: the new question is then the only one the draw can ask.
    for other in QuestionTemplate.objects.exclude(code="year-opened"):
        question_template_save(
            actor=SYSTEM, code=other.code, text=other.text, text_en=other.text_en,
            answer_source=other.answer_source, weight=other.weight, active=False,
        )  # fmt: skip
    [question] = questions_draw(templates=question_templates_active(), context=_context(holder), count=1)
    assert (question.code, question.text) == ("year-opened", "您的这个账户开立于哪一年？")
    assert question.options[question.correct] == "2015"
    with pytest.raises(QuestionBankTooSmall):
        questions_draw(templates=question_templates_active(), context=_context(holder), count=2)


def test_the_back_office_cannot_delete_a_question_only_retire_it(client: Client, administrator: User) -> None:
    force_login_verified(client, administrator)
    template = QuestionTemplate.objects.get(code="opening-year")
    response = client.post(reverse("admin:gates_questiontemplate_delete", args=[template.pk]), {"post": "yes"})
    assert response.status_code == 403
    assert QuestionTemplate.objects.filter(pk=template.pk).exists()


def test_agents_cannot_edit_the_question_bank(client: Client, agent: User) -> None:
    force_login_verified(client, agent)
    assert client.get(reverse("admin:gates_questiontemplate_changelist")).status_code == 403


@pytest.mark.parametrize(
    "source",
    ["account.opening_branch", "customer.home_branch", "customer.home_city", "account.opening_year",
     "transactions.recent_counterparty", "transactions.recent_amount"],
)  # fmt: skip
def test_every_source_gives_four_distinct_options_with_the_right_one_among_them(
    source: str, holder: tuple[Customer, Account]
) -> None:
    customer, account = holder
    statement = QUIET_CORE.account_transactions(account_number=account.number, days=90)
    for _ in range(20):
        [question] = questions_draw(templates=_only(source), context=_context(holder, statement=statement), count=1)
        assert len(set(question.options)) == 4
        right = question.options[question.correct]
        expected = {
            "account.opening_branch": account.opening_branch.name,
            "customer.home_branch": customer.home_branch.name,
            "customer.home_city": customer.home_branch.city,
            "account.opening_year": "2015",
        }.get(source)
        if expected is not None:
            assert right == expected
        wrong = [option for i, option in enumerate(question.options) if i != question.correct]
        assert right not in wrong


def test_wrong_branches_and_cities_are_plausible_same_city_and_same_province(holder: tuple[Customer, Account]) -> None:
    bank_in_city = set(Branch.objects.filter(city="滨海").values_list("name", flat=True))
    [branch_q] = questions_draw(templates=_only("account.opening_branch"), context=_context(holder), count=1)
    assert set(branch_q.options) <= bank_in_city  # four branches in 滨海: all options are the bank's own there
    seen: Counter[str] = Counter()
    for _ in range(30):
        [city_q] = questions_draw(templates=_only("customer.home_city"), context=_context(holder), count=1)
        seen.update(city_q.options)
    allowed = {"滨海", "青山", *PROVINCE_CITIES["山东"]}
    assert set(seen) <= allowed  # no Beijing or Shanghai next to a Shandong county town
    assert seen["青山"] == 30  # the bank's other city is always among the wrong ones


def test_wrong_payees_are_of_the_same_kind_and_never_in_the_customers_statement(
    holder: tuple[Customer, Account],
) -> None:
    _, account = holder
    statement = QUIET_CORE.account_transactions(account_number=account.number, days=90)
    assert statement, "the sandbox statement of an account opened in 2015 has payments"
    paid = {t.counterparty for t in statement}
    category_of = {name: category for category, names in SANDBOX_COUNTERPARTIES.items() for name in names}
    recent = {t.counterparty for t in statement if t.posted_at >= timezone.now() - timedelta(days=30)}
    for _ in range(20):
        [question] = questions_draw(
            templates=_only("transactions.recent_counterparty"), context=_context(holder, statement=statement), count=1
        )
        right = question.options[question.correct]
        assert right in recent
        wrong = [option for i, option in enumerate(question.options) if i != question.correct]
        assert not set(wrong) & paid
        same_kind = [option for option in wrong if category_of[option] == category_of[right]]
        assert len(same_kind) >= min(3, len(set(SANDBOX_COUNTERPARTIES[category_of[right]]) - paid))


def test_the_amount_question_asks_for_the_band_of_the_latest_payment(holder: tuple[Customer, Account]) -> None:
    _, account = holder
    statement = QUIET_CORE.account_transactions(account_number=account.number, days=90)
    recent = [t for t in statement if t.posted_at >= timezone.now() - timedelta(days=30)]
    latest = max(recent, key=lambda t: t.posted_at)
    [question] = questions_draw(
        templates=_only("transactions.recent_amount"), context=_context(holder, statement=statement), count=1
    )
    right = int(question.options[question.correct])
    low, high = AMOUNT_BANDS[right]
    assert low * 100 <= latest.amount_fen and (high is None or latest.amount_fen < high * 100)
    assert right == amount_band(latest.amount_fen)
    assert all(abs(int(option) - right) <= 3 for option in question.options)  # neighbouring bands


def test_the_statement_is_stable_between_enquiries_and_unknown_accounts_are_refused(
    holder: tuple[Customer, Account],
) -> None:
    _, account = holder
    first = QUIET_CORE.account_transactions(account_number=account.number, days=90)
    assert first == QUIET_CORE.account_transactions(account_number=account.number, days=90)
    from apps.customers.integrations.core_banking import CoreBankingRejected

    with pytest.raises(CoreBankingRejected):
        QUIET_CORE.account_transactions(account_number="6217869999999999999", days=90)


def test_nothing_visible_on_the_card_is_asked(holder: tuple[Customer, Account]) -> None:
    customer, _ = holder
    address = f"山东省{customer.home_branch.city}市香港中路36号"  # the card shows the home city
    templates = _only("customer.home_city", "city") + _only("account.opening_year", "year")
    for _ in range(10):
        drawn = questions_draw(templates=templates, context=_context(holder, visible=(address,)), count=1)
        assert [q.code for q in drawn] == ["year"]
    with pytest.raises(QuestionBankTooSmall):
        questions_draw(templates=templates, context=_context(holder, visible=(address,)), count=2)


def test_without_a_statement_the_draw_uses_the_questions_that_need_none(holder: tuple[Customer, Account]) -> None:
    templates = _only("transactions.recent_counterparty", "payee") + _only("account.opening_year", "year")
    drawn = questions_draw(templates=templates, context=_context(holder, statement=None), count=1)
    assert [q.code for q in drawn] == ["year"]


def test_weights_make_a_question_more_likely(holder: tuple[Customer, Account]) -> None:
    templates = [
        TemplateRow(code="heavy", text="问", text_en="Q", answer_source="account.opening_year", weight=20),
        TemplateRow(code="light", text="问", text_en="Q", answer_source="customer.home_branch", weight=1),
    ]
    counts = Counter(questions_draw(templates=templates, context=_context(holder), count=1)[0].code for _ in range(200))
    assert counts["heavy"] > 150 and counts["light"] >= 1


def test_a_business_policy_sets_how_many_are_asked_and_may_be_wrong(settings: Any) -> None:
    assert question_policy_for(business_code="password_reset") == (
        settings.GATE_QUESTIONS_COUNT,
        settings.GATE_QUESTIONS_MAX_WRONG,
    )
    question_policy_set(actor=SYSTEM, business_code="password_reset", count=4, max_wrong=1)
    assert question_policy_for(business_code="password_reset") == (4, 1)
    assert AuditRecord.objects.filter(action="gates.question_policy.saved").count() == 1
    from apps.common.errors import ValidationFailed

    with pytest.raises(ValidationFailed):
        question_policy_set(actor=SYSTEM, business_code="password_reset", count=2, max_wrong=2)
    assert QuestionPolicy.objects.get(business_code="password_reset").count == 4


def test_a_draw_made_before_the_bank_kept_its_own_questions_still_renders_readably() -> None:
    from apps.gates.questions import question_render
    from apps.gates.selectors import _stored_question

    shown = question_render(**_stored_question({"kind": "account_kind", "options": ["debit_card", "passbook"]}))
    assert shown["text"] == "这个账户是什么类型？"
    assert "debit_card" not in shown["options"] and len(shown["options"]) == 2
