"""The daily summary report: figures per branch, agent and business, range, visibility, charts, CSV."""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.audit.models import AuditRecord
from apps.compliance.summary import SummaryRow, daily_summary
from apps.customers.models import Customer
from apps.customers.services import branch_upsert
from apps.queueing.services.configuration import service_queue_upsert
from apps.staff.roles import Role
from apps.staff.services import staff_member_upsert
from tests.compliance.servicegen import seed_service
from tests.conftest import SYSTEM
from tests.security.helpers import force_login_verified

# The label in the active language (the catalogue translates it).
UNSERVED = str(_("Not served by an agent"))

pytestmark = pytest.mark.django_db

REPORT = "/console/live/compliance/report/"
REPORT_CSV = "/console/live/compliance/report/csv/"
PASSED_ALL = {"state": "passed", "identity_passed_at": None, "face_passed_at": None, "questions_passed_at": None}


def at(day: int, hour: int = 10) -> datetime:
    return timezone.make_aware(datetime(2026, 3, day, hour, 0))


def all_passed(day: int) -> dict[str, Any]:
    return {key: (at(day) if key.endswith("_at") else value) for key, value in PASSED_ALL.items()}


@pytest.fixture
def seeded(make_customer: Callable[..., Customer], branch: Any) -> dict[str, Any]:
    """Day 5: A completes one (wait 10 s, 300 s) and fails one at Gate 3 (wait 30 s, 100 s); C (another
    branch) completes a password reset (wait 20 s = the target, 200 s); one visit is refused by blacklist
    screening; one customer abandons the queue after 50 s. Day 6: A completes one more."""
    other_branch = branch_upsert(actor=SYSTEM, code="9002", name="第二支行", city="滨海")
    agents = {}
    for key, where in (("A", branch), ("C", other_branch)):
        agents[key] = staff_member_upsert(
            actor=SYSTEM,
            username=f"agent_{key}",
            employee_number=f"E-{key}",
            display_name=f"坐席{key}",
            role=Role.AGENT,
            branch=where,
            initial_password="correct horse battery",
        )
    queue = service_queue_upsert(actor=SYSTEM, code="q1", name="队列", businesses=["activation", "password_reset"])
    assert queue.service_level_seconds == 20
    customer = make_customer()
    seed_service(
        customer=customer,
        started=at(5),
        outcome="completed",
        queue=queue,
        agent=agents["A"],
        wait_seconds=10,
        handling_seconds=300,
        gates=all_passed(5),
    )
    seed_service(
        customer=customer,
        started=at(5, 11),
        outcome="gate_failed",
        queue=queue,
        agent=agents["A"],
        wait_seconds=30,
        handling_seconds=100,
        gates={"state": "failed", "identity_passed_at": at(5), "failed_gate": "face", "failure_reason": "mismatch"},
    )
    seed_service(
        customer=customer,
        started=at(5, 12),
        business="password_reset",
        outcome="completed",
        queue=queue,
        agent=agents["C"],
        wait_seconds=20,
        handling_seconds=200,
        gates=all_passed(5),
    )
    seed_service(customer=customer, started=at(5, 13), state="refused", refusal_code="blacklisted", outcome="refused")
    seed_service(customer=customer, started=at(5, 14), outcome="abandoned", queue=queue, abandoned_after=50)
    seed_service(
        customer=customer,
        started=at(6),
        outcome="completed",
        queue=queue,
        agent=agents["A"],
        wait_seconds=60,
        handling_seconds=400,
        gates=all_passed(6),
    )
    return {"agents": agents, "other_branch": other_branch}


def by_label(rows: list[SummaryRow]) -> dict[str, SummaryRow]:
    return {row.label: row for row in rows}


def test_the_day_per_agent_has_the_right_counts_rates_and_times(
    seeded: dict[str, Any], compliance_officer: User
) -> None:
    report = daily_summary(
        user=compliance_officer, date_from=date(2026, 3, 5), date_to=date(2026, 3, 5), grouping="agent"
    )
    rows = by_label(report.rows)
    assert set(rows) == {"E-A 坐席A", "E-C 坐席C", UNSERVED}

    a = rows["E-A 坐席A"]
    assert (a.started, a.completed, a.refused, a.gate_failed, a.abandoned) == (2, 1, 0, 1, 0)
    assert a.pass_rates == [1.0, 1.0, 0.5, 1.0]
    assert a.average_wait_seconds == pytest.approx(20.0)
    assert a.average_handling_seconds == pytest.approx(200.0)
    assert a.service_level == pytest.approx(0.5)  # 10 s within 20 s, 30 s not

    c = rows["E-C 坐席C"]
    assert (c.started, c.completed) == (1, 1)
    assert c.service_level == 1.0  # exactly the target counts as within
    assert c.average_handling_seconds == pytest.approx(200.0)

    unserved = rows[UNSERVED]
    assert (unserved.started, unserved.refused, unserved.abandoned) == (2, 1, 1)
    assert unserved.pass_rate("gate1") == 0.5  # the abandoned one had passed Gate 1
    assert unserved.pass_rate("identity") is None
    assert unserved.average_wait_seconds is None
    assert unserved.service_level == 0.0  # the abandoned entry counts against the service level

    total = report.total
    assert (total.started, total.completed, total.refused, total.gate_failed, total.abandoned) == (5, 2, 1, 1, 1)
    assert total.pass_rates == [pytest.approx(0.8), 1.0, pytest.approx(2 / 3), 1.0]
    assert total.average_wait_seconds == pytest.approx(20.0)
    assert total.average_handling_seconds == pytest.approx(200.0)
    assert total.service_level == pytest.approx(0.5)  # 2 of 4 ended entries answered within 20 s


