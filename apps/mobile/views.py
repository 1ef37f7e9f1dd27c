from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from apps.businesses.registry import BUSINESSES


@ensure_csrf_cookie
def visit_page(request: HttpRequest) -> HttpResponse:
    """The one page of the customer's journey; the steps are driven by the visit API."""
    return render(
        request,
        "mobile/visit.html",
        {"businesses": BUSINESSES, "heartbeat_milliseconds": settings.VISIT_HEARTBEAT_SECONDS * 1000},
    )
