"""Users, groups and permissions change only through audited services (issue #17 item 1)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.audit.models import AuditRecord
from apps.audit.selectors import audit_chain_verify
from apps.common.signals import housekeeping_due
from apps.staff.models import ElevationGrant
from apps.staff.roles import ROLE_PERMISSIONS, Role
from apps.staff.services import ElevationRefused, elevation_grant, role_permissions_sync
from tests.conftest import SYSTEM
from tests.security.helpers import force_login_verified

pytestmark = pytest.mark.django_db


def test_the_administrator_cannot_make_itself_superuser_in_the_admin(client: Client, administrator: User) -> None:
    force_login_verified(client, administrator)
    change = reverse("admin:auth_user_change", args=[administrator.pk])
    page = client.get(change)
    # Shown read-only (a view page), never as a form field that could be ticked.
    assert page.status_code == 200
    assert 'name="is_superuser"' not in page.content.decode()
    assert 'name="user_permissions"' not in page.content.decode()
    everything = Permission.objects.values_list("pk", flat=True)
    response = client.post(
        change,
        {
            "username": administrator.username,
            "is_active": "on",
            "is_staff": "on",
            "is_superuser": "on",
            "user_permissions": list(everything),
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
        },
    )
    assert response.status_code == 403
    administrator.refresh_from_db()
    assert not administrator.is_superuser
    assert not administrator.user_permissions.exists()
    assert not administrator.has_perm("compliance.unmask_personal_data")
    # Nor can it add a new login through the admin.
    assert client.get(reverse("admin:auth_user_add")).status_code == 403


def test_the_administrator_role_holds_no_power_to_change_logins() -> None:
    assert not {"auth.change_user", "auth.add_user", "auth.change_group", "auth.change_permission"} & set(
        ROLE_PERMISSIONS[Role.ADMINISTRATOR]
    )


def test_role_sync_removes_per_user_grants_superuser_flags_and_stray_groups(
    make_staff: Callable[..., User], administrator: User
) -> None:
    agent = make_staff(Role.AGENT)
    unmask = Permission.objects.get(content_type__app_label="compliance", codename="unmask_personal_data")
    administrator.user_permissions.add(unmask)
    administrator.is_superuser = True
    administrator.save()
    agent.groups.add(*list(administrator.groups.all()))

    role_permissions_sync(actor=SYSTEM)

    administrator = User.objects.get(pk=administrator.pk)
    agent = User.objects.get(pk=agent.pk)
    assert not administrator.is_superuser
    assert not administrator.user_permissions.exists()
    assert not administrator.has_perm("compliance.unmask_personal_data")
    assert [group.name for group in agent.groups.all()] == [Role.AGENT.value]
    record = AuditRecord.objects.filter(action="staff.rights.revoked").latest("sequence")
    assert record.data["users"][administrator.username] == {
        "permissions": ["compliance.unmask_personal_data"],
        "superuser": True,
    }
    assert record.data["users"][agent.username] == {"groups": [Role.ADMINISTRATOR.value]}
    assert audit_chain_verify().intact


def _three(make_staff: Callable[..., User]) -> tuple[User, User, User]:
    return (
        make_staff(Role.ADMINISTRATOR, username="ops_admin"),
        make_staff(Role.ADMINISTRATOR, username="ops_lead"),
        make_staff(Role.COMPLIANCE_OFFICER, username="ciso"),
    )


def test_break_glass_grants_superuser_for_a_while_on_two_named_peoples_word(
    make_staff: Callable[..., User],
) -> None:
    target, requester, approver = _three(make_staff)
    call_command(
        "break_glass",
        "grant",
        target.username,
        "--requested-by",
        requester.username,
        "--approved-by",
        approver.username,
        "--reason",
        "Restore the queue configuration after the failed deploy.",
        "--minutes",
        "30",
    )
    target.refresh_from_db()
    assert target.is_superuser
    record = AuditRecord.objects.get(action="staff.elevation.granted")
    assert record.actor_label == requester.username
    assert record.data["approved_by"] == approver.username
    assert record.data["reason"].startswith("Restore the queue")
    # A deploy's role sync keeps a running grant.
    role_permissions_sync(actor=SYSTEM)
    target.refresh_from_db()
    assert target.is_superuser

    # The dispatcher's clock ends it at its expiry.
    housekeeping_due.send(sender=None, now=timezone.now() + timedelta(minutes=29))
    target.refresh_from_db()
    assert target.is_superuser
    housekeeping_due.send(sender=None, now=timezone.now() + timedelta(minutes=31))
    target.refresh_from_db()
    assert not target.is_superuser
    grant = ElevationGrant.objects.get()
    assert grant.end_reason == "expired"
    ended = AuditRecord.objects.get(action="staff.elevation.ended")
    assert ended.data["why"] == "expired"
    assert audit_chain_verify().intact


def test_break_glass_refuses_one_person_alone_no_reason_or_a_long_grant(make_staff: Callable[..., User]) -> None:
    target, requester, approver = _three(make_staff)
    reason = "Restore the queue configuration after the failed deploy."
    with pytest.raises(ElevationRefused):
        elevation_grant(user=target, requested_by=requester, approved_by=requester, reason=reason, minutes=30)
    with pytest.raises(ElevationRefused):
        elevation_grant(user=target, requested_by=requester, approved_by=target, reason=reason, minutes=30)
    with pytest.raises(ElevationRefused):
        elevation_grant(user=target, requested_by=requester, approved_by=approver, reason="fix", minutes=30)
    with pytest.raises(ElevationRefused):
        elevation_grant(user=target, requested_by=requester, approved_by=approver, reason=reason, minutes=10_000)
    with pytest.raises(CommandError):
        call_command(
            "break_glass",
            "grant",
            target.username,
            "--requested-by",
            requester.username,
            "--approved-by",
            requester.username,
            "--reason",
            reason,
            "--minutes",
            "30",
        )
    target.refresh_from_db()
    assert not target.is_superuser
    assert not ElevationGrant.objects.exists()


def test_break_glass_revoke_ends_the_rights_now(make_staff: Callable[..., User]) -> None:
    target, requester, approver = _three(make_staff)
    elevation_grant(
        user=target, requested_by=requester, approved_by=approver, reason="Investigate the stuck queue now.", minutes=60
    )
    call_command("break_glass", "revoke", target.username, "--by", approver.username)
    target.refresh_from_db()
    assert not target.is_superuser
    assert ElevationGrant.objects.get().end_reason == "revoked"
