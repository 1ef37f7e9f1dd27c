from __future__ import annotations

from django.urls import path

from apps.console import views

app_name = "console"

urlpatterns = [
    path("agent/", views.agent_workspace, name="agent"),
    path("supervisor/", views.supervisor_live, name="supervisor"),
]
