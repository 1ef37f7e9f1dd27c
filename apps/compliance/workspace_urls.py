"""The compliance workspace's pages, under /console/live/compliance/ (the API is in urls.py)."""

from __future__ import annotations

from django.urls import path

from apps.compliance import views

app_name = "compliance-workspace"

urlpatterns = [
    path("", views.workspace, name="workspace"),
    path("chain/verify/", views.chain_verify, name="chain-verify"),
]
