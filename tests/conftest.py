"""Shared fixtures: actors of every role, customers, and the CI contract.

Under CI=true the real services are required: PostgreSQL for the database and
Redis for the channel layer and broker. A missing one stops the whole run
with an error instead of letting tests skip or silently fall back to SQLite.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User

from apps.audit.services import Actor
from apps.common.checksums import id_number_check_char
from apps.customers.models import Account, AccountKind, AccountStatus, Branch, Customer, CustomerLevel
from apps.customers.services import account_upsert, branch_upsert, customer_upsert
from apps.staff.roles import Role
from apps.staff.services import staff_member_upsert

CI = os.environ.get("CI", "").lower() == "true"


def pytest_sessionstart(session: pytest.Session) -> None:
    if not CI:
        return
    problems = []
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        problems.append("CI=true but DATABASE_URL does not point at PostgreSQL")
    if not settings.REDIS_URL:
        problems.append("CI=true but REDIS_URL is not set")
    else:
        import redis

        try:
            redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=3).ping()
        except redis.RedisError as exc:
            problems.append(f"CI=true but Redis at REDIS_URL is unreachable: {exc}")
    if problems:
        pytest.exit("; ".join(problems), returncode=3)


SYSTEM = Actor.system("tests")


def make_id_number(*, region: str = "370202", born: date = date(1990, 1, 1), order: int = 123) -> str:
    first17 = f"{region}{born:%Y%m%d}{order:03d}"
    return first17 + id_number_check_char(first17)


@pytest.fixture
def branch(db: None) -> Branch:
    return branch_upsert(actor=SYSTEM, code="9001", name="测试支行", city="滨海")


@pytest.fixture
def make_customer(branch: Branch) -> Callable[..., Customer]:
    counter = iter(range(1, 10_000))

    def make(
        *,
        name: str = "张三",
        id_number: str | None = None,
        mobile: str | None = None,
        level: CustomerLevel = CustomerLevel.ORDINARY,
    ) -> Customer:
        number = next(counter)
        return customer_upsert(
            actor=SYSTEM,
            customer_number=f"T{number:07d}",
            name=name,
            id_number=id_number or make_id_number(order=number),
            mobile=mobile or f"1380000{number:04d}",
            level=level,
            home_branch=branch,
        )

    return make


@pytest.fixture
def customer(make_customer: Callable[..., Customer]) -> Customer:
    return make_customer(name="张三", id_number="110101199001011237", mobile="13812345678")


@pytest.fixture
def account(customer: Customer, branch: Branch) -> Account:
    return account_upsert(
        actor=SYSTEM,
        number="6217860000000000003",
        kind=AccountKind.DEBIT_CARD,
        status=AccountStatus.NORMAL,
        owner=customer,
        opening_branch=branch,
        opened_on=date(2020, 1, 1),
        status_since=date(2020, 1, 1),
    )


@pytest.fixture
def make_staff(branch: Branch) -> Callable[[Role], User]:
    def make(role: Role, username: str | None = None) -> User:
        profile = staff_member_upsert(
            actor=SYSTEM,
            username=username or f"{role.value}_user",
            employee_number=f"T-{username or role.value}"[:20],
            display_name=str(role.label),
            role=role,
            branch=branch,
            initial_password="correct horse battery",
        )
        return profile.user

    return make


@pytest.fixture
def agent(make_staff: Callable[[Role], User]) -> User:
    return make_staff(Role.AGENT)


@pytest.fixture
def expert(make_staff: Callable[[Role], User]) -> User:
    return make_staff(Role.EXPERT)


@pytest.fixture
def supervisor(make_staff: Callable[[Role], User]) -> User:
    return make_staff(Role.SUPERVISOR)


@pytest.fixture
def compliance_officer(make_staff: Callable[[Role], User]) -> User:
    return make_staff(Role.COMPLIANCE_OFFICER)


@pytest.fixture
def administrator(make_staff: Callable[[Role], User]) -> User:
    return make_staff(Role.ADMINISTRATOR)


@pytest.fixture
def question_bank(db: None) -> int:
    """Gate 4's starting questions (migration 0003 installs them, but a transactional test's flush removes them)."""
    from apps.gates.services import question_bank_install_defaults

    question_bank_install_defaults(actor=SYSTEM)
    from apps.gates.models import QuestionTemplate

    return QuestionTemplate.objects.filter(active=True).count()


@pytest.fixture(scope="session", autouse=True)
def _close_leftover_connections_before_teardown(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """Let the test database be dropped at the end, whatever threads left connected.

    Threads of the suite (Channels' sync-to-async pool, Daphne and live
    servers, worker threads of the concurrency tests) may end with a
    persistent connection still open (CONN_MAX_AGE); PostgreSQL then refuses
    to drop the test database. This finalizer runs before pytest-django's
    teardown (it depends on its setup) and ends those other sessions.
    """
    yield
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


def _app_role_switch(role: str | None) -> None:
    """Make new connections (SET ROLE) ``role``, or stay the login role (None); close the open one."""
    from django.db import connection

    options = settings.DATABASES["default"].setdefault("OPTIONS", {})
    for target in (options, connection.settings_dict.setdefault("OPTIONS", {})):
        if role:
            target["options"] = f"-c role={role}"
        else:
            target.pop("options", None)
    connection.close()


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix: None) -> None:
    """Create and migrate the test database as the login role, the owner (the app role comes after).

    With REMOTEBANK_DATABASE_SET_ROLE (CI), every test connection then runs
    as the restricted application role (``_run_as_the_app_role``); only the
    helpers that play an attacker with the owner's rights step back
    (apps.audit.triggers.audit_triggers_suspended).
    """
    _app_role_switch(None)


@pytest.fixture(scope="session", autouse=True)
def _run_as_the_app_role(
    django_db_setup: None, django_db_blocker: Any, _close_leftover_connections_before_teardown: None
) -> Iterator[None]:
    # Torn down before that finalizer, which needs the owner's rights.
    role = getattr(settings, "DATABASE_SET_ROLE", None)
    if not role or settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        yield
        return
    from django.db import connection
    from psycopg import sql

    # Test-only right: the concurrency tests watch other sessions wait for
    # locks in pg_stat_activity, which hides that from a plain role.
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        # None when no collected test uses the database (only tests/test_architecture.py,
        # say): pytest-django then creates no test database and no migrate creates the role.
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
        role_exists = cursor.fetchone() is not None
        if role_exists:
            cursor.execute(
                sql.SQL("GRANT pg_read_all_stats TO {}").format(sql.Identifier(role)).as_string(cursor.connection)
            )
    if not role_exists:
        yield
        return
    _app_role_switch(role)
    yield
    _app_role_switch(None)  # the owner drops the test database


@pytest.fixture
def as_database_owner() -> Iterator[None]:
    """For the tests that run migrations themselves: as the owner, like ``manage.py migrate``.

    Afterwards the application role gets its rights on what the migrations
    re-created (what ``migrate``'s post_migrate does) and the tests run as it again.
    """
    from django.db import connection

    role = getattr(settings, "DATABASE_SET_ROLE", None)
    if not role or connection.vendor != "postgresql":
        yield
        return
    _app_role_switch(None)
    try:
        yield
    finally:
        from apps.audit.roles import app_role_grant

        app_role_grant()
        _app_role_switch(role)
