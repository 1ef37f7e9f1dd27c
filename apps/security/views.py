"""Back-office pages of the second factor: enrolment, verification, recovery codes.

They sit inside the admin look and are reachable by a logged-in staff member
who has not verified yet (StaffTwoFactorMiddleware lets them through).
"""

from __future__ import annotations

import base64
from typing import Any

import segno
from django import forms
from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_http_methods

from apps.security.policy import two_factor_required, two_factor_satisfied
from apps.security.services import (
    TwoFactorError,
    otp_session_verify,
    password_confirm,
    password_recently_confirmed,
    totp_device_confirmed,
    totp_device_enrol_confirm,
    totp_device_enrol_start,
)
from apps.staff.roles import Role
from apps.staff.selectors import staff_profile_for

RECOVERY_SESSION_KEY = "security_recovery_codes"


class PasswordForm(forms.Form):
    password = forms.CharField(
        label=_("Password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password", "autofocus": True}),
    )


class TokenForm(forms.Form):
    token = forms.CharField(
        label=_("Code"),
        max_length=16,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}),
    )


def _next_url(request: HttpRequest) -> str:
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return reverse("admin:index")


def _page(request: HttpRequest, template: str, title: Any, **context: Any) -> HttpResponse:
    return render(
        request,
        template,
        {**admin.site.each_context(request), "title": title, "next": _next_url(request), **context},
    )


def _secret_for_display(device: Any) -> str:
    # Authenticator apps take the key in base32, in groups of four for reading aloud.
    secret = base64.b32encode(device.bin_key).decode().rstrip("=")
    return " ".join(secret[index : index + 4] for index in range(0, len(secret), 4))


@login_required
@require_http_methods(["GET", "POST"])
def enrol(request: HttpRequest) -> HttpResponse:
    """Set up an authenticator app: scan the QR code (or type the secret), then confirm with a code.

    Replacing an enrolled authenticator needs a verified session: otherwise a
    stolen password alone could enrol the thief's phone.
    """
    if totp_device_confirmed(user=request.user) is not None and not two_factor_satisfied(request.user):
        return redirect(f"{reverse('security:verify')}?next={_next_url(request)}")
    if not password_recently_confirmed(request=request):
        return _confirm_password(request)
    device = totp_device_enrol_start(actor=request.user, request=request)
    form = TokenForm(request.POST or None)
    error: Any = None
    if request.method == "POST" and form.is_valid():
        try:
            codes = totp_device_enrol_confirm(actor=request.user, request=request, token=form.cleaned_data["token"])
        except TwoFactorError as exc:
            error = exc.message
        else:
            if codes is not None:
                request.session[RECOVERY_SESSION_KEY] = codes
                return redirect(f"{reverse('security:recovery-codes')}?next={_next_url(request)}")
            error = _("That code is not right. Check the clock of your phone and try the newest code.")
    qr = segno.make(device.config_url, error="m")
    return _page(
        request,
        "security/enrol.html",
        _("Set up two-factor authentication"),
        form=form,
        error=error,
        # segno draws only paths from the encoded bits: no text from the URL reaches the markup.
        qr_svg=mark_safe(qr.svg_inline(scale=4, title=None)),  # noqa: S308
        secret=_secret_for_display(device),
        already_enrolled=totp_device_confirmed(user=request.user) is not None,
    )


def _confirm_password(request: HttpRequest) -> HttpResponse:
    """Enrolment's first step: the password typed again in this session, recently.

    A session left open (or stolen) must not be enough to bind a new phone.
    """
    form = PasswordForm(request.POST if request.method == "POST" and "password" in request.POST else None)
    error: Any = None
    status = 200
    if form.is_bound and form.is_valid():
        try:
            right = password_confirm(actor=request.user, request=request, password=form.cleaned_data["password"])
        except TwoFactorError as exc:
            error, status = exc.message, exc.status_code
        else:
            if right:
                return redirect(f"{reverse('security:enrol')}?next={_next_url(request)}")
            error = _("That password is not right.")
    response = _page(request, "security/confirm_password.html", _("Confirm your password"), form=form, error=error)
    response.status_code = status
    return response


@login_required
@require_http_methods(["GET", "POST"])
def verify(request: HttpRequest) -> HttpResponse:
    """The second step of the login: a code from the authenticator app, or a recovery code."""
    if not two_factor_required(request.user):
        return redirect(_next_url(request))
    if totp_device_confirmed(user=request.user) is None:
        return redirect(f"{reverse('security:enrol')}?next={_next_url(request)}")
    form = TokenForm(request.POST or None)
    error: Any = None
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            result = otp_session_verify(actor=request.user, request=request, token=form.cleaned_data["token"])
        except TwoFactorError as exc:
            error, status = exc.message, exc.status_code
        else:
            if result.verified:
                return redirect(_next_url(request))
            error = _("That code is not right. Try the newest code, or a recovery code.")
    response = _page(request, "security/verify.html", _("Two-factor verification"), form=form, error=error)
    response.status_code = status
    return response


@login_required
@require_http_methods(["GET"])
def recovery_codes(request: HttpRequest) -> HttpResponse:
    """Shows the recovery codes once, straight after enrolment; reloading shows nothing."""
    codes = request.session.pop(RECOVERY_SESSION_KEY, None)
    return _page(request, "security/recovery_codes.html", _("Recovery codes"), codes=codes)


# Where a login without ?next= lands (LOGIN_REDIRECT_URL): each role's own page.
_HOME_BY_ROLE = {
    Role.AGENT: "console:agent",
    Role.EXPERT: "console:agent",
    Role.SUPERVISOR: "console:supervisor",
    Role.COMPLIANCE_OFFICER: "compliance-workspace:workspace",
    Role.ADMINISTRATOR: "admin:index",
}


@login_required
@require_http_methods(["GET"])
def home(request: HttpRequest) -> HttpResponse:
    """The logged-in staff member's own page (the back office index for anyone else)."""
    profile = staff_profile_for(request.user)
    return redirect(_HOME_BY_ROLE.get(Role(profile.role), "admin:index") if profile is not None else "admin:index")
