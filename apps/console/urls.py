from __future__ import annotations

from django.urls import path

from apps.console import views

app_name = "console"

urlpatterns = [
    path("agent/", views.agent_workspace, name="agent"),
    path("agent/invitees/", views.agent_invitees, name="agent-invitees"),
    path("supervisor/", views.supervisor_live, name="supervisor"),
    path("blocks/", views.visit_blocks, name="blocks"),
    path("blocks/<int:block_id>/lift/", views.visit_block_lift_form, name="block-lift"),
    path("supervisor/calls/<uuid:public_id>/", views.supervisor_call, name="supervisor-call"),
    path("recordings/", views.recordings_list, name="recordings"),
    path("recordings/<int:recording_id>/", views.recording_player, name="recording-player"),
]
