from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from apps.audit.models import AuditRecord
from apps.audit.selectors import audit_chain_verify
from apps.customers.models import Account, AccountKind, AccountStatus, BlacklistEntry, Customer, CustomerLevel
from apps.customers.selectors import blacklist_hits
from apps.staff.models import AgentSkill, StaffProfile
from apps.staff.roles import Role

pytestmark = pytest.mark.django_db


def _snapshot() -> dict[str, object]:
    return {
        "customers": [
            (c.customer_number, c.name, c.id_number, c.mobile, c.level, c.home_branch.code)
            for c in Customer.objects.select_related("home_branch").order_by("customer_number")
        ],
        "accounts": sorted(
            Account.objects.values_list("number", "kind", "status", "owner__customer_number", "status_since")
        ),
        "blacklist": sorted(
            (entry.kind, entry.id_number or "", entry.account_number, entry.active)
            for entry in BlacklistEntry.objects.all()
        ),
        "staff": sorted(StaffProfile.objects.values_list("user__username", "role", "supervisor__employee_number")),
        "skills": sorted(AgentSkill.objects.values_list("staff__employee_number", "business_code", "proficiency")),
    }


def test_seed_demo_twice_gives_the_same_data_and_writes_nothing_the_second_time() -> None:
    call_command("seed_demo", stdout=StringIO())
    first = _snapshot()
    audit_count = AuditRecord.objects.count()
    call_command("seed_demo", stdout=StringIO())
    assert _snapshot() == first
    assert AuditRecord.objects.count() == audit_count
    assert audit_chain_verify().intact


def test_the_demo_bank_has_every_level_status_role_and_blacklist_case() -> None:
    out = StringIO()
    call_command("seed_demo", stdout=out)
    assert "200 customers" in out.getvalue()
    assert set(Customer.objects.values_list("level", flat=True)) == set(CustomerLevel.values)
    for kind in (AccountKind.DEBIT_CARD, AccountKind.PASSBOOK, AccountKind.CERTIFICATE_OF_DEPOSIT):
        statuses = set(Account.objects.filter(kind=kind).values_list("status", flat=True))
        assert statuses == set(AccountStatus.values), kind
    assert Account.objects.filter(kind=AccountKind.CORPORATE).exclude(company_name="").count() == 4
    assert set(StaffProfile.objects.values_list("role", flat=True)) == set(Role.values)
    assert AgentSkill.objects.filter(staff__role=Role.AGENT).values("business_code").distinct().count() == 5
    listed = BlacklistEntry.objects.filter(active=True)
    assert {entry.kind for entry in listed} == {"aml", "telecom_fraud"}
    # Every active entry is actually hit by its customer's data; the delisted one is not.
    for entry in listed:
        assert entry in blacklist_hits(id_number=entry.id_number, account_numbers=[entry.account_number])
    delisted = BlacklistEntry.objects.get(active=False)
    assert not blacklist_hits(id_number=delisted.id_number).exists()
