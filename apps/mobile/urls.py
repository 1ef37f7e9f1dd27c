from __future__ import annotations

from django.urls import path

from apps.mobile.api import VisitConsentApi, VisitSummaryApi, VisitWaitApi
from apps.mobile.views import visit_page

app_name = "mobile"

urlpatterns = [
    path("", visit_page, name="visit"),
    path("api/mobile/consent/", VisitConsentApi.as_view(), name="visit-consent"),
    path("api/mobile/summary/", VisitSummaryApi.as_view(), name="visit-summary"),
    path("api/mobile/wait/", VisitWaitApi.as_view(), name="visit-wait"),
]
