"""WebSocket routes of every app, collected in one list for asgi.py.

Each app that speaks WebSocket exposes ``websocket_urlpatterns`` in its own
``routing.py``; add it here.
"""

from __future__ import annotations

from apps.queueing.routing import websocket_urlpatterns as queueing_routes

websocket_urlpatterns = [*queueing_routes]
