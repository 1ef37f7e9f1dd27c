from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from apps.audit.models import AuditRecord

pytestmark = pytest.mark.django_db

LOGIN = reverse("admin:login")


def _login(client: Client, username: str, password: str) -> int:
    return client.post(LOGIN, {"username": username, "password": password, "next": "/console/"}).status_code


def test_staff_log_in_and_the_login_is_audited(client: Client, agent: User) -> None:
    assert _login(client, agent.username, "correct horse battery") == 302
    assert AuditRecord.objects.filter(action="staff.login.succeeded", actor_id=str(agent.pk)).exists()


def test_repeated_failed_logins_lock_the_account_even_with_the_right_password(client: Client, agent: User) -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _login(client, agent.username, "wrong password")
    assert _login(client, agent.username, "correct horse battery") == 429
    failed = AuditRecord.objects.filter(action="staff.login.failed", actor_label=agent.username).count()
    # The refused attempt made while locked is a failed login too.
    assert failed == settings.AXES_FAILURE_LIMIT + 1
    assert AuditRecord.objects.filter(action="staff.login.locked_out", actor_label=agent.username).exists()


def test_the_back_office_speaks_chinese_first_and_english_on_request(client: Client) -> None:
    chinese = client.get(LOGIN).content.decode()
    assert "用户名" in chinese
    english = client.get(LOGIN, headers={"accept-language": "en"}).content.decode()
    assert "Username" in english
