"""Access rules of R8.3 around evidence: nobody edits it, CSRF on staff writes, idle session timeout, HSTS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib import admin
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.db import connection
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.security.middleware import SESSION_REFRESHED_KEY
from apps.staff.roles import Role
from tests.security.helpers import force_login_verified

pytestmark = pytest.mark.django_db

# The evidence of a service and of the audit trail: written by services only, never edited.
EVIDENCE_MODELS = (
    "audit.AuditRecord",
    "compliance.AuditExport",
    "recordings.Recording",
    "recordings.RecordingFile",
    "recordings.Snapshot",
    "gates.GateProgress",
    "gates.GateAttempt",
    "gates.QuestionDraw",
    "visits.Visit",
    "verification.Verification",
    "calls.Call",
    "calls.CallParticipant",
)


@pytest.mark.parametrize("label", EVIDENCE_MODELS)
def test_no_one_not_even_a_superuser_can_add_change_or_delete_evidence_in_the_admin(label: str) -> None:
    model = apps.get_model(label)
    model_admin = admin.site._registry.get(model)
    if model_admin is None:
        return  # not in the back office at all: nothing to edit it with
    superuser = User.objects.create_superuser("root", "root@example.invalid", "correct horse battery")
    request = RequestFactory().get("/console/")
    request.user = superuser
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request)
    assert not model_admin.has_delete_permission(request)


def test_a_superuser_posting_to_an_evidence_admin_form_is_refused(client: Client) -> None:
    superuser = User.objects.create_superuser("root", "root@example.invalid", "correct horse battery")
    force_login_verified(client, superuser)
    for path in ("/console/recordings/snapshot/add/", "/console/audit/auditrecord/add/"):
        assert client.post(path, {}).status_code == 403


def test_a_finished_gate_attempt_cannot_be_changed(make_customer: Callable[..., object]) -> None:
    from apps.gates.models import FinishedAttemptIsImmutable, GateAttempt, GateProgress
    from apps.visits.models import Visit

    visit = Visit.objects.create(business_code="activation", mobile="13900000000")
    progress = GateProgress.objects.create(visit=visit, started_at=timezone.now())
    attempt = GateAttempt.objects.create(
        progress=progress, gate="identity", number=1, status="passed", result_code="match", started_at=timezone.now()
    )
    attempt.result_code = "mismatch"
    with pytest.raises(FinishedAttemptIsImmutable):
        attempt.save()


# Every state-changing staff endpoint, with a role that may otherwise use it.
STAFF_POSTS = [
    (Role.COMPLIANCE_OFFICER, "/console/live/compliance/chain/verify/"),
    (Role.COMPLIANCE_OFFICER, "/console/live/compliance/exports/"),
    (Role.COMPLIANCE_OFFICER, "/api/compliance/exports/"),
    (Role.SUPERVISOR, "/api/recordings/1/reprocess/"),
    (Role.SUPERVISOR, "/api/queueing/entries/1/move/"),
    (Role.SUPERVISOR, "/api/queueing/staff/1/state/"),
    (Role.AGENT, "/api/queueing/agent/state/"),
    (Role.AGENT, "/api/queueing/agent/service-end/"),
    (Role.AGENT, "/api/queueing/offers/1/accept/"),
    (Role.AGENT, "/api/queueing/offers/1/decline/"),
    (Role.AGENT, f"/api/calls/{uuid.uuid4()}/"),
    (Role.AGENT, f"/api/calls/{uuid.uuid4()}/invite/"),
    (Role.AGENT, f"/api/calls/{uuid.uuid4()}/transfer/"),
    (Role.AGENT, f"/api/recordings/calls/{uuid.uuid4()}/snapshots/capture/"),
    (Role.ADMINISTRATOR, "/console/auth/user/add/"),
    (Role.ADMINISTRATOR, "/console/logout/"),
]


@pytest.mark.parametrize(("role", "path"), STAFF_POSTS)
def test_a_staff_post_without_the_csrf_token_is_refused(make_staff: Callable[..., User], role: Role, path: str) -> None:
    client = Client(enforce_csrf_checks=True)
    force_login_verified(client, make_staff(role))
    response = client.post(path, {}, headers={"accept-language": "en"})
    assert response.status_code == 403
    assert b"CSRF" in response.content


def test_the_same_post_with_the_token_goes_through(compliance_officer: User) -> None:
    client = Client(enforce_csrf_checks=True)
    force_login_verified(client, compliance_officer)
    client.get("/console/live/compliance/")
    token = client.cookies[settings.CSRF_COOKIE_NAME].value
    response = client.post("/console/live/compliance/chain/verify/", {"csrfmiddlewaretoken": token})
    assert response.status_code == 302


def _session_expiry(client: Client) -> Session:
    return Session.objects.get(session_key=client.session.session_key)


def _refreshed_ago(client: Client, seconds: int) -> None:
    """Make the session's last refresh ``seconds`` older (as if that much time had passed since)."""
    session = client.session
    session[SESSION_REFRESHED_KEY] -= seconds
    session.save()


