"""Personal data in exports: masked by default, in clear only for a role that may unmask, and audited.

How names and numbers are masked is tested with ``apps.common.masking`` (tests/common/test_masking.py).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import User

from apps.audit.actions import AuditAction
from apps.audit.services import audit_record
from apps.common.errors import PermissionDenied
from apps.compliance.models import AuditExport
from apps.compliance.services import audit_export_request
from apps.customers.models import Customer
from tests.compliance.conftest import csv_table, file_bytes, records_of

pytestmark = pytest.mark.django_db

RunExport = Callable[..., AuditExport]


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
