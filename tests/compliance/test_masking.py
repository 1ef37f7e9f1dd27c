"""Personal data in exports: masked by default, in clear only for a role that may unmask, and audited."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import User

from apps.audit.actions import AuditAction
from apps.audit.services import audit_record
from apps.common.errors import PermissionDenied
from apps.compliance.exporters import mask_data, mask_name, mask_text
from apps.compliance.models import AuditExport
from apps.compliance.services import audit_export_request
from apps.customers.models import Customer
from tests.compliance.conftest import csv_table, file_bytes, records_of

pytestmark = pytest.mark.django_db

RunExport = Callable[..., AuditExport]


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("13812345678", "138****5678"),
        ("手机 13812345678，请回电", "手机 138****5678，请回电"),
        ("+8613812345678", "+86138****5678"),
        ("110101199001011237", "1101**********1237"),
        ("证件 11010119900101123X", "证件 1101**********123X"),
        ("card 6217860000000000003", "card 621786*********0003"),
        ("6217860000000003", "621786******0003"),
        # Already masked values, and numbers that are no personal numbers, stay.
        ("138****5678 / 1101**********1237", "138****5678 / 1101**********1237"),
        ("sequence 123456789012, attempt 3", "sequence 123456789012, attempt 3"),
        ("hash 4f2a13812345678c9d", "hash 4f2a13812345678c9d"),
        # Names: a short run of Chinese characters starting with a surname.
        ("T0000001 张三丰", "T0000001 张**"),
        ("张三", "张*"),
        ("欧阳娜娜 visit", "欧阳** visit"),
        ("9001 测试支行", "9001 测试支行"),
        ("", ""),
    ],
)
def test_mask_text_hides_personal_numbers_and_names(text: str, masked: str) -> None:
    assert mask_text(text) == masked


def test_names_under_name_keys_are_masked_whatever_the_surname() -> None:
    assert mask_name("禤天") == "禤*"
    assert mask_name("John Smith") == "J*** *****"
    assert mask_data(
        {"after": {"name": "禤天"}, "mobile": 13812345678, "nested": [{"customer_name": "司马光"}], "ok": True, "n": 3},
        about_a_person=True,
    ) == {"after": {"name": "禤*"}, "mobile": "138****5678", "nested": [{"customer_name": "司马*"}], "ok": True, "n": 3}


def test_the_name_of_a_branch_or_queue_is_not_a_personal_name() -> None:
    assert mask_data({"after": {"name": "测试支行", "city": "滨海"}}) == {"after": {"name": "测试支行", "city": "滨海"}}
    # The surname heuristic still applies to free text there.
    assert mask_data({"note": "王芳"}) == {"note": "王*"}


@pytest.fixture
def named_record(make_customer: Callable[..., Customer]) -> Customer:
    person = make_customer(name="张三丰", id_number="110101199001011237", mobile="13812345678")
    audit_record(
        actor=person,
        action=AuditAction.CUSTOMER_UPDATED,
        target=person,
        data={"name": "张三丰", "changed": ["mobile"], "note": "old mobile 13912345678"},
    )
    return person


def test_exports_are_masked_by_default(compliance_officer: User, named_record: Customer, run_export: RunExport) -> None:
    export = run_export(compliance_officer, "csv", {"target_type": "customers.customer"})

    raw = file_bytes(export).decode("utf-8-sig")
    assert "张三丰" not in raw
    assert "13912345678" not in raw
    _header, rows = csv_table(export)
    updated = rows[-1]
    assert updated[8] == f"{named_record.customer_number} 张**"
    assert '"name":"张**"' in updated[9]
    assert "139****5678" in updated[9]
    assert not export.unmasked
    assert records_of(AuditAction.PERSONAL_DATA_UNMASKED) == []


@pytest.mark.parametrize("fmt", ["csv", "xlsx", "pdf"])
def test_a_compliance_officer_may_unmask_and_the_unmasking_is_audited(
    fmt: str, compliance_officer: User, named_record: Customer, run_export: RunExport
) -> None:
    export = run_export(compliance_officer, fmt, {"target_type": "customers.customer"}, unmask=True)

    assert export.unmasked
    if fmt == "csv":
        _header, rows = csv_table(export)
        assert rows[-1][8] == f"{named_record.customer_number} 张三丰"
        assert "13912345678" in rows[-1][9]
        assert _header["Personal data"].startswith("UNMASKED")
    else:
        assert export.size_bytes and export.state == "done"
    (unmasked,) = records_of(AuditAction.PERSONAL_DATA_UNMASKED)
    (requested,) = records_of(AuditAction.COMPLIANCE_EXPORT_REQUESTED)
    assert unmasked.actor_label == compliance_officer.username
    assert unmasked.target_id == requested.target_id == str(export.pk)
    assert unmasked.data == {
        "purpose": "audit_export",
        "format": fmt,
        "filters": {"target_type": "customers.customer"},
        "unmasked": True,
    }
    assert requested.data["unmasked"] is True


def test_an_administrator_may_export_masked_but_not_unmask(
    administrator: User, named_record: Customer, run_export: RunExport
) -> None:
    with pytest.raises(PermissionDenied) as refused:
        audit_export_request(actor=administrator, filters={}, fmt="csv", unmask=True)
    assert refused.value.code == "unmask_not_allowed"
    assert not AuditExport.objects.exists()
    assert records_of(AuditAction.COMPLIANCE_EXPORT_REQUESTED) == []

    export = run_export(administrator, "csv", {"target_type": "customers.customer"})
    assert "张三丰" not in file_bytes(export).decode("utf-8-sig")


@pytest.mark.parametrize("role", ["agent", "expert", "supervisor"])
def test_roles_without_the_export_permission_cannot_export_at_all(role: str, request: pytest.FixtureRequest) -> None:
    user = request.getfixturevalue(role)
    with pytest.raises(PermissionDenied) as refused:
        audit_export_request(actor=user, filters={}, fmt="csv")
    assert refused.value.code == "export_not_allowed"
    assert not AuditExport.objects.exists()


def test_a_branch_keeps_its_name_while_the_customer_loses_theirs(
    compliance_officer: User, named_record: Customer, run_export: RunExport
) -> None:
    export = run_export(compliance_officer, "csv", {"action_prefix": "customers."})

    _header, rows = csv_table(export)
    branch_created = next(row for row in rows if row[4] == AuditAction.BRANCH_CREATED)
    assert '"name":"测试支行"' in branch_created[9]
    customer_created = next(row for row in rows if row[4] == AuditAction.CUSTOMER_CREATED and "张" in row[9])
    assert '"name":"张**"' in customer_created[9]
    assert "张三丰" not in file_bytes(export).decode("utf-8-sig")
