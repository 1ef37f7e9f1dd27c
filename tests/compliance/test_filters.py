"""Each export filter selects exactly the audit records it names, end to end through a CSV file."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import User

from apps.audit.actions import AuditAction
from apps.audit.models import AuditRecord
from apps.audit.services import audit_record
from apps.common.errors import ValidationFailed
from apps.compliance.models import AuditExport
from apps.compliance.selectors import BLACKLISTED_REASON, ExportFilter, audit_records_for_export
from apps.customers.models import Customer
from apps.verification.models import RefusalCode
from tests.compliance.auditgen import append_rows
from tests.compliance.conftest import csv_table, exported_sequences

pytestmark = pytest.mark.django_db

SHANGHAI = ZoneInfo("Asia/Shanghai")
RunExport = Callable[..., AuditExport]


def _sequences(**filters: Any) -> list[int]:
    return list(
        audit_records_for_export(export_filter=ExportFilter.from_json(filters)).values_list("sequence", flat=True)
    )


def _refusal(customer: Customer, reason: str, action: AuditAction = AuditAction.VISIT_REFUSED) -> AuditRecord:
    # The shape Gate 1's _refuse writes.
    return audit_record(
        actor=customer, action=action, target=customer, data={"from": "identity_matched", "reason": reason}
    )


def test_the_period_keeps_whole_days_in_shanghai_time(compliance_officer: User, run_export: RunExport) -> None:
    # Ten records 12 hours apart from 1 March 00:00 Shanghai time: two per day, 1–5 March.
    append_rows(10, start=datetime(2026, 3, 1, tzinfo=SHANGHAI), step=timedelta(hours=12))
    first = AuditRecord.objects.get(created_at=datetime(2026, 3, 1, tzinfo=SHANGHAI)).sequence

    export = run_export(compliance_officer, filters={"from": "2026-03-02", "to": "2026-03-03"})

    # 2 March 00:00 and 12:00, 3 March 00:00 and 12:00: "to" is inclusive of its day.
    assert exported_sequences(export) == [first + 2, first + 3, first + 4, first + 5]
    header, _rows = csv_table(export)
    assert "2026-03-02 – 2026-03-03" in header.values()


def test_the_period_accepts_exact_times(compliance_officer: User, run_export: RunExport) -> None:
    append_rows(10, start=datetime(2026, 3, 1, tzinfo=SHANGHAI), step=timedelta(hours=12))
    first = AuditRecord.objects.get(created_at=datetime(2026, 3, 1, tzinfo=SHANGHAI)).sequence

    export = run_export(
        compliance_officer, filters={"from": "2026-03-01T12:00:00+08:00", "to": "2026-03-02T12:00:00+08:00"}
    )

    # [from, to): 1 March 12:00 and 2 March 00:00.
    assert exported_sequences(export) == [first + 1, first + 2]


def test_the_actor_filter_keeps_one_agents_records(
    compliance_officer: User, agent: User, supervisor: User, customer: Customer, run_export: RunExport
) -> None:
    mine = [
        audit_record(actor=agent, action=AuditAction.AGENT_STATE_CHANGED, data={"to": "available"}),
        audit_record(actor=agent, action=AuditAction.QUEUE_OFFER_ACCEPTED, target=customer),
    ]
    audit_record(actor=supervisor, action=AuditAction.AGENT_STATE_CHANGED, data={"to": "away"})

    export = run_export(compliance_officer, filters={"actor": agent.username})

    assert exported_sequences(export) == [record.sequence for record in mine]
    _header, rows = csv_table(export)
    assert {row[3] for row in rows} == {agent.username}


def test_the_action_prefix_keeps_one_family_of_actions(
    compliance_officer: User, agent: User, customer: Customer, run_export: RunExport
) -> None:
    gate = [_refusal(customer, "account_not_found"), _refusal(customer, "blacklisted")]
    audit_record(actor=agent, action=AuditAction.AGENT_STATE_CHANGED, data={"to": "available"})

    export = run_export(compliance_officer, filters={"action_prefix": "verification."})

    assert exported_sequences(export) == [record.sequence for record in gate]


def test_the_target_type_filter_keeps_records_about_one_kind_of_object(
    compliance_officer: User, agent: User, customer: Customer, run_export: RunExport
) -> None:
    about_customers = list(AuditRecord.objects.filter(target_type="customers.customer").order_by("sequence"))
    about_customers.append(audit_record(actor=agent, action=AuditAction.CUSTOMER_UPDATED, target=customer))
    audit_record(actor=agent, action=AuditAction.AGENT_STATE_CHANGED, data={"to": "available"})

    export = run_export(compliance_officer, filters={"target_type": "customers.customer"})

    assert len(about_customers) >= 2  # the fixture's creation and the update
    assert exported_sequences(export) == [record.sequence for record in about_customers]


def test_the_outcome_filter_keeps_records_with_that_reason(
    compliance_officer: User, customer: Customer, run_export: RunExport
) -> None:
    wanted = _refusal(customer, "account_not_found")
    _refusal(customer, "too_many_attempts")
    audit_record(actor=customer, action=AuditAction.VISIT_ID_CARD_REJECTED, data={"reason": "too_small"})

    export = run_export(compliance_officer, filters={"outcome": "account_not_found"})

    assert exported_sequences(export) == [wanted.sequence]


def test_blacklist_hits_are_visits_refused_by_screening_only(
    compliance_officer: User, customer: Customer, run_export: RunExport
) -> None:
    hits = [_refusal(customer, "blacklisted"), _refusal(customer, "blacklisted")]
    _refusal(customer, "account_status")
    # Same reason on another action is not a screening hit.
    _refusal(customer, "blacklisted", action=AuditAction.VISIT_ID_CARD_REJECTED)

    export = run_export(compliance_officer, filters={"blacklist_hits": True})

    assert exported_sequences(export) == [record.sequence for record in hits]
    header, _rows = csv_table(export)
    assert any("blacklist hits only" in value for value in header.values())


def test_filters_combine(compliance_officer: User, agent: User, customer: Customer) -> None:
    wanted = _refusal(customer, "blacklisted")
    audit_record(actor=agent, action=AuditAction.VISIT_REFUSED, data={"reason": "blacklisted"})

    assert _sequences(actor=customer.customer_number, blacklist_hits=True, action_prefix="verification.") == [
        wanted.sequence
    ]


def test_the_blacklist_reason_is_gate_ones_refusal_code() -> None:
    assert RefusalCode.BLACKLISTED.value == BLACKLISTED_REASON


@pytest.mark.parametrize(
    ("filters", "code"),
    [
        ({"colour": "red"}, "unknown_filter"),
        ({"from": "yesterday"}, "invalid_date"),
        ({"from": "2026-03-05", "to": "2026-03-01"}, "invalid_period"),
        ({"action_prefix": "nothing."}, "unknown_action_prefix"),
        ({"blacklist_hits": "yes"}, "invalid_filter"),
        ({"actor": ["a", "b"]}, "invalid_filter"),
        ({"actor": "x" * 151}, "invalid_filter"),
        (["not", "an", "object"], "invalid_filter"),
    ],
)
def test_an_invalid_filter_is_refused_with_a_clear_code(filters: Any, code: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        ExportFilter.from_json(filters)
    assert refused.value.code == code


def test_a_filter_is_stored_as_given_without_empty_parts() -> None:
    parsed = ExportFilter.from_json({"from": "2026-03-01", "actor": " agent_user ", "outcome": "", "to": None})
    assert parsed.as_json() == {"from": "2026-03-01", "actor": "agent_user"}
    assert ExportFilter.from_json(parsed.as_json()) == parsed
