"""The supervisors' screen of remote-service blocks (issue 14): who sees it, what it shows, lifting one, audited."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone, translation

from apps.audit.models import AuditRecord
from apps.customers.models import Customer
from apps.visits.models import Visit, VisitBlock, VisitOutcome
from apps.visits.services import visit_close
from tests.conftest import SYSTEM
from tests.factories import visit_with_gate1
from tests.security.helpers import force_login_verified

pytestmark = pytest.mark.django_db

BLOCKS_PAGE = "/console/live/blocks/"


def _client_for(user: User) -> Client:
    client = Client()
    force_login_verified(client, user)
    return client


@pytest.fixture
def failed_visit(make_customer: Callable[..., Customer]) -> Visit:
    customer = make_customer()
    visit = visit_with_gate1(business_code="activation", mobile=customer.mobile, customer=customer, state="queue_ready")
    visit_close(visit_id=visit.pk, actor=SYSTEM, outcome=VisitOutcome.GATE_FAILED, reason="face:below_threshold")
    return visit


def test_the_page_is_at_its_address_and_linked_from_the_wallboard_and_the_back_office(supervisor: User) -> None:
    assert reverse("console:blocks") == BLOCKS_PAGE
    client = _client_for(supervisor)
    assert f'href="{BLOCKS_PAGE}"' in client.get(reverse("console:supervisor")).content.decode()
    assert f'href="{BLOCKS_PAGE}"' in client.get(reverse("admin:index")).content.decode()


def test_a_supervisor_sees_the_blocks_in_force_masked_in_chinese_without_inline_script(
    supervisor: User, failed_visit: Visit
) -> None:
    block = VisitBlock.objects.get(visit=failed_visit)
    assert failed_visit.customer is not None
    response = _client_for(supervisor).get(BLOCKS_PAGE)

    assert response.status_code == 200
    html = response.content.decode()
    row = re.search(rf'<tr data-block="{block.pk}">(.*?)</tr>', html, re.S)
    assert row is not None, html
    cells = row.group(1)
    # Masked as everywhere else: neither the full name nor the full number.
    assert failed_visit.mobile not in html and failed_visit.customer.name not in html
    assert failed_visit.mobile[:3] in cells and "*" in cells
    assert str(failed_visit.public_id) in cells and "face:below_threshold" in cells
    assert timezone.localtime(block.blocked_until).strftime("%Y-%m-%d %H:%M") in cells
    assert f'action="{reverse("console:block-lift", args=[block.pk])}"' in cells
    # Chinese first.
    with translation.override("zh-hans"):
        assert f"<h1>{translation.gettext('Remote service blocks')}</h1>" in html
        assert translation.gettext("Face verification") in cells
    # CSP-safe: every script is a file of our own or the JSON config, none inline, no handler attributes.
    for script in re.findall(r"<script[^>]*>", html):
        assert "src=" in script or 'type="application/json"' in script, script
    assert not re.search(r"\son[a-z]+=", html)


def test_a_lifted_or_expired_block_is_not_listed(supervisor: User, failed_visit: Visit) -> None:
    VisitBlock.objects.filter(visit=failed_visit).update(blocked_until=timezone.now())
    html = _client_for(supervisor).get(BLOCKS_PAGE).content.decode()
    assert "data-block=" not in html


def test_a_supervisor_lifts_a_block_with_a_reason_audited(supervisor: User, failed_visit: Visit) -> None:
    block = VisitBlock.objects.get(visit=failed_visit)
    client = _client_for(supervisor)

    response = client.post(reverse("console:block-lift", args=[block.pk]), {"reason": "已在西单支行柜面核实身份"})

    assert response.status_code == 302 and response["Location"] == BLOCKS_PAGE
    block.refresh_from_db()
    assert block.lifted_at is not None and block.lifted_by == supervisor
    assert block.lift_reason == "已在西单支行柜面核实身份"
    record = AuditRecord.objects.get(action="visits.block.lifted")
    assert record.actor_id == str(supervisor.pk) and record.data["reason"] == "已在西单支行柜面核实身份"
    assert record.target_id == str(failed_visit.pk)
    page = client.get(BLOCKS_PAGE).content.decode()
    assert "data-block=" not in page
    assert str(failed_visit.public_id) in page  # the confirmation names the service


def test_lifting_needs_a_reason_and_a_lifted_block_cannot_be_lifted_again(
    supervisor: User, failed_visit: Visit
) -> None:
    block = VisitBlock.objects.get(visit=failed_visit)
    client = _client_for(supervisor)
    url = reverse("console:block-lift", args=[block.pk])

    response = client.post(url, {"reason": "   "}, follow=True)

    assert response.status_code == 200
    with translation.override("zh-hans"):
        assert translation.gettext("Please say why the block is lifted.") in response.content.decode()
    block.refresh_from_db()
    assert block.lifted_at is None and not AuditRecord.objects.filter(action="visits.block.lifted").exists()

    client.post(url, {"reason": "counter check"})
    again = client.post(url, {"reason": "twice"}, follow=True)
    with translation.override("zh-hans"):
        assert translation.gettext("This block has already been lifted.") in again.content.decode()
    assert AuditRecord.objects.filter(action="visits.block.lifted").count() == 1
    assert client.get(url).status_code == 405  # lifting is a POST only


@pytest.mark.parametrize("role", ["agent", "expert", "compliance_officer"])
def test_staff_who_do_not_supervise_can_neither_see_nor_lift_blocks(
    role: str, request: pytest.FixtureRequest, failed_visit: Visit
) -> None:
    block = VisitBlock.objects.get(visit=failed_visit)
    client = _client_for(request.getfixturevalue(role))

    assert client.get(BLOCKS_PAGE).status_code == 403
    assert client.post(reverse("console:block-lift", args=[block.pk]), {"reason": "x"}).status_code == 403

    block.refresh_from_db()
    assert block.lifted_at is None and not AuditRecord.objects.filter(action="visits.block.lifted").exists()
    assert f'href="{BLOCKS_PAGE}"' not in client.get(reverse("admin:index")).content.decode()


def test_anonymous_visitors_are_sent_to_the_login(client: Client, failed_visit: Visit) -> None:
    block = VisitBlock.objects.get(visit=failed_visit)
    assert client.get(BLOCKS_PAGE).status_code == 302
    assert client.post(reverse("console:block-lift", args=[block.pk]), {"reason": "x"}).status_code == 302
    assert VisitBlock.objects.get(pk=block.pk).lifted_at is None
