from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from apps.audit.models import AuditRecord
from apps.staff.roles import Role

pytestmark = pytest.mark.django_db

LOGIN = reverse("admin:login")


def _login(client: Client, username: str, password: str) -> int:
    return client.post(LOGIN, {"username": username, "password": password, "next": "/console/"}).status_code


def test_staff_log_in_and_the_login_is_audited(client: Client, agent: User) -> None:
    assert _login(client, agent.username, "correct horse battery") == 302
    assert AuditRecord.objects.filter(action="staff.login.succeeded", actor_id=str(agent.pk)).exists()


def _attempt(client: Client, username: str, password: str, address: str, forwarded_for: str = "") -> int:
    headers = {"x-forwarded-for": forwarded_for} if forwarded_for else {}
    return client.post(
        LOGIN,
        {"username": username, "password": password, "next": "/console/"},
        REMOTE_ADDR=address,
        headers=headers,
    ).status_code


def _time_passes(seconds: int) -> None:
    """Move every username's last failure back, as if ``seconds`` had gone by."""
    from datetime import timedelta

    from django.db.models import F

    from apps.security.models import LoginThrottle

    LoginThrottle.objects.update(last_failure_at=F("last_failure_at") - timedelta(seconds=seconds))


def test_an_address_that_fails_too_often_is_locked_even_with_the_right_password(client: Client, agent: User) -> None:
    for index in range(settings.AXES_FAILURE_LIMIT):
        _attempt(client, f"nobody{index}", "wrong password", "203.0.113.5")
    assert _attempt(client, agent.username, "correct horse battery", "203.0.113.5") == 429
    assert AuditRecord.objects.filter(action="staff.login.locked_out").exists()
    # The same user from elsewhere is not locked.
    assert _attempt(Client(), agent.username, "correct horse battery", "198.51.100.7") == 302


def test_password_spraying_one_wrong_password_per_user_is_stopped(
    client: Client, make_staff: Callable[..., User]
) -> None:
    users = [make_staff(Role.AGENT, username=f"spray{index}") for index in range(settings.AXES_FAILURE_LIMIT + 1)]
    statuses = [_attempt(client, user.username, "Summer2026!", "203.0.113.9") for user in users]
    # One wrong password each locks nobody's account, but the address is stopped.
    assert statuses[-1] == 429
    assert _attempt(client, users[0].username, "correct horse battery", "203.0.113.9") == 429


def test_many_failures_for_one_user_slow_them_down_but_never_lock_them_out(client: Client, agent: User) -> None:
    # An attacker spreading guesses over many addresses, none reaching the address limit.
    for index in range(settings.LOGIN_USER_FREE_FAILURES + 3):
        _attempt(Client(), agent.username, "wrong password", f"203.0.113.{index + 1}")
        _time_passes(settings.LOGIN_USER_MAX_DELAY_SECONDS)
    _attempt(Client(), agent.username, "wrong password", "203.0.113.100")
    # A guess right after the last failure is refused unchecked, with the wait ...
    response = Client().post(
        LOGIN, {"username": agent.username, "password": "correct horse battery"}, REMOTE_ADDR="203.0.113.101"
    )
    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= settings.LOGIN_USER_MAX_DELAY_SECONDS
    assert AuditRecord.objects.filter(action="staff.login.delayed", actor_label=agent.username).exists()
    # ... and once it has passed, the real user logs in from their own address.
    _time_passes(settings.LOGIN_USER_MAX_DELAY_SECONDS)
    assert _attempt(client, agent.username, "correct horse battery", "198.51.100.7") == 302


def test_nobody_locks_a_user_out_through_a_forged_forwarded_for(client: Client, agent: User, settings: Any) -> None:
    settings.TRUSTED_PROXIES = ["10.0.0.1"]
    # Straight to the server, claiming to be the victim's address: the header is ignored.
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _attempt(Client(), agent.username, "wrong password", "203.0.113.66", forwarded_for="198.51.100.7")
    _time_passes(settings.LOGIN_USER_MAX_DELAY_SECONDS)
    assert _attempt(client, agent.username, "correct horse battery", "198.51.100.7") == 302


def test_behind_the_trusted_proxy_each_client_is_throttled_on_its_own_address(
    client: Client, agent: User, settings: Any
) -> None:
    settings.TRUSTED_PROXIES = ["10.0.0.0/24"]
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _attempt(Client(), agent.username, "wrong password", "10.0.0.1", forwarded_for="1.2.3.4, 203.0.113.66")
    # The attacker's address is locked (the forged 1.2.3.4 left of it is ignored) ...
    assert _attempt(Client(), agent.username, "correct horse battery", "10.0.0.1", forwarded_for="203.0.113.66") == 429
    # ... while the real user, through the same proxy, gets in once the per-user wait has passed.
    _time_passes(settings.LOGIN_USER_MAX_DELAY_SECONDS)
    assert _attempt(client, agent.username, "correct horse battery", "10.0.0.1", forwarded_for="198.51.100.7") == 302
    record = AuditRecord.objects.filter(action="staff.login.succeeded").latest("sequence")
    assert record.data["ip"] == "198.51.100.7"


def test_login_without_next_lands_on_the_users_own_page(client: Client, agent: User) -> None:
    response = client.post(LOGIN, {"username": agent.username, "password": "correct horse battery"})
    assert response.status_code == 302
    landing = client.get(response["Location"], follow=True)
    assert landing.status_code == 200
    assert landing.redirect_chain[-1][0] == reverse("console:agent")


def test_the_back_office_speaks_chinese_first_and_english_on_request(client: Client) -> None:
    chinese = client.get(LOGIN).content.decode()
    assert "用户名" in chinese
    english = client.get(LOGIN, headers={"accept-language": "en"}).content.decode()
    assert "Username" in english
