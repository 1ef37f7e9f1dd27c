"""Gate 4's question bank (R6.4): multiple-choice questions whose answers come from the customer's own data.

The bank maintains the questions (``QuestionTemplate`` rows, in the back
office): each names an answer source, and this module knows how to read each
source for one customer and account and how to draw wrong options that look
like the right one:

- branches: other branches of the bank in the same city, then the same
  province, then generic branch names only if the bank has too few;
- cities: other cities of the same province (the bank's own first);
- years: the neighbouring years, never one in the future;
- payees: payees of the same merchant category that are nowhere in the
  customer's statement (so no wrong option is secretly right);
- amounts: the neighbouring amount bands.

A draw never asks what the customer can read off their own card or screen:
sources like the account kind or the name are not offered at all, and a
question whose right answer appears in what the customer photographed at
Gate 1 (e.g. their home city in the card's address) is skipped.

Questions are snapshotted into the draw (text in both languages, source and
option values): editing or retiring a template never changes evidence. The
right answers never leave the server.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from django.utils import timezone, translation
from django.utils.translation import gettext as _

from apps.customers.integrations.core_banking import SANDBOX_COUNTERPARTIES, Transaction
from apps.customers.models import Account, Branch, Customer
from apps.gates.models import AnswerSource

OPTIONS_PER_QUESTION = 4
# Statements are read this far back; payee questions look at the last RECENT_DAYS.
STATEMENT_DAYS = 90
RECENT_DAYS = 30
# Last resort when the bank has too few branches of its own to draw from.
_BRANCH_POOL = ("城东支行", "城西支行", "高新区支行", "开发区支行", "中心支行", "港湾支行", "新区支行", "滨江支行")
# Prefecture-level cities by province: wrong city options come from the
# customer's own province, so the right one does not stand out.
PROVINCE_CITIES: dict[str, tuple[str, ...]] = {
    "山东": ("济南", "青岛", "烟台", "潍坊", "威海", "日照", "淄博", "临沂", "济宁", "泰安", "德州", "聊城"),
    "江苏": ("南京", "苏州", "无锡", "常州", "南通", "扬州", "徐州", "镇江", "盐城", "泰州"),
    "浙江": ("杭州", "宁波", "温州", "绍兴", "嘉兴", "湖州", "金华", "台州", "舟山", "丽水"),
    "广东": ("广州", "深圳", "佛山", "东莞", "珠海", "中山", "惠州", "汕头", "江门", "湛江"),
    "河北": ("石家庄", "唐山", "保定", "邯郸", "秦皇岛", "沧州", "廊坊", "邢台", "张家口", "承德"),
    "河南": ("郑州", "洛阳", "开封", "新乡", "南阳", "许昌", "安阳", "商丘", "信阳", "焦作"),
    "四川": ("成都", "绵阳", "德阳", "宜宾", "南充", "泸州", "乐山", "自贡", "达州", "眉山"),
    "湖北": ("武汉", "宜昌", "襄阳", "荆州", "黄石", "十堰", "孝感", "荆门", "黄冈", "咸宁"),
    "湖南": ("长沙", "株洲", "湘潭", "衡阳", "岳阳", "常德", "郴州", "益阳", "邵阳", "娄底"),
    "辽宁": ("沈阳", "大连", "鞍山", "抚顺", "锦州", "营口", "丹东", "盘锦", "本溪", "辽阳"),
    "福建": ("福州", "厦门", "泉州", "漳州", "莆田", "三明", "龙岩", "南平", "宁德"),
}
_NATIONAL_CITIES = ("北京", "上海", "天津", "重庆", "广州", "深圳", "杭州", "成都", "武汉", "西安", "南京")
# Amount bands in yuan for "about how much was your latest payment?".
AMOUNT_BANDS = ((0, 50), (50, 200), (200, 500), (500, 1000), (1000, 3000), (3000, 10000), (10000, 50000), (50000, None))

_random = secrets.SystemRandom()

# The bank's starting set (installed by migration 0003 and seed_demo; the bank
# adds, edits and retires questions in the back office afterwards):
# (code, text, English text, answer source).
DEFAULT_TEMPLATES: tuple[tuple[str, str, str, str], ...] = (
    (
        "opening-branch",
        "这个账户是在哪个网点开立的？",
        "At which branch was this account opened?",
        "account.opening_branch",
    ),
    ("opening-year", "这个账户是哪一年开立的？", "In which year was this account opened?", "account.opening_year"),
    ("home-branch", "您在本行的归属网点是哪个？", "Which is your home branch at our bank?", "customer.home_branch"),
    (
        "home-city",
        "您在本行登记的城市是哪里？",
        "In which city are you registered with our bank?",
        "customer.home_city",
    ),
    (
        "recent-payee",
        "最近一个月内，您曾向以下哪一家付款？",
        "Which of these did you pay in the last month?",
        "transactions.recent_counterparty",
    ),
    (
        "recent-amount",
        "您最近一笔支出的金额大约是多少？",
        "About how much was your most recent payment?",
        "transactions.recent_amount",
    ),
)


@dataclass(frozen=True)
class TemplateRow:
    """What a draw needs of a ``QuestionTemplate`` (selectors read them)."""

    code: str
    text: str
    text_en: str
    answer_source: str
    weight: int


@dataclass(frozen=True)
class AskContext:
    customer: Customer
    account: Account
    # None when core banking could not be asked: transaction questions are then not drawn.
    statement: list[Transaction] | None
    # Texts the customer has in front of them (the card they photographed, the account number).
    visible: tuple[str, ...] = ()
    today: date | None = None


@dataclass(frozen=True)
class Question:
    code: str
    text: str
    text_en: str
    source: str
    options: list[str]
    correct: int


# A source answers (right value, wrong candidates in tiers from most to least plausible), or None if it cannot ask.
Answer = tuple[str, list[Sequence[str]]]


def _branch_tiers(branch: Branch) -> list[Sequence[str]]:
    others = Branch.objects.exclude(name=branch.name)
    same_city = list(others.filter(city=branch.city).values_list("name", flat=True)[:50])
    same_province = (
        list(others.filter(province=branch.province).exclude(city=branch.city).values_list("name", flat=True)[:50])
        if branch.province
        else []
    )
    return [same_city, same_province, _BRANCH_POOL]


def _ask_opening_branch(context: AskContext) -> Answer | None:
    branch = context.account.opening_branch
    return branch.name, _branch_tiers(branch)


def _ask_home_branch(context: AskContext) -> Answer | None:
    branch = context.customer.home_branch
    return branch.name, _branch_tiers(branch)


def _ask_home_city(context: AskContext) -> Answer | None:
    branch = context.customer.home_branch
    bank_cities = list(
        Branch.objects.filter(province=branch.province).exclude(city=branch.city).values_list("city", flat=True)
    )
    return branch.city, [bank_cities, PROVINCE_CITIES.get(branch.province, ()), _NATIONAL_CITIES]


def _ask_opening_year(context: AskContext) -> Answer | None:
    year = context.account.opened_on.year
    this_year = (context.today or timezone.localdate()).year
    near = [str(year + delta) for delta in (-2, -1, 1, 2) if year + delta <= this_year]
    far = [str(year + delta) for delta in (-4, -3, 3, 4) if year + delta <= this_year]
    return str(year), [near, far]


def _recent_debits(context: AskContext) -> list[Transaction] | None:
    if context.statement is None:
        return None
    since = timezone.now() - timedelta(days=RECENT_DAYS)
    return [t for t in context.statement if t.direction == "debit" and t.posted_at >= since]


def _ask_recent_counterparty(context: AskContext) -> Answer | None:
    recent = _recent_debits(context)
    if not recent or context.statement is None:
        return None
    paid = _random.choice(recent)
    # A wrong option must be wrong: nobody the customer paid in the whole statement window.
    known = {t.counterparty for t in context.statement}
    same_category = [name for name in SANDBOX_COUNTERPARTIES.get(paid.category, ()) if name not in known]
    other = [name for names in SANDBOX_COUNTERPARTIES.values() for name in names if name not in known]
    return paid.counterparty, [same_category, other]


def amount_band(amount_fen: int) -> int:
    yuan = amount_fen / 100
    for index, (low, high) in enumerate(AMOUNT_BANDS):
        if yuan >= low and (high is None or yuan < high):
            return index
    return len(AMOUNT_BANDS) - 1


def _ask_recent_amount(context: AskContext) -> Answer | None:
    recent = _recent_debits(context)
    if not recent:
        return None
    latest = max(recent, key=lambda t: t.posted_at)
    band = amount_band(latest.amount_fen)
    by_distance = sorted((i for i in range(len(AMOUNT_BANDS)) if i != band), key=lambda i: abs(i - band))
    return str(band), [[str(i) for i in by_distance[:3]], [str(i) for i in by_distance[3:]]]


def _amount_band_label(value: str) -> str:
    low, high = AMOUNT_BANDS[int(value)]
    if high is None:
        return _("%(low)s yuan or more") % {"low": f"{low:,}"}
    return _("%(low)s–%(high)s yuan") % {"low": f"{low:,}", "high": f"{high:,}"}


def _year_label(value: str) -> str:
    return _("%(year)s") % {"year": value}


@dataclass(frozen=True)
class SourceReader:
    ask: Callable[[AskContext], Answer | None]
    # How an option value is shown (e.g. an amount band index → "200–500 元").
    label: Callable[[str], str] = str
    # The right answer is a string that could be printed on the card or screen
    # (checked against what the customer can see, and skipped if it is).
    checked_against_visible: bool = True


SOURCES: dict[str, SourceReader] = {
    AnswerSource.OPENING_BRANCH: SourceReader(_ask_opening_branch),
    AnswerSource.HOME_BRANCH: SourceReader(_ask_home_branch),
    AnswerSource.HOME_CITY: SourceReader(_ask_home_city),
    AnswerSource.OPENING_YEAR: SourceReader(_ask_opening_year, label=_year_label),
    AnswerSource.RECENT_COUNTERPARTY: SourceReader(_ask_recent_counterparty),
    AnswerSource.RECENT_AMOUNT: SourceReader(
        _ask_recent_amount, label=_amount_band_label, checked_against_visible=False
    ),
}


def _wrong_options(correct: str, tiers: Sequence[Sequence[str]]) -> list[str]:
    wrong: list[str] = []
    for tier in tiers:
        pool = [value for value in dict.fromkeys(tier) if value and value != correct and value not in wrong]
        _random.shuffle(pool)
        wrong.extend(pool[: OPTIONS_PER_QUESTION - 1 - len(wrong)])
        if len(wrong) == OPTIONS_PER_QUESTION - 1:
            break
    return wrong


def _is_visible(value: str, visible: Sequence[str]) -> bool:
    return any(value and value in text for text in visible if text)


def _ask(template: TemplateRow, context: AskContext) -> Question | None:
    reader = SOURCES.get(template.answer_source)
    if reader is None:
        return None
    answer = reader.ask(context)
    if answer is None:
        return None
    correct, tiers = answer
    if reader.checked_against_visible and _is_visible(correct, context.visible):
        return None
    wrong = _wrong_options(correct, tiers)
    if len(wrong) < OPTIONS_PER_QUESTION - 1:
        return None
    options = [correct, *wrong]
    _random.shuffle(options)
    return Question(
        template.code, template.text, template.text_en, template.answer_source, options, options.index(correct)
    )


class QuestionBankTooSmall(Exception):
    def __init__(self, usable: int, needed: int) -> None:
        super().__init__(f"the question bank has {usable} usable questions for this customer, {needed} are needed")
        self.usable = usable
        self.needed = needed


def questions_draw(*, templates: Sequence[TemplateRow], context: AskContext, count: int) -> list[Question]:
    """``count`` questions from distinct answer sources, drawn by weight among those that can be asked."""
    remaining = list(templates)
    drawn: list[Question] = []
    used_sources: set[str] = set()
    while len(drawn) < count:
        candidates = [t for t in remaining if t.answer_source not in used_sources]
        if not candidates:
            raise QuestionBankTooSmall(len(drawn), count)
        template = _random.choices(candidates, weights=[max(1, t.weight) for t in candidates])[0]
        remaining.remove(template)
        question = _ask(template, context)
        if question is not None:
            drawn.append(question)
            used_sources.add(template.answer_source)
    return drawn


def question_render(*, code: str, text: str, text_en: str, source: str, options: Sequence[str]) -> dict[str, object]:
    """What the customer's page shows: the bank's text and the option labels, in the active language."""
    reader = SOURCES.get(source)
    label = reader.label if reader is not None else str
    english = (translation.get_language() or "").startswith("en")
    return {
        "kind": code,
        "text": text_en if english and text_en else text,
        "options": [label(value) for value in options],
    }
