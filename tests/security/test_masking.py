"""Masking by default, customers by service, supervisors by team (issue #17 item 4)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.audit.actions import AuditAction
from apps.audit.services import audit_record
from apps.calls.models import Call, CallParticipant, ParticipantRole
from apps.customers.models import Customer
from apps.queueing.models import QueueEntry
from apps.queueing.services.configuration import service_queue_upsert
from apps.staff.models import StaffProfile
from apps.staff.roles import Role
from apps.staff.services import staff_member_upsert
from apps.visits.models import Visit
from tests.conftest import SYSTEM
from tests.factories import visit_with_gate1
from tests.security.helpers import force_login_verified

pytestmark = pytest.mark.django_db

AUDIT_API = reverse("audit:record-list")
CUSTOMER_API = reverse("customers:customer-list")
NAME = "欧阳娜娜"


def _served(customer: Customer, staff_user: User, *, closed_hours_ago: float | None = None) -> Visit:
    """A service of ``customer`` in which ``staff_user`` took part (closed that many hours ago, or open)."""
    queue = service_queue_upsert(actor=SYSTEM, code="activation", name="激活", businesses=["activation"])
    visit = visit_with_gate1(business_code="activation", mobile=customer.mobile, customer=customer)
    now = timezone.now()
    entry = QueueEntry.objects.create(
        visit=visit, queue=queue, business_code="activation", level=customer.level, enqueued_at=now, priority_key=0.0
    )
    call = Call(visit=visit, entry=entry, janus_server="test-janus")
    call.connect(now)
    call.save()
    # A closed service's seats are left (one live seat per staff member).
    left_at = None if closed_hours_ago is None else now
    CallParticipant.objects.create(call=call, role=ParticipantRole.CUSTOMER, left_at=left_at)
    CallParticipant.objects.create(
        call=call, role=ParticipantRole.AGENT, staff=StaffProfile.objects.get(user=staff_user), left_at=left_at
    )
    if closed_hours_ago is not None:
        Visit.objects.filter(pk=visit.pk).update(closed_at=now - timedelta(hours=closed_hours_ago), outcome="completed")
    return visit


def test_the_audit_api_never_returns_a_customers_name_in_clear(
    client: Client, compliance_officer: User, administrator: User, make_customer: Callable[..., Customer]
) -> None:
    customer = make_customer(name=NAME)
    visit = _served(customer, compliance_officer)
    # As verification's services wrote it before they masked the name.
    audit_record(actor=SYSTEM, action=AuditAction.VISIT_ID_CARD_READ, target=visit, data={"attempt": 1, "name": NAME})
    for user in (compliance_officer, administrator):
        force_login_verified(client, user)
        response = client.get(AUDIT_API, {"limit": 500})
        assert response.status_code == 200
        body = response.content.decode()
        assert NAME not in body
        assert "欧阳**" in body
    # And the record's data no longer holds it for new customers (the target label
    # stays for compliance's audited unmasked exports, and is masked in the API above).
    from apps.audit.models import AuditRecord

    created = AuditRecord.objects.get(action="customers.customer.created", target_id=str(customer.pk))
    assert NAME not in str(created.data)
    assert created.data["name"] == "欧阳**"


def test_agents_see_only_customers_of_their_own_current_or_recent_services(
    client: Client, agent: User, make_customer: Callable[..., Customer], make_staff: Callable[..., User]
) -> None:
    colleague = make_staff(Role.AGENT, username="colleague")
    mine_open = make_customer(name="李四")
    mine_recent = make_customer(name="王五")
    mine_long_ago = make_customer(name="赵六")
    theirs = make_customer(name="孙七")
    never = make_customer(name="周八")
    _served(mine_open, agent)
    _served(mine_recent, agent, closed_hours_ago=2)
    _served(mine_long_ago, agent, closed_hours_ago=24 * 30)
    _served(theirs, colleague)
    assert never.pk

    force_login_verified(client, agent)
    listed = {item["customer_number"] for item in client.get(CUSTOMER_API, {"limit": 500}).json()["results"]}
    assert listed == {mine_open.customer_number, mine_recent.customer_number}
    assert client.get(reverse("customers:customer-detail", args=[theirs.pk])).status_code == 404
    assert client.get(reverse("customers:customer-detail", args=[mine_open.pk])).status_code == 200
    # The admin's customer list follows the same rule.
    page = client.get(reverse("admin:customers_customer_changelist")).content.decode()
    assert theirs.customer_number not in page and mine_open.customer_number in page


def test_compliance_sees_every_customer_and_the_administrator_none(
    client: Client, compliance_officer: User, administrator: User, make_customer: Callable[..., Customer]
) -> None:
    customers = [make_customer(name="李四") for _ in range(3)]
    force_login_verified(client, compliance_officer)
    assert client.get(CUSTOMER_API).json()["count"] == len(customers)
    force_login_verified(client, administrator)
    assert client.get(CUSTOMER_API).status_code == 403


def test_supervisors_change_the_state_of_their_own_team_only(
    client: Client, branch: object, make_staff: Callable[..., User], administrator: User, compliance_officer: User
) -> None:
    boss = make_staff(Role.SUPERVISOR, username="boss")
    other_boss = make_staff(Role.SUPERVISOR, username="other_boss")
    boss_profile = StaffProfile.objects.get(user=boss)
    other_profile = StaffProfile.objects.get(user=other_boss)

    def member(username: str, supervisor: StaffProfile) -> StaffProfile:
        return staff_member_upsert(
            actor=SYSTEM,
            username=username,
            employee_number=f"T-{username}",
            display_name=username,
            role=Role.AGENT,
            branch=supervisor.branch,
            supervisor=supervisor,
            initial_password="correct horse battery",
        )

    mine = member("mine", boss_profile)
    theirs = member("theirs", other_profile)
    force_login_verified(client, boss)

    def set_state(profile: StaffProfile) -> int:
        url = reverse("queueing:staff-state", args=[profile.pk])
        return client.post(url, {"state": "away"}, content_type="application/json").status_code

    assert set_state(mine) == 200
    for outsider in (
        theirs,
        other_profile,
        StaffProfile.objects.get(user=administrator),
        StaffProfile.objects.get(user=compliance_officer),
    ):
        assert set_state(outsider) == 403
