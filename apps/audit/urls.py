from __future__ import annotations

from django.urls import path

from apps.audit.api import AuditRecordListApi

app_name = "audit"

urlpatterns = [path("records/", AuditRecordListApi.as_view(), name="record-list")]
