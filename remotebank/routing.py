"""WebSocket routes of every app, collected in one list for asgi.py.

Each app that speaks WebSocket exposes ``websocket_urlpatterns`` in its own
``routing.py``; add it here.
"""

from __future__ import annotations

from django.urls import URLPattern

websocket_urlpatterns: list[URLPattern] = []
