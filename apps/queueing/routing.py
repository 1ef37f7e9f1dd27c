from __future__ import annotations

from django.urls import path

from apps.queueing.consumers import AgentConsumer, VisitConsumer

websocket_urlpatterns = [
    path("ws/visit/", VisitConsumer.as_asgi()),
    path("ws/agent/", AgentConsumer.as_asgi()),
]