def test_a_staff_session_ends_after_the_idle_timeout_and_each_request_extends_it(
    client: Client, compliance_officer: User
) -> None:
    assert settings.SESSION_COOKIE_AGE == 30 * 60  # REMOTEBANK_SESSION_SECONDS, default 30 minutes
    assert settings.SESSION_REFRESH_SECONDS == 60  # REMOTEBANK_SESSION_REFRESH_SECONDS
    force_login_verified(client, compliance_officer)
    assert client.get("/console/live/compliance/").status_code == 200
    session = _session_expiry(client)
    assert abs((session.expire_date - timezone.now()) - timedelta(minutes=30)) < timedelta(seconds=30)

    # Within the refresh interval a request does not write the session again.
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/console/live/compliance/").status_code == 200
    assert not [query for query in queries if query["sql"].startswith('UPDATE "django_session"')]

    # 29 idle minutes: still in, and the request pushes the end 30 minutes away again.
    _refreshed_ago(client, 29 * 60)
    Session.objects.filter(pk=session.pk).update(expire_date=timezone.now() + timedelta(minutes=1))
    assert client.get("/console/live/compliance/").status_code == 200
    session = _session_expiry(client)
    assert session.expire_date - timezone.now() > timedelta(minutes=29)

    # 31 idle minutes: the session is gone; back to the login page.
    Session.objects.filter(pk=session.pk).update(expire_date=timezone.now() - timedelta(minutes=1))
    response = client.get("/console/live/compliance/")
    assert response.status_code == 302
    assert "/login/" in response["Location"]


def test_production_settings_send_hsts_and_secure_cookies() -> None:
    root = Path(settings.BASE_DIR)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("REMOTEBANK_", "DJANGO_", "DATABASE_URL", "REDIS_URL"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="remotebank.settings.production",
        REMOTEBANK_SECRET_KEY="x" * 50,
        REMOTEBANK_FIELD_ENCRYPTION_KEYS="a" * 44,
        REMOTEBANK_BLIND_INDEX_KEY="b" * 44,
        REMOTEBANK_JANUS_API_SECRET="test-api-secret-0123456789",
        REMOTEBANK_JANUS_ADMIN_SECRET="test-admin-secret-0123456789",
        REMOTEBANK_JANUS_ADMIN_KEY="test-admin-key-0123456789",
        REMOTEBANK_JANUS_TOKEN_SECRET="test-token-secret-0123456789",
        REMOTEBANK_JANUS_EVENTS_SECRET="test-events-secret-0123456789",
    )
    # Without a TURN secret production refuses to start (calls through NAT need it, docs/janus.md).
    refused = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=root, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert refused.returncode != 0 and "REMOTEBANK_TURN_SECRET" in refused.stderr
    env["REMOTEBANK_TURN_SECRET"] = "test-turn-secret-0123456789"
    script = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        "print(json.dumps([s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.SESSION_COOKIE_SECURE, "
        "s.CSRF_COOKIE_SECURE, s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_AGE, s.SESSION_REFRESH_SECONDS]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=root, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    hsts, subdomains, session_secure, csrf_secure, redirect, age, refresh = json.loads(
        result.stdout.strip().splitlines()[-1]
    )
    assert hsts >= 31536000 and subdomains
    assert session_secure and csrf_secure and redirect
    assert age == 30 * 60 and refresh == 60
