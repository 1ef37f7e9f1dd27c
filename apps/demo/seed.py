"""A realistic demo bank, generated deterministically.

Every value comes from a fixed-seed random generator and fixed dates, and
every write is an idempotent upsert service, so running the seed twice gives
the same data and the second run writes (and audits) nothing.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta

from apps.audit.services import Actor
from apps.businesses.registry import business_get
from apps.common.checksums import id_number_check_char, luhn_check_digit
from apps.customers.models import (
    Account,
    AccountKind,
    AccountStatus,
    BlacklistKind,
    Branch,
    Customer,
    CustomerLevel,
)
from apps.customers.services import account_upsert, blacklist_entry_upsert, branch_upsert, customer_upsert
from apps.gates.services import question_bank_install_defaults
from apps.queueing.models import AgentStrategy
from apps.queueing.services.configuration import overflow_target_set, service_queue_upsert
from apps.staff.models import StaffProfile
from apps.staff.roles import Role
from apps.staff.services import agent_skill_set, role_permissions_sync, staff_member_upsert

SEED = 20200415  # the case study's year; any fixed value would do
CUSTOMER_COUNT = 200
# "Today" of the demo bank, so that dates do not move between runs.
DEMO_TODAY = date(2026, 11, 1)

# The demo bank is a city commercial bank of one province (Gate 4 draws its
# plausible wrong cities from there).
BRANCH_PROVINCE = "山东"
BRANCHES = (
    ("0100", "滨海分行营业部", "滨海", "滨海市中山路1号"),
    ("0101", "市南支行", "滨海", "滨海市香港中路36号"),
    ("0102", "市北支行", "滨海", "滨海市辽宁路120号"),
    ("0103", "高新区支行", "滨海", "滨海市科技大道8号"),
    ("0104", "大学城支行", "滨海", "滨海市学府路66号"),
    ("0201", "青山县支行", "青山", "青山县人民路2号"),
)
SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏"
    "魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹"
    "薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
GIVEN = (
    "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉萍红娥玲芬燕"
    "彬斌辉鹏浩宇晨欣怡子涵梓轩雨桐思远俊婷雪梅海波建国志春文博"
)
REGIONS = ("370202", "370203", "370212", "370211", "110101", "310104", "440305", "320106")
LEVEL_WEIGHTS = (
    (CustomerLevel.ORDINARY, 60),
    (CustomerLevel.GOLD, 25),
    (CustomerLevel.PLATINUM, 10),
    (CustomerLevel.PRIVATE, 5),
)
# Every status appears (three times) for every personal account kind: the
# first customers are dealt these in order, the rest get mostly normal accounts.
_COVERAGE = [
    (kind, status)
    for kind in (AccountKind.DEBIT_CARD, AccountKind.PASSBOOK, AccountKind.CERTIFICATE_OF_DEPOSIT)
    for status in AccountStatus
] * 3
COMPANIES = ("滨海海洋科技有限公司", "青山食品贸易有限公司", "市南建筑装饰工程有限公司", "高新区软件服务有限公司")
AGENT_SKILLS = (
    ("activation", 5),
    ("password_reset", 4),
    ("lost_report_release", 4),
    ("info_maintenance", 3),
    ("corporate_intent", 2),
)


@dataclass
class SeedSummary:
    branches: int = 0
    customers: int = 0
    accounts: int = 0
    blacklist_entries: int = 0
    staff: int = 0
    levels: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    logins: list[tuple[str, str]] = field(default_factory=list)
    queues: int = 0


def _id_number(rng: random.Random, region: str, born: date, sequence: int, male: bool) -> str:
    # Digit 17 is odd for men, even for women (GB 11643).
    order = sequence * 2 + (1 if male else 0)
    first17 = f"{region}{born:%Y%m%d}{order % 1000:03d}"
    return first17 + id_number_check_char(first17)


def _account_number(rng: random.Random, kind: AccountKind) -> str:
    if kind == AccountKind.DEBIT_CARD:
        # 19-digit card number with a valid Luhn check digit.
        partial = "621786" + "".join(str(rng.randrange(10)) for _ in range(12))
        return partial + luhn_check_digit(partial)
    prefix = {AccountKind.PASSBOOK: "8", AccountKind.CERTIFICATE_OF_DEPOSIT: "7", AccountKind.CORPORATE: "9"}[kind]
    return prefix + "".join(str(rng.randrange(10)) for _ in range(17))


def seed_demo(*, password: str) -> SeedSummary:
    """Create or bring up to date the whole demo bank; returns what it holds."""
    rng = random.Random(SEED)
    actor = Actor.system("seed_demo")
    summary = SeedSummary()
    role_permissions_sync(actor=actor)
    question_bank_install_defaults(actor=actor)

    branches = [
        branch_upsert(actor=actor, code=code, name=name, city=city, address=address, province=BRANCH_PROVINCE)
        for code, name, city, address in BRANCHES
    ]
    summary.branches = len(branches)

    used_numbers: set[str] = set()
    customers: list[Customer] = []
    for index in range(CUSTOMER_COUNT):
        male = rng.random() < 0.5
        name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))
        born = date(1950, 1, 1) + timedelta(days=rng.randrange(0, 55 * 365))
        id_number = _id_number(rng, rng.choice(REGIONS), born, index, male)
        mobile = rng.choice(("138", "139", "150", "186", "177", "199")) + f"{rng.randrange(10**8):08d}"
        level = rng.choices([lvl for lvl, _ in LEVEL_WEIGHTS], weights=[w for _, w in LEVEL_WEIGHTS])[0]
        customer = customer_upsert(
            actor=actor,
            customer_number=f"C{index + 1:07d}",
            name=name,
            id_number=id_number,
            mobile=mobile,
            level=level,
            home_branch=rng.choice(branches),
        )
        customers.append(customer)
        summary.levels[level] += 1

        plan = [_COVERAGE[index]] if index < len(_COVERAGE) else []
        plan += [(AccountKind.DEBIT_CARD, AccountStatus.NORMAL)] * rng.choice((0, 1, 1, 2))
        if not plan:
            plan = [(AccountKind.PASSBOOK, AccountStatus.NORMAL)]
        for kind, status in plan:
            _seed_account(
                rng=rng,
                actor=actor,
                customer=customer,
                kind=kind,
                status=status,
                branches=branches,
                used_numbers=used_numbers,
                summary=summary,
            )

    # Legal representatives with corporate accounts awaiting intent verification.
    for offset, company in enumerate(COMPANIES):
        customer = customers[len(_COVERAGE) + offset]
        _seed_account(
            rng=rng,
            actor=actor,
            customer=customer,
            kind=AccountKind.CORPORATE,
            status=AccountStatus.INACTIVE,
            branches=branches,
            used_numbers=used_numbers,
            summary=summary,
            company_name=company,
        )

    summary.blacklist_entries = _seed_blacklists(actor, customers)
    summary.customers = len(customers)
    summary.staff, summary.logins = _seed_staff(actor, branches, password)
    summary.queues = _seed_queues(actor)
    return summary


def _seed_queues(actor: Actor) -> int:
    """One queue per business; personal businesses overflow into a shared queue."""
    shared = service_queue_upsert(
        actor=actor,
        code="personal-shared",
        name="个人业务综合队列",
        businesses=[code for code, _best in AGENT_SKILLS if code != "corporate_intent"],
        agent_strategy=AgentStrategy.LONGEST_IDLE,
    )
    for code, _best in AGENT_SKILLS:
        queue = service_queue_upsert(
            actor=actor,
            code=code.replace("_", "-"),
            name=str(business_get(code).name),
            businesses=[code],
            agent_strategy=AgentStrategy.HIGHEST_PROFICIENCY
            if code == "corporate_intent"
            else AgentStrategy.LONGEST_IDLE,
            overflow_max_waiting=None if code == "corporate_intent" else 20,
            overflow_max_wait_seconds=None if code == "corporate_intent" else 120,
        )
        if code != "corporate_intent":
            overflow_target_set(actor=actor, queue=queue, target=shared, position=1)
    return len(AGENT_SKILLS) + 1


def _seed_account(
    *,
    rng: random.Random,
    actor: Actor,
    customer: Customer,
    kind: AccountKind,
    status: AccountStatus,
    branches: list[Branch],
    used_numbers: set[str],
    summary: SeedSummary,
    company_name: str = "",
) -> Account:
    number = _account_number(rng, kind)
    while number in used_numbers:
        number = _account_number(rng, kind)
    used_numbers.add(number)
    opened_on = DEMO_TODAY - timedelta(days=rng.randrange(30, 3650))
    status_since = opened_on if status == AccountStatus.NORMAL else DEMO_TODAY - timedelta(days=rng.randrange(1, 29))
    account = account_upsert(
        actor=actor,
        number=number,
        kind=kind,
        status=status,
        owner=customer,
        opening_branch=rng.choice(branches),
        opened_on=opened_on,
        status_since=status_since,
        company_name=company_name,
    )
    summary.accounts += 1
    summary.statuses[status] += 1
    return account


def _seed_blacklists(actor: Actor, customers: list[Customer]) -> int:
    """A few listed people and accounts, plus one delisted entry that must no longer hit."""
    listed_since = DEMO_TODAY - timedelta(days=90)
    count = 0
    for customer in customers[-4:]:
        blacklist_entry_upsert(
            actor=actor,
            kind=BlacklistKind.AML,
            id_number=customer.id_number,
            source="人民银行反洗钱监测名单 (demo)",
            listed_since=listed_since,
            reason="可疑交易报告 suspicious transaction report",
        )
        count += 1
    for customer in customers[-8:-4]:
        account = customer.accounts.order_by("number").first()
        assert account is not None
        blacklist_entry_upsert(
            actor=actor,
            kind=BlacklistKind.TELECOM_FRAUD,
            account_number=account.number,
            source="公安机关涉诈账户名单 (demo)",
            listed_since=listed_since,
            reason="涉嫌电信诈骗收款账户 suspected fraud collection account",
        )
        count += 1
    blacklist_entry_upsert(
        actor=actor,
        kind=BlacklistKind.TELECOM_FRAUD,
        id_number=customers[-9].id_number,
        source="公安机关涉诈账户名单 (demo)",
        listed_since=listed_since - timedelta(days=200),
        reason="已核实解除 delisted after review",
        active=False,
    )
    return count + 1


def _seed_staff(actor: Actor, branches: list[Branch], password: str) -> tuple[int, list[tuple[str, str]]]:
    head_office = branches[0]
    people: list[StaffProfile] = []
    logins: list[tuple[str, str]] = []

    def member(
        username: str, number: str, name: str, role: Role, supervisor: StaffProfile | None = None
    ) -> StaffProfile:
        profile = staff_member_upsert(
            actor=actor,
            username=username,
            employee_number=number,
            display_name=name,
            role=role,
            branch=head_office,
            supervisor=supervisor,
            initial_password=password,
        )
        people.append(profile)
        logins.append((username, str(role.label)))
        return profile

    member("admin", "E0001", "系统管理员", Role.ADMINISTRATOR)
    member("compliance01", "E0002", "合规 周敏", Role.COMPLIANCE_OFFICER)
    supervisors = [
        member("supervisor01", "E0010", "主管 林海", Role.SUPERVISOR),
        member("supervisor02", "E0011", "主管 吴静", Role.SUPERVISOR),
    ]
    for index in range(12):
        team_lead = supervisors[index % 2]
        agent = member(f"agent{index + 1:02d}", f"E01{index + 1:02d}", f"坐席{index + 1:02d}", Role.AGENT, team_lead)
        # Skills rotate so that each business has agents of every proficiency.
        for offset, (business, best) in enumerate(AGENT_SKILLS):
            if (index + offset) % 3 != 2:
                agent_skill_set(
                    actor=actor, staff=agent, business_code=business, proficiency=max(1, best - (index + offset) % 3)
                )
    for index in range(2):
        expert = member(f"expert{index + 1:02d}", f"E02{index + 1:02d}", f"专家{index + 1:02d}", Role.EXPERT)
        for business, _best in AGENT_SKILLS:
            agent_skill_set(actor=actor, staff=expert, business_code=business, proficiency=5)
    return len(people), logins
