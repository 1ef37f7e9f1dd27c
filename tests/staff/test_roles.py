"""What each role may and may not see (R8.3)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from apps.audit.models import AuditRecord
from apps.customers.models import BlacklistKind, Customer
from apps.customers.services import blacklist_entry_upsert
from apps.staff.roles import Role
from tests.conftest import SYSTEM
from tests.security.helpers import force_login_verified

pytestmark = pytest.mark.django_db

AUDIT_API = reverse("audit:record-list")
CUSTOMER_API = reverse("customers:customer-list")
BLACKLIST_ADMIN = reverse("admin:customers_blacklistentry_changelist")
AUDIT_ADMIN = reverse("admin:audit_auditrecord_changelist")
USER_ADMIN = reverse("admin:auth_user_changelist")


def _status(client: Client, user: User, url: str) -> int:
    force_login_verified(client, user)
    return client.get(url).status_code


def test_an_agent_serves_customers_but_sees_neither_audit_nor_blacklists(client: Client, agent: User) -> None:
    assert _status(client, agent, CUSTOMER_API) == 200
    assert _status(client, agent, AUDIT_API) == 403
    assert _status(client, agent, BLACKLIST_ADMIN) == 403
    assert _status(client, agent, AUDIT_ADMIN) == 403
    assert _status(client, agent, USER_ADMIN) == 403


def test_an_expert_has_the_same_limits_as_an_agent(client: Client, expert: User) -> None:
    assert _status(client, expert, CUSTOMER_API) == 200
    assert _status(client, expert, AUDIT_API) == 403
    assert _status(client, expert, BLACKLIST_ADMIN) == 403


def test_a_supervisor_sees_staff_but_not_the_audit_trail_or_blacklists(client: Client, supervisor: User) -> None:
    assert _status(client, supervisor, reverse("admin:staff_staffprofile_changelist")) == 200
    assert _status(client, supervisor, AUDIT_API) == 403
    assert _status(client, supervisor, BLACKLIST_ADMIN) == 403
    assert _status(client, supervisor, USER_ADMIN) == 403


def test_a_compliance_officer_reads_everything_and_changes_nothing(
    client: Client, compliance_officer: User, customer: Customer
) -> None:
    entry = blacklist_entry_upsert(
        actor=SYSTEM,
        kind=BlacklistKind.AML,
        id_number=customer.id_number,
        source="s",
        listed_since=date(2026, 1, 1),
        reason="r",
    )
    assert _status(client, compliance_officer, AUDIT_API) == 200
    assert _status(client, compliance_officer, AUDIT_ADMIN) == 200
    assert _status(client, compliance_officer, BLACKLIST_ADMIN) == 200
    # The change page renders read-only; posting to it is refused.
    change_url = reverse("admin:customers_customer_change", args=[customer.pk])
    assert client.post(change_url, {"name": "改名"}).status_code == 403
    assert (
        client.post(reverse("admin:customers_blacklistentry_delete", args=[entry.pk]), {"post": "yes"}).status_code
        == 403
    )
    customer.refresh_from_db()
    assert customer.name == "张三"


def test_an_administrator_manages_users_but_cannot_touch_audit_records(client: Client, administrator: User) -> None:
    assert _status(client, administrator, USER_ADMIN) == 200
    assert _status(client, administrator, AUDIT_API) == 200
    record = AuditRecord.objects.first()
    assert record is not None
    assert client.post(reverse("admin:audit_auditrecord_delete", args=[record.pk]), {"post": "yes"}).status_code == 403
    assert AuditRecord.objects.filter(pk=record.pk).exists()


def test_anonymous_visitors_see_nothing(client: Client) -> None:
    assert client.get(CUSTOMER_API).status_code == 403
    assert client.get(AUDIT_API).status_code == 403
    response = client.get(AUDIT_ADMIN)
    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]


def test_every_role_group_holds_exactly_its_table(make_staff: Callable[[Role], User]) -> None:
    from apps.staff.roles import ROLE_PERMISSIONS

    for role, expected in ROLE_PERMISSIONS.items():
        user = make_staff(role, username=f"check_{role.value}")
        assert user.get_all_permissions() == set(expected), role
        assert not any(p.startswith(("audit.change", "audit.delete", "audit.add")) for p in user.get_all_permissions())
