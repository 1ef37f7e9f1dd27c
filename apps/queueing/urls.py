from __future__ import annotations

from django.urls import path

from apps.queueing import api

app_name = "queueing"

urlpatterns = [
    path("agent/", api.AgentMeApi.as_view(), name="agent-me"),
    path("agent/state/", api.AgentStateApi.as_view(), name="agent-state"),
    path("agent/service-end/", api.AgentServiceEndApi.as_view(), name="agent-service-end"),
    path("offers/<int:entry_id>/accept/", api.OfferAcceptApi.as_view(), name="offer-accept"),
    path("offers/<int:entry_id>/decline/", api.OfferDeclineApi.as_view(), name="offer-decline"),
    path("figures/", api.FiguresApi.as_view(), name="figures"),
    path("entries/<int:entry_id>/move/", api.EntryMoveApi.as_view(), name="entry-move"),
    path("staff/<int:staff_id>/state/", api.AgentStateBySupervisorApi.as_view(), name="staff-state"),
    path("visit/", api.VisitQueueGetApi.as_view(), name="visit-queue"),
    path("visit/join/", api.VisitQueueJoinApi.as_view(), name="visit-queue-join"),
    path("visit/leave/", api.VisitQueueLeaveApi.as_view(), name="visit-queue-leave"),
]
