"""Receivers: each only calls a service (STYLE.md)."""

from __future__ import annotations

from typing import Any

from axes.signals import user_locked_out
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db import transaction
from django.http import HttpRequest

from apps.audit.actions import AuditAction
from apps.audit.models import ActorKind
from apps.audit.services import Actor, audit_record
from apps.common.network import client_address
from apps.common.signals import housekeeping_due


def sync_roles_after_migrate(**kwargs: Any) -> None:
    from django.apps import apps
    from django.contrib.auth.management import create_permissions

    from apps.staff.services import role_permissions_sync

    # post_migrate reaches apps one by one; roles name permissions of apps
    # that may come later, so make sure all of them exist first.
    for app_config in apps.get_app_configs():
        create_permissions(app_config, verbosity=0, using=kwargs.get("using", "default"))
    role_permissions_sync(actor=Actor.system("migrate"))


def _client_address(request: HttpRequest | None) -> str:
    return client_address(request)


def _attempted(username: str) -> Actor:
    # The username may not exist; it is recorded as typed (truncated).
    return Actor(ActorKind.STAFF, "", (username or "")[:150])


def on_login(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    with transaction.atomic():
        audit_record(actor=user, action=AuditAction.STAFF_LOGIN_SUCCEEDED, data={"ip": _client_address(request)})


def on_logout(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if user is None:
        return
    with transaction.atomic():
        audit_record(actor=user, action=AuditAction.STAFF_LOGGED_OUT, data={"ip": _client_address(request)})


def on_login_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    with transaction.atomic():
        audit_record(
            actor=_attempted(credentials.get("username", "")),
            action=AuditAction.STAFF_LOGIN_FAILED,
            data={"ip": _client_address(request)},
        )


def on_locked_out(sender: Any, request: HttpRequest | None, username: str, ip_address: str, **kwargs: Any) -> None:
    with transaction.atomic():
        audit_record(
            actor=_attempted(username),
            action=AuditAction.STAFF_LOGIN_LOCKED_OUT,
            data={"ip": ip_address},
        )


def on_housekeeping_due(sender: Any, now: Any, **kwargs: Any) -> None:
    from apps.staff.services import elevations_expire

    elevations_expire(now=now)


def connect_auth_signals() -> None:
    user_logged_in.connect(on_login, dispatch_uid="audit_staff_login")
    user_logged_out.connect(on_logout, dispatch_uid="audit_staff_logout")
    user_login_failed.connect(on_login_failed, dispatch_uid="audit_staff_login_failed")
    user_locked_out.connect(on_locked_out, dispatch_uid="audit_staff_locked_out")
    # Break-glass grants end at their expiry on the dispatcher's clock.
    housekeeping_due.connect(on_housekeeping_due, dispatch_uid="staff_elevations_expire_on_housekeeping")
