"""Where the customer is: the browser's location with consent, the client IP's country, and the policy (R4)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.urls import reverse

from apps.audit.models import AuditRecord
from apps.customers.models import Customer
from apps.queueing.models import QueueEntry
from apps.queueing.services.configuration import service_queue_upsert
from apps.verification.models import VerificationState
from apps.visits.authentication import SESSION_KEY
from apps.visits.integrations.geoip import ip_country
from apps.visits.models import Visit, VisitLocation
from tests.conftest import SYSTEM
from tests.factories import visit_with_gate1
from tests.security.helpers import force_login_verified

pytestmark = pytest.mark.django_db

CHINA = "114.114.114.114"
ABROAD = "8.8.8.8"


@pytest.fixture(autouse=True)
def _queues() -> None:
    service_queue_upsert(actor=SYSTEM, code="activation", name="激活", businesses=["activation"])
    service_queue_upsert(actor=SYSTEM, code="corporate", name="对公", businesses=["corporate_intent"])


def _customer(client: Client, make_customer: Callable[..., Customer], business: str = "activation") -> Visit:
    customer = make_customer()
    visit = visit_with_gate1(
        business_code=business, mobile=customer.mobile, customer=customer, state=VerificationState.QUEUE_READY
    )
    session = client.session
    session[SESSION_KEY] = visit.pk
    session.save()
    return visit


def _report(client: Client, body: dict[str, Any], ip: str = CHINA) -> Any:
    return client.post(reverse("visits:visit-location"), body, content_type="application/json", REMOTE_ADDR=ip)


def _join(client: Client) -> Any:
    return client.post(reverse("queueing:visit-queue-join"), content_type="application/json")


def test_the_ip_country_comes_from_the_offline_database() -> None:
    assert ip_country(CHINA).country == "CN"
    assert ip_country(ABROAD).country == "US"
    assert ip_country("240e::1").country == "CN"  # IPv6 too
    assert ip_country("127.0.0.1").private and ip_country("10.0.0.7").country == ""
    with pytest.raises(ValueError):
        ip_country("not an address")


def test_a_shared_location_is_kept_encrypted_audited_coarsely_and_shown_on_the_evidence_page(
    client: Client, make_customer: Callable[..., Customer], compliance_officer: User
) -> None:
    visit = _customer(client, make_customer)
    response = _report(client, {"consent": "granted", "latitude": 36.06712, "longitude": 120.38261, "accuracy": 35})
    assert response.status_code == 201, response.content
    assert response.json() == {"consent": "granted", "ip_country": "CN"}
    location = VisitLocation.objects.get(visit=visit)
    assert (location.coordinates, location.accuracy_m, location.ip_country) == ("36.06712,120.38261", 35, "CN")
    with connection.cursor() as cursor:
        cursor.execute("SELECT coordinates, ip_address FROM visits_visitlocation WHERE id = %s", [location.pk])
        stored = cursor.fetchone()
    assert "36.067" not in str(stored) and CHINA not in str(stored)  # encrypted at rest
    record = AuditRecord.objects.get(action="visits.location.reported", target_id=str(visit.pk))
    assert record.data["area"] == "36.1,120.4" and record.data["ip_country"] == "CN"
    assert "36.06712" not in str(record.data)
    assert _join(client).status_code == 201

    staff = Client()
    force_login_verified(staff, compliance_officer)
    page = staff.get(reverse("compliance-workspace:service-evidence", args=[visit.public_id]))
    assert page.status_code == 200
    text = page.content.decode()
    assert "≈36.1, 120.4" in text and "36.06712" not in text


def test_a_refusal_is_recorded_and_the_business_policy_decides(
    client: Client, make_customer: Callable[..., Customer], settings: Any
) -> None:
    settings.LOCATION_REQUIRED_BUSINESSES = ("corporate_intent",)
    ordinary = _customer(client, make_customer)
    assert _report(client, {"consent": "denied"}).status_code == 201
    assert _join(client).status_code == 201  # activation does not need the location
    assert AuditRecord.objects.filter(action="visits.location.reported", target_id=str(ordinary.pk)).exists()

    other = Client()
    corporate = _customer(other, make_customer, business="corporate_intent")
    assert _report(other, {"consent": "denied"}).status_code == 201
    refused = _join(other)
    assert (refused.status_code, refused.json()["code"]) == (409, "location_required")
    assert refused.json()["message"]
    assert not QueueEntry.objects.filter(visit=corporate).exists()
    # The customer changes their mind: the latest report counts.
    assert _report(other, {"consent": "granted", "latitude": 36.1, "longitude": 120.4}).status_code == 201
    assert _join(other).status_code == 201


def test_a_required_location_must_be_reported_before_joining(
    client: Client, make_customer: Callable[..., Customer], settings: Any
) -> None:
    settings.LOCATION_REQUIRED_BUSINESSES = ("activation",)
    _customer(client, make_customer)
    refused = _join(client)
    assert (refused.status_code, refused.json()["code"]) == (409, "location_missing")


def test_an_address_outside_the_allowed_region_cannot_join(
    client: Client, make_customer: Callable[..., Customer], settings: Any
) -> None:
    settings.LOCATION_ALLOWED_COUNTRIES = ("CN",)
    settings.LOCATION_ALLOW_PRIVATE_IP = False
    visit = _customer(client, make_customer)
    assert _report(client, {"consent": "granted", "latitude": 1.3, "longitude": 103.8}, ip=ABROAD).status_code == 201
    refused = _join(client)
    assert (refused.status_code, refused.json()["code"]) == (409, "location_region")
    assert refused.json()["details"]["country"] == "US"
    assert not QueueEntry.objects.filter(visit=visit).exists()
    # A private address cannot be placed, and is refused when the policy says so.
    assert _report(client, {"consent": "denied"}, ip="10.1.2.3").status_code == 201
    assert _join(client).json()["code"] == "location_ip_unknown"
    assert _report(client, {"consent": "denied"}, ip=CHINA).status_code == 201
    assert _join(client).status_code == 201


@pytest.mark.parametrize(
    "body",
    [
        {"consent": "maybe"},
        {"consent": "granted"},
        {"consent": "granted", "latitude": 91, "longitude": 0},
        {"consent": "granted", "latitude": 30, "longitude": "east"},
        {"consent": "granted", "latitude": 30, "longitude": 181},
    ],
)
def test_a_malformed_report_is_refused_and_nothing_is_stored(
    client: Client, make_customer: Callable[..., Customer], body: dict[str, Any]
) -> None:
    visit = _customer(client, make_customer)
    response = _report(client, body)
    assert response.status_code == 400 and response.json()["message"]
    assert not VisitLocation.objects.filter(visit=visit).exists()
    assert not AuditRecord.objects.filter(action="visits.location.reported").exists()


def test_a_closed_visit_takes_no_location(client: Client, make_customer: Callable[..., Customer]) -> None:
    visit = _customer(client, make_customer)
    Visit.objects.filter(pk=visit.pk).update(outcome="abandoned")
    response = _report(client, {"consent": "denied"})
    assert (response.status_code, response.json()["code"]) == (409, "visit_closed")


def test_without_a_visit_session_the_endpoint_refuses(client: Client) -> None:
    response = _report(client, {"consent": "denied"})
    assert response.status_code == 404 and response.json()["code"] == "no_visit"
    assert not VisitLocation.objects.exists()
