from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from apps.common.views import health

urlpatterns = [
    path("console/live/compliance/", include("apps.compliance.workspace_urls")),
    path("console/live/", include("apps.console.urls")),
    path("console/security/", include("apps.security.urls")),
    path("console/", admin.site.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/customers/", include("apps.customers.urls")),
    path("api/audit/", include("apps.audit.urls")),
    path("api/visits/", include("apps.verification.urls")),
    path("api/visits/", include("apps.visits.urls")),
    path("api/queueing/", include("apps.queueing.urls")),
    path("api/calls/", include("apps.calls.urls")),
    path("api/recordings/", include("apps.recordings.urls")),
    path("api/gates/", include("apps.gates.urls")),
    path("api/operations/", include("apps.operations.urls")),
    path("api/compliance/", include("apps.compliance.urls")),
    path("health/", health, name="health"),
    path("", include("apps.mobile.urls")),
]

# Unmatched /api/ URLs answer in the API's error shape (apps/common/views.py).
handler404 = "apps.common.views.not_found"
