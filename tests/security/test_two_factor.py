from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.audit.models import AuditRecord
from apps.staff.roles import Role
from tests.security.helpers import force_login_verified

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery"
ADMIN_INDEX = reverse("admin:index")
ENROL = reverse("security:enrol")
VERIFY = reverse("security:verify")


def _password_login(client: Client, user: User) -> None:
    response = client.post(
        reverse("admin:login"), {"username": user.username, "password": PASSWORD, "next": "/console/"}
    )
    assert response.status_code == 302


def _confirm_password(client: Client) -> None:
    """Enrolment's first step: the password typed again in this session."""
    response = client.post(ENROL, {"password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"].startswith(ENROL)


def _code(device: TOTPDevice, *, offset_steps: int = 0) -> str:
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time() + offset_steps * device.step
    return f"{totp.token():0{device.digits}d}"


def _enrolled(user: User) -> TOTPDevice:
    return TOTPDevice.objects.create(user=user, name="authenticator", confirmed=True)


def _actions(user: User) -> list[str]:
    return list(AuditRecord.objects.filter(actor_id=str(user.pk)).order_by("sequence").values_list("action", flat=True))


@pytest.mark.parametrize("role", [Role.SUPERVISOR, Role.COMPLIANCE_OFFICER, Role.ADMINISTRATOR])
def test_a_password_alone_does_not_open_the_back_office_for_privileged_roles(
    client: Client, make_staff: Callable[..., User], role: Role
) -> None:
    user = make_staff(role)
    _password_login(client, user)
    for page in (ADMIN_INDEX, "/console/live/supervisor/", reverse("admin:audit_auditrecord_changelist")):
        response = client.get(page)
        assert response.status_code == 302
        assert response["Location"].startswith(ENROL)


@pytest.mark.parametrize("role", [Role.AGENT, Role.EXPERT])
def test_agents_and_experts_log_in_without_a_second_factor(
    client: Client, make_staff: Callable[..., User], role: Role
) -> None:
    user = make_staff(role)
    _password_login(client, user)
    assert client.get("/console/live/agent/").status_code == 200
    assert client.get(ADMIN_INDEX).status_code == 200


def test_enrolment_shows_a_qr_code_and_the_secret_and_a_right_code_confirms_it(
    client: Client, supervisor: User
) -> None:
    _password_login(client, supervisor)
    _confirm_password(client)
    page = client.get(f"{ENROL}?next=/console/live/supervisor/")
    html = page.content.decode()
    assert page.status_code == 200
    assert "<svg" in html and 'class="segno"' in html
    device = TOTPDevice.objects.get(user=supervisor, confirmed=False)
    secret = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', html)
    assert secret is not None and len(secret.group(1).replace(" ", "")) == 32

    response = client.post(ENROL, {"token": _code(device), "next": "/console/live/supervisor/"})
    assert response.status_code == 302
    codes_page = client.get(response["Location"]).content.decode()
    codes = re.findall(r"<li><code>(\d{10})</code></li>", codes_page)
    assert len(codes) == 10
    # Shown once only.
    assert "<li><code>" not in client.get(reverse("security:recovery-codes")).content.decode()
    assert client.get("/console/live/supervisor/").status_code == 200
    device.refresh_from_db()
    assert device.confirmed
    assert _actions(supervisor)[-2:] == ["security.otp.enrolment_started", "security.otp.enrolled"]


def test_a_wrong_enrolment_code_is_refused_and_audited(client: Client, administrator: User) -> None:
    _password_login(client, administrator)
    _confirm_password(client)
    client.get(ENROL)
    response = client.post(ENROL, {"token": "000000"})
    assert response.status_code == 200
    assert not TOTPDevice.objects.filter(user=administrator, confirmed=True).exists()
    assert client.get(ADMIN_INDEX).status_code == 302
    assert AuditRecord.objects.filter(action="security.otp.failed", actor_id=str(administrator.pk)).exists()


def test_login_asks_an_enrolled_officer_for_a_code_and_a_right_one_opens_the_back_office(
    client: Client, compliance_officer: User
) -> None:
    device = _enrolled(compliance_officer)
    _password_login(client, compliance_officer)
    response = client.get(reverse("admin:audit_auditrecord_changelist"))
    assert response["Location"].startswith(VERIFY)
    response = client.post(VERIFY, {"token": _code(device), "next": reverse("admin:audit_auditrecord_changelist")})
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:audit_auditrecord_changelist")
    assert client.get(reverse("admin:audit_auditrecord_changelist")).status_code == 200
    record = AuditRecord.objects.get(action="security.otp.verified", actor_id=str(compliance_officer.pk))
    assert record.data["device"] == "totp"


def test_wrong_codes_are_audited_and_throttled_even_for_the_right_code(client: Client, supervisor: User) -> None:
    device = _enrolled(supervisor)
    _password_login(client, supervisor)
    assert client.post(VERIFY, {"token": "000000"}).status_code == 200
    # The first failure imposes a one-second wait: an immediate right code is refused unchecked.
    response = client.post(VERIFY, {"token": _code(device)})
    assert response.status_code == 429
    assert client.get(ADMIN_INDEX).status_code == 302
    actions = _actions(supervisor)
    assert actions.count("security.otp.failed") == 1
    assert actions.count("security.otp.throttled") == 1
    device.refresh_from_db()
    assert device.throttling_failure_count == 1


def test_a_recovery_code_works_once(client: Client, supervisor: User) -> None:
    _enrolled(supervisor)
    from apps.security.services import _recovery_codes_replace

    code = _recovery_codes_replace(user=supervisor)[0]
    _password_login(client, supervisor)
    assert client.post(VERIFY, {"token": code}).status_code == 302
    assert client.get(ADMIN_INDEX).status_code == 200
    assert not StaticToken.objects.filter(token=code).exists()
    assert "security.otp.recovery_code_used" in _actions(supervisor)

    other = Client()
    _password_login(other, supervisor)
    assert other.post(VERIFY, {"token": code}).status_code == 200
    assert other.get(ADMIN_INDEX).status_code == 302


def test_the_helper_for_other_tests_marks_the_session_verified(client: Client, administrator: User) -> None:
    force_login_verified(client, administrator)
    assert client.get(ADMIN_INDEX).status_code == 200


def test_verify_only_accepts_a_local_next_url(client: Client, supervisor: User) -> None:
    device = _enrolled(supervisor)
    _password_login(client, supervisor)
    response = client.post(VERIFY, {"token": _code(device), "next": "https://evil.example/"})
    assert response["Location"] == ADMIN_INDEX


def test_a_password_alone_cannot_replace_an_enrolled_authenticator(client: Client, supervisor: User) -> None:
    _enrolled(supervisor)
    _password_login(client, supervisor)
    response = client.get(ENROL)
    assert response.status_code == 302
    assert response["Location"].startswith(VERIFY)
    assert client.post(ENROL, {"token": "123456"})["Location"].startswith(VERIFY)
    assert not TOTPDevice.objects.filter(user=supervisor, confirmed=False).exists()


def test_a_verified_user_may_replace_the_authenticator(client: Client, supervisor: User) -> None:
    old = TOTPDevice.objects.create(user=supervisor, name="authenticator", confirmed=True)
    force_login_verified(client, supervisor)
    _confirm_password(client)
    client.get(ENROL)
    new = TOTPDevice.objects.get(user=supervisor, confirmed=False)
    assert client.post(ENROL, {"token": _code(new)}).status_code == 302
    assert list(TOTPDevice.objects.filter(user=supervisor).values_list("pk", flat=True)) == [new.pk]
    assert old.pk != new.pk


def test_connect_src_names_the_janus_servers(settings: object) -> None:
    from apps.security.middleware import _janus_origins

    settings.JANUS_SERVERS = [{"public_ws_url": "wss://media.bank.example/janus"}, {"public_ws_url": ""}]  # type: ignore[attr-defined]
    assert _janus_origins() == ["wss://media.bank.example"]


def test_the_api_refuses_a_password_only_session_of_a_two_factor_role(
    client: Client, supervisor: User, agent: User
) -> None:
    client.force_login(supervisor)
    refused = client.get("/api/queueing/figures/")
    assert refused.status_code == 403
    assert refused.json()["code"] == "second_factor_required"
    force_login_verified(client, supervisor)
    assert client.get("/api/queueing/figures/").status_code == 200
    # Agents are exempt: a password is enough for them.
    client.force_login(agent)
    assert client.get("/api/customers/").status_code == 200


def test_enrolment_needs_the_password_typed_again(client: Client, supervisor: User) -> None:
    _password_login(client, supervisor)
    page = client.get(ENROL)
    assert page.status_code == 200
    assert 'name="password"' in page.content.decode()
    assert not TOTPDevice.objects.filter(user=supervisor).exists()
    wrong = client.post(ENROL, {"password": "not my password"})
    assert wrong.status_code == 200
    assert not TOTPDevice.objects.filter(user=supervisor).exists()
    assert "security.password.confirm_failed" in _actions(supervisor)
    _confirm_password(client)
    assert TOTPDevice.objects.filter(user=supervisor).count() == 0
    client.get(ENROL)
    assert TOTPDevice.objects.filter(user=supervisor, confirmed=False).count() == 1
    assert "security.password.confirmed" in _actions(supervisor)


def test_a_second_session_never_sees_or_confirms_the_pending_secret(client: Client, supervisor: User) -> None:
    _password_login(client, supervisor)
    _confirm_password(client)
    first_page = client.get(ENROL).content.decode()
    first = TOTPDevice.objects.get(user=supervisor, confirmed=False)

    thief = Client()
    _password_login(thief, supervisor)
    # Without the password typed again there is no secret at all ...
    assert "totp-secret" not in thief.get(ENROL).content.decode()
    # ... and with it, a different one: the first session's is discarded, never shown.
    _confirm_password(thief)
    thief_page = thief.get(ENROL).content.decode()
    secret = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', first_page)
    assert secret is not None and secret.group(1) not in thief_page
    # The real user's code for the first secret confirms nothing now (discarded), and
    # a code of the thief's secret is refused in the real user's session.
    thief_device = TOTPDevice.objects.get(user=supervisor, confirmed=False)
    assert thief_device.pk != first.pk
    assert client.post(ENROL, {"token": _code(first)}).status_code == 200
    client_session_device = client.session.get("security_pending_totp_device")
    assert client_session_device != thief_device.pk
    assert not TOTPDevice.objects.filter(user=supervisor, confirmed=True).exists()
    assert "security.otp.enrolment_discarded" in _actions(supervisor)


def test_a_pending_secret_expires(client: Client, supervisor: User, settings: object) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from apps.common.signals import housekeeping_due

    _password_login(client, supervisor)
    _confirm_password(client)
    client.get(ENROL)
    device = TOTPDevice.objects.get(user=supervisor, confirmed=False)
    TOTPDevice.objects.filter(pk=device.pk).update(created_at=timezone.now() - timedelta(hours=1))
    # Too old to confirm, even with a right code ...
    assert client.post(ENROL, {"token": _code(device)}).status_code == 200
    assert not TOTPDevice.objects.filter(user=supervisor, confirmed=True).exists()
    # ... and the sweeper removes what is left.
    TOTPDevice.objects.filter(user=supervisor, confirmed=False).update(created_at=timezone.now() - timedelta(hours=1))
    housekeeping_due.send(sender=None, now=timezone.now())
    assert not TOTPDevice.objects.filter(user=supervisor, confirmed=False).exists()


def test_the_session_key_changes_after_the_password_and_after_the_second_factor(
    client: Client, compliance_officer: User
) -> None:
    device = _enrolled(compliance_officer)
    client.get(reverse("admin:login"))
    before_login = client.cookies["sessionid"].value if "sessionid" in client.cookies else ""
    _password_login(client, compliance_officer)
    after_password = client.cookies["sessionid"].value
    assert after_password != before_login
    assert client.post(VERIFY, {"token": _code(device)}).status_code == 302
    after_second_factor = client.cookies["sessionid"].value
    assert after_second_factor != after_password
    # The old session id opens nothing.
    stale = Client()
    stale.cookies["sessionid"] = after_password
    assert stale.get(ADMIN_INDEX).status_code == 302
    assert client.get(ADMIN_INDEX).status_code == 200


def test_recovery_codes_are_stored_hashed(supervisor: User) -> None:
    from apps.security.services import _recovery_codes_replace

    codes = _recovery_codes_replace(user=supervisor)
    stored = set(StaticToken.objects.filter(device__user=supervisor).values_list("token", flat=True))
    assert len(stored) == len(codes)
    assert not stored & set(codes)
    assert not any(code in token or token in code for code in codes for token in stored)
