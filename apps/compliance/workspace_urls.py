"""The compliance workspace's pages, under /console/live/compliance/ (the API is in urls.py)."""

from __future__ import annotations

from django.urls import path

from apps.compliance import views

app_name = "compliance-workspace"

urlpatterns = [
    path("", views.workspace, name="workspace"),
    path("chain/verify/", views.chain_verify, name="chain-verify"),
    path("exports/", views.export_request, name="export-request"),
    path("services/", views.services, name="services"),
    path("services/<uuid:public_id>/", views.service_evidence, name="service-evidence"),
    path("services/<uuid:public_id>/face/<int:attempt_id>/<slug:kind>/image/", views.face_image, name="face-image"),
    path("snapshots/<uuid:public_id>/image/", views.snapshot_image, name="snapshot-image"),
    path("report/", views.daily_report, name="daily-report"),
    path("report/csv/", views.daily_report_csv, name="daily-report-csv"),
    path("report/audit-checkpoint/", views.audit_checkpoint_download, name="audit-checkpoint"),
]
