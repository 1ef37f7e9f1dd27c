from __future__ import annotations

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext_lazy as _
from django.views.defaults import page_not_found


def health(request: HttpRequest) -> JsonResponse:
    """Liveness and database reachability, for load balancers and `make run`."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok", "database": connection.vendor})


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """404 for a URL that matches no route: the API's error shape under /api/, the usual page elsewhere.

    A malformed id in an API path (``/api/customers/abc/``) never reaches a
    view, so DRF's exception handler cannot shape it; API clients still get
    ``{"code", "message"}``.
    """
    if request.path.startswith("/api/"):
        return JsonResponse({"code": "not_found", "message": str(_("There is nothing at this address."))}, status=404)
    return page_not_found(request, exception)