def test_per_branch_and_per_business(seeded: dict[str, Any], compliance_officer: User) -> None:
    day = date(2026, 3, 5)
    branches = by_label(daily_summary(user=compliance_officer, date_from=day, date_to=day, grouping="branch").rows)
    assert branches["9001 测试支行"].started == 2
    assert branches["9002 第二支行"].started == 1
    assert branches[UNSERVED].started == 2

    businesses = daily_summary(user=compliance_officer, date_from=day, date_to=day, grouping="business").rows
    rows = {row.key: row for row in businesses}
    assert set(rows) == {"activation", "password_reset"}
    assert rows["activation"].started == 4
    assert rows["activation"].entries_ended == 3 and rows["activation"].answered_within_target == 1
    assert rows["activation"].service_level == pytest.approx(1 / 3)
    assert rows["password_reset"].started == 1


def test_a_range_adds_the_days(seeded: dict[str, Any], compliance_officer: User) -> None:
    report = daily_summary(
        user=compliance_officer, date_from=date(2026, 3, 5), date_to=date(2026, 3, 6), grouping="agent"
    )
    a = by_label(report.rows)["E-A 坐席A"]
    assert (a.started, a.completed) == (3, 2)
    assert a.average_wait_seconds == pytest.approx((10 + 30 + 60) / 3)
    assert report.total.started == 6
    assert (
        daily_summary(
            user=compliance_officer, date_from=date(2026, 3, 7), date_to=date(2026, 3, 7), grouping="agent"
        ).rows
        == []
    )


def test_the_report_counts_only_the_services_the_user_may_see(seeded: dict[str, Any], administrator: User) -> None:
    day = date(2026, 3, 5)
    agent_a = seeded["agents"]["A"].user
    report = daily_summary(user=agent_a, date_from=day, date_to=day, grouping="agent")
    assert [row.label for row in report.rows] == ["E-A 坐席A"]
    assert report.total.started == 2
    assert daily_summary(user=administrator, date_from=day, date_to=day, grouping="branch").total.started == 0


def test_the_page_shows_the_table_and_charts(client: Client, seeded: dict[str, Any], compliance_officer: User) -> None:
    force_login_verified(client, compliance_officer)
    html = client.get(
        REPORT, {"from": "2026-03-05", "group": "agent"}, headers={"accept-language": "en"}
    ).content.decode()
    assert html.count('class="summary-row"') == 4  # three groups and the total
    assert "66.7%" in html  # Gate 3 pass rate of the day
    assert html.count('class="rate-chart"') == 2 and 'class="stacked-chart"' in html
    assert "坐席A" in html


def test_a_bad_period_is_explained(client: Client, compliance_officer: User) -> None:
    force_login_verified(client, compliance_officer)
    html = client.get(REPORT, {"from": "2026-03-05", "to": "2026-03-01"}, headers={"accept-language": "en"})
    assert "The period ends before it starts." in html.content.decode()
    assert client.get(REPORT_CSV, {"from": "2026-01-01", "to": "2026-12-31"}).status_code == 400


def test_the_csv_export_holds_the_rows_and_is_audited_with_its_hash(
    client: Client, seeded: dict[str, Any], compliance_officer: User
) -> None:
    force_login_verified(client, compliance_officer)
    response = client.get(REPORT_CSV, {"from": "2026-03-05", "group": "business"}, headers={"accept-language": "en"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0][:3] == ["Group", "Services started", "Completed"]
    assert rows[-1][0] == "Total" and rows[-1][1] == "5"
    assert rows[-1][-1] == "50.0%"
    record = AuditRecord.objects.get(action="compliance.summary.exported")
    assert record.actor_label == compliance_officer.username
    assert record.data["sha256"] == hashlib.sha256(response.content).hexdigest()
    assert (record.data["group"], record.data["rows"], record.data["from"]) == ("business", 2, "2026-03-05")
