"""Staff two-factor authentication: enrolment and verification (R8.3).

Devices are django-otp's: one TOTP device (an authenticator app) and one
static device holding single-use recovery codes per staff member. Every
attempt, right or wrong, is audited in the same transaction as the device
change it causes (the throttle counter, the used recovery code).
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django.utils.translation import gettext_lazy as _
from django_otp import login as otp_login
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.audit.actions import AuditAction
from apps.audit.services import Actor, audit_record
from apps.common.errors import ApplicationError
from apps.common.network import client_address
from apps.security.throttling import login_delay_remaining, login_failure_count

TOTP_DEVICE_NAME = "authenticator"
RECOVERY_DEVICE_NAME = "recovery"
RECOVERY_CODE_COUNT = 10
# Session keys: when the password was last typed again (enrolment needs it
# fresh), and the one pending authenticator this session may see and confirm.
PASSWORD_CONFIRMED_SESSION_KEY = "security_password_confirmed_at"  # noqa: S105 - a session key name
PENDING_DEVICE_SESSION_KEY = "security_pending_totp_device"


class TwoFactorError(ApplicationError):
    default_code = "two_factor"


class TwoFactorThrottled(TwoFactorError):
    status_code = 429
    default_code = "two_factor_throttled"

    def __init__(self, wait_seconds: int) -> None:
        super().__init__(
            _("Too many wrong codes. Try again in %(seconds)s s.") % {"seconds": wait_seconds},
            extra={"wait_seconds": wait_seconds},
        )
        self.wait_seconds = wait_seconds


class PasswordConfirmThrottled(TwoFactorThrottled):
    def __init__(self, wait_seconds: int) -> None:
        ApplicationError.__init__(
            self,
            _("Too many wrong passwords. Try again in %(seconds)s s.") % {"seconds": wait_seconds},
            extra={"wait_seconds": wait_seconds},
        )
        self.wait_seconds = wait_seconds


@dataclass(frozen=True)
class VerificationResult:
    verified: bool
    device_kind: str  # "totp", "recovery" or "" when nothing matched


def _ip(request: HttpRequest) -> str:
    return client_address(request)


def _session_rotate(request: HttpRequest) -> None:
    """A new session key for a session that just proved more (password, second factor).

    A session id seen before the step (fixation, a shared machine, a log
    line) is worth nothing after it.
    """
    request.session.cycle_key()


def password_confirm(*, actor: Any, request: HttpRequest, password: str) -> bool:
    """Check ``actor``'s password again before a sensitive step; True when right (audited either way).

    Wrong passwords count toward the same per-username delay as logins, so a
    stolen session cannot guess the password here faster than at the login.
    """
    wait = login_delay_remaining(username=actor.get_username())
    if wait:
        raise PasswordConfirmThrottled(wait)
    right = actor.check_password(password)
    with transaction.atomic():
        audit_record(
            actor=actor,
            action=AuditAction.SECURITY_PASSWORD_CONFIRMED if right else AuditAction.SECURITY_PASSWORD_CONFIRM_FAILED,
            data={"ip": _ip(request)},
        )
    if not right:
        login_failure_count(username=actor.get_username())
        return False
    _session_rotate(request)
    request.session[PASSWORD_CONFIRMED_SESSION_KEY] = timezone.now().timestamp()
    return True


def password_recently_confirmed(*, request: HttpRequest) -> bool:
    """True when this session typed the password again within TOTP_PASSWORD_CONFIRM_SECONDS."""
    confirmed_at = request.session.get(PASSWORD_CONFIRMED_SESSION_KEY)
    if not isinstance(confirmed_at, int | float):
        return False
    age = timezone.now().timestamp() - confirmed_at
    return 0 <= age <= settings.TOTP_PASSWORD_CONFIRM_SECONDS


def totp_device_confirmed(*, user: Any) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=True).first()


def _enrolment_expired(device: TOTPDevice, now: datetime) -> bool:
    created = device.created_at
    return created is None or now - created > timedelta(seconds=settings.TOTP_ENROLMENT_SECONDS)


def _session_pending_device(*, actor: Any, request: HttpRequest, now: datetime) -> TOTPDevice | None:
    """The unconfirmed device this session started, if it has not expired (locked)."""
    device_id = request.session.get(PENDING_DEVICE_SESSION_KEY)
    if not isinstance(device_id, int):
        return None
    device = TOTPDevice.objects.select_for_update().filter(pk=device_id, user=actor, confirmed=False).first()
    if device is None or _enrolment_expired(device, now):
        return None
    return device


def totp_device_enrol_start(*, actor: Any, request: HttpRequest) -> TOTPDevice:
    """Give this session of ``actor`` a fresh, unconfirmed authenticator secret (reused until confirmed or expired).

    The secret belongs to the session that asked for it: another session of
    the same user (a thief holding the password) never sees it; it gets a new
    one, which discards the first (audited).
    """
    now = timezone.now()
    with transaction.atomic():
        device = _session_pending_device(actor=actor, request=request, now=now)
        if device is not None:
            return device
        others = TOTPDevice.objects.select_for_update().filter(user=actor, confirmed=False)
        discarded = [other.pk for other in others]
        if discarded:
            others.delete()
            audit_record(
                actor=actor,
                action=AuditAction.SECURITY_OTP_ENROLMENT_DISCARDED,
                data={"devices": discarded, "why": "replaced", "ip": _ip(request)},
            )
        device = TOTPDevice.objects.create(user=actor, name=TOTP_DEVICE_NAME, confirmed=False)
        audit_record(actor=actor, action=AuditAction.SECURITY_OTP_ENROLMENT_STARTED, target=device)
    request.session[PENDING_DEVICE_SESSION_KEY] = device.pk
    return device


ENROLMENT_EXPIRY = Actor.system("totp_enrolment_expiry")


def totp_enrolments_expire(*, now: datetime | None = None) -> int:
    """Delete pending authenticator secrets older than TOTP_ENROLMENT_SECONDS (housekeeping sweeper)."""
    now = now or timezone.now()
    with transaction.atomic():
        stale = list(
            TOTPDevice.objects.select_for_update(skip_locked=True).filter(
                confirmed=False, created_at__lt=now - timedelta(seconds=settings.TOTP_ENROLMENT_SECONDS)
            )
        )
        for device in stale:
            audit_record(
                actor=ENROLMENT_EXPIRY,
                action=AuditAction.SECURITY_OTP_ENROLMENT_DISCARDED,
                data={"devices": [device.pk], "user": device.user_id, "why": "expired"},
            )
            device.delete()
    return len(stale)


def _throttled(*, device: TOTPDevice | StaticDevice, actor: Any, request: HttpRequest) -> int:
    """Seconds the device still refuses codes after earlier failures (audited), or 0.

    The caller returns from its transaction before raising, so that the
    record of the refused attempt is kept.
    """
    allowed, details = device.verify_is_allowed()
    if allowed:
        return 0
    locked_until = (details or {}).get("locked_until")
    wait = max(1, math.ceil((locked_until - timezone.now()).total_seconds())) if locked_until else 1
    audit_record(
        actor=actor, action=AuditAction.SECURITY_OTP_THROTTLED, data={"ip": _ip(request), "wait_seconds": wait}
    )
    return wait


def totp_device_enrol_confirm(*, actor: Any, request: HttpRequest, token: str) -> list[str] | None:
    """Confirm the pending device with its first code and verify the session.

    Returns the new recovery codes (to be shown once), or ``None`` for a wrong
    code (audited and counted by the throttle); raises ``TwoFactorThrottled``
    after too many wrong codes.
    """
    wait = 0
    with transaction.atomic():
        device = _session_pending_device(actor=actor, request=request, now=timezone.now())
        if device is None:
            raise TwoFactorError(_("No enrolment is pending. Start again."))
        wait = _throttled(device=device, actor=actor, request=request)
    if wait:
        raise TwoFactorThrottled(wait)
    with transaction.atomic():
        device = TOTPDevice.objects.select_for_update().get(pk=device.pk)
        if not device.verify_token(token.strip()):
            audit_record(
                actor=actor,
                action=AuditAction.SECURITY_OTP_FAILED,
                target=device,
                data={"ip": _ip(request), "step": "enrolment"},
            )
            # Returning (not raising) commits the failure record and the throttle counter.
            return None
        TOTPDevice.objects.filter(user=actor, confirmed=True).delete()
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        codes = _recovery_codes_replace(user=actor)
        audit_record(
            actor=actor,
            action=AuditAction.SECURITY_OTP_ENROLLED,
            target=device,
            data={"recovery_codes": len(codes)},
        )
    request.session.pop(PENDING_DEVICE_SESSION_KEY, None)
    otp_login(request, device)
    _session_rotate(request)
    return codes


def recovery_code_hash(*, user_id: int, code: str) -> str:
    """What is stored for a recovery code: a keyed hash bound to its user, never the code.

    Keyed (SECRET_KEY, which is not in the database): ten digits are too few
    to resist an offline search over a plain hash of a stolen database. 16
    hex characters fit django-otp's token column and keep 64 bits.
    """
    return salted_hmac("apps.security.recovery_code", f"{user_id}:{code}", algorithm="sha256").hexdigest()[:16]


def _recovery_codes_replace(*, user: Any) -> list[str]:
    StaticDevice.objects.filter(user=user).delete()
    device = StaticDevice.objects.create(user=user, name=RECOVERY_DEVICE_NAME, confirmed=True)
    codes = [f"{secrets.randbelow(10**10):010d}" for _ in range(RECOVERY_CODE_COUNT)]
    StaticToken.objects.bulk_create(
        StaticToken(device=device, token=recovery_code_hash(user_id=user.pk, code=code)) for code in codes
    )
    return codes


def otp_session_verify(*, actor: Any, request: HttpRequest, token: str) -> VerificationResult:
    """Check a code from the authenticator app or a recovery code; on success mark the session verified.

    A wrong code is audited and counts toward django-otp's throttle (the wait
    doubles with every failure); a throttled device refuses even a right code.
    """
    token = token.strip().replace(" ", "")
    with transaction.atomic():
        totp = TOTPDevice.objects.select_for_update().filter(user=actor, confirmed=True).first()
        recovery = StaticDevice.objects.select_for_update().filter(user=actor, confirmed=True).first()
        if totp is None:
            raise TwoFactorError(_("No authenticator is enrolled."))
        wait = _throttled(device=totp, actor=actor, request=request)
        # When throttled, leave the block normally so the refused attempt's record is committed.
        result = None if wait else _verify_with(totp=totp, recovery=recovery, actor=actor, request=request, token=token)
    if result is None:
        raise TwoFactorThrottled(wait)
    if result[0] is not None:
        otp_login(request, result[0])
        _session_rotate(request)
    return VerificationResult(verified=result[0] is not None, device_kind=result[1])


def _verify_with(
    *, totp: TOTPDevice, recovery: StaticDevice | None, actor: Any, request: HttpRequest, token: str
) -> tuple[TOTPDevice | StaticDevice | None, str]:
    """One attempt, inside the caller's transaction; returns the matching device and its kind."""
    device: TOTPDevice | StaticDevice | None = None
    kind = ""
    # Recovery codes are 10 digits, authenticator codes 6: try only the plausible one,
    # so that a wrong recovery code does not count twice against the throttle.
    if len(token) > totp.digits and recovery is not None:
        if recovery.verify_token(recovery_code_hash(user_id=actor.pk, code=token)):
            device, kind = recovery, "recovery"
            totp.throttle_reset()
        else:
            totp.throttle_increment()
    elif totp.verify_token(token):
        device, kind = totp, "totp"
    if device is None:
        audit_record(
            actor=actor,
            action=AuditAction.SECURITY_OTP_FAILED,
            target=totp,
            data={"ip": _ip(request), "step": "login"},
        )
        return None, ""
    if kind == "recovery" and recovery is not None:
        audit_record(
            actor=actor,
            action=AuditAction.SECURITY_OTP_RECOVERY_CODE_USED,
            target=recovery,
            data={"remaining": recovery.token_set.count()},
        )
    audit_record(
        actor=actor,
        action=AuditAction.SECURITY_OTP_VERIFIED,
        target=device,
        data={"ip": _ip(request), "device": kind},
    )
    return device, kind
