from __future__ import annotations

from django.urls import path

from apps.visits import api

app_name = "visits"

urlpatterns = [
    path("blocks/", api.VisitBlockListApi.as_view(), name="blocks"),
    path("blocks/<int:pk>/lift/", api.VisitBlockLiftApi.as_view(), name="block-lift"),
]
