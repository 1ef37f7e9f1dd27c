from __future__ import annotations

from django.urls import path

from apps.compliance import api

app_name = "compliance"

urlpatterns = [
    path("exports/", api.AuditExportListCreateApi.as_view(), name="export-list"),
    path("exports/<int:export_id>/", api.AuditExportDetailApi.as_view(), name="export-detail"),
    path("exports/<int:export_id>/download/", api.AuditExportDownloadApi.as_view(), name="export-download"),
    path("services/", api.ServiceSearchApi.as_view(), name="service-search"),
]
