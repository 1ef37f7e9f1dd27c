"""The SMS sandbox's development page: what the stand-in gateway "sent" (never in production)."""

from __future__ import annotations

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from apps.verification.integrations.sms import SandboxSmsGateway, get_sms_gateway


def sms_sandbox_page(request: HttpRequest) -> HttpResponse:
    """The sandbox's outbox, newest first, so a tester can read the code a real phone would receive."""
    gateway = get_sms_gateway() if settings.SMS_SANDBOX_PAGE else None
    if not isinstance(gateway, SandboxSmsGateway):
        raise Http404
    response = render(request, "verification/sms_sandbox.html", {"messages": gateway.outbox()})
    response["Cache-Control"] = "no-store"
    return response
