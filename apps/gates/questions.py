"""Gate 4's question bank (R6.4): multiple-choice questions whose answers come from the customer's own data.

Each kind knows how to ask one question about one customer and account: the
right answer and three wrong ones drawn from plausible values. Which kinds
may be drawn, and how many per service, are settings
(``GATE_QUESTIONS_KINDS``, ``GATE_QUESTIONS_COUNT``). A new kind is one
function here and one entry in ``QUESTION_KINDS``.

Questions are stored as data (kind + option values); their text and option
labels are rendered when shown, in the reader's language. The right answers
never leave the server.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from apps.customers.models import Account, AccountKind, Branch, Customer

OPTIONS_PER_QUESTION = 4
# Plausible wrong answers when the bank has too few branches of its own to draw from.
_CITY_POOL = ("北京", "上海", "广州", "深圳", "杭州", "成都", "武汉", "西安", "南京", "大连", "厦门", "天津")
_BRANCH_POOL = ("城东支行", "城西支行", "高新区支行", "开发区支行", "中心支行", "港湾支行", "新区支行", "滨江支行")

_random = secrets.SystemRandom()


@dataclass(frozen=True)
class Question:
    kind: str
    options: list[str]
    correct: int


@dataclass(frozen=True)
class QuestionKind:
    code: str
    text: str | Promise
    ask: Callable[[Customer, Account], Question]
    # How an option value is shown (e.g. an account kind code → its label).
    label: Callable[[str], str] = str


def _distinct_options(correct: str, candidates: Sequence[str]) -> tuple[list[str], int]:
    wrong = [value for value in dict.fromkeys(candidates) if value and value != correct]
    _random.shuffle(wrong)
    options = [correct, *wrong[: OPTIONS_PER_QUESTION - 1]]
    _random.shuffle(options)
    return options, options.index(correct)


def _other_branch_names(exclude: str) -> list[str]:
    names = list(Branch.objects.exclude(name=exclude).values_list("name", flat=True)[:50])
    return names + list(_BRANCH_POOL)


def _other_cities(exclude: str) -> list[str]:
    cities = list(Branch.objects.exclude(city=exclude).values_list("city", flat=True).distinct()[:50])
    return cities + list(_CITY_POOL)


def _ask_opening_branch(customer: Customer, account: Account) -> Question:
    correct = account.opening_branch.name
    options, index = _distinct_options(correct, _other_branch_names(correct))
    return Question("opening_branch", options, index)


def _ask_home_branch(customer: Customer, account: Account) -> Question:
    correct = customer.home_branch.name
    options, index = _distinct_options(correct, _other_branch_names(correct))
    return Question("home_branch", options, index)


def _ask_home_city(customer: Customer, account: Account) -> Question:
    correct = customer.home_branch.city
    options, index = _distinct_options(correct, _other_cities(correct))
    return Question("home_city", options, index)


def _ask_account_kind(customer: Customer, account: Account) -> Question:
    options, index = _distinct_options(account.kind, [kind.value for kind in AccountKind])
    return Question("account_kind", options, index)


def _ask_opening_year(customer: Customer, account: Account) -> Question:
    year = account.opened_on.year
    candidates = [str(year + delta) for delta in (-3, -2, -1, 1, 2, 3)]
    options, index = _distinct_options(str(year), candidates)
    return Question("opening_year", options, index)


def _account_kind_label(value: str) -> str:
    try:
        return str(AccountKind(value).label)
    except ValueError:
        return value


QUESTION_KINDS: dict[str, QuestionKind] = {
    kind.code: kind
    for kind in (
        QuestionKind("opening_branch", _("At which branch was this account opened?"), _ask_opening_branch),
        QuestionKind("home_branch", _("Which is your home branch at our bank?"), _ask_home_branch),
        QuestionKind("home_city", _("In which city are you registered with our bank?"), _ask_home_city),
        QuestionKind("account_kind", _("What kind of account is this?"), _ask_account_kind, label=_account_kind_label),
        QuestionKind("opening_year", _("In which year was this account opened?"), _ask_opening_year),
    )
}


def questions_draw(*, customer: Customer, account: Account, kinds: Sequence[str], count: int) -> list[Question]:
    """``count`` questions of distinct kinds, drawn at random from ``kinds``."""
    usable = [QUESTION_KINDS[code] for code in kinds if code in QUESTION_KINDS]
    if len(usable) < count:
        raise ValueError(f"the question bank has {len(usable)} usable kinds, {count} are needed")
    chosen = _random.sample(usable, count)
    return [kind.ask(customer, account) for kind in chosen]


def question_render(*, kind: str, options: Sequence[str]) -> dict[str, object]:
    """What the customer's page shows: the text and the option labels, in the active language."""
    question_kind = QUESTION_KINDS[kind]
    return {
        "kind": kind,
        "text": str(question_kind.text),
        "options": [question_kind.label(value) for value in options],
    }
