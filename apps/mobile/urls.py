from __future__ import annotations

from django.urls import path

from apps.mobile.views import visit_page

app_name = "mobile"

urlpatterns = [path("", visit_page, name="visit")]
