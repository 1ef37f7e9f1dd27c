"""ASGI entry point: HTTP through Django, WebSockets through Channels."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "remotebank.settings.local")

# Django must be set up before anything imports models (the routing below does).
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from apps.common.collector import gc_tune  # noqa: E402
from apps.common.uploads import request_body_limit  # noqa: E402
from apps.security.websocket import SameOriginValidator  # noqa: E402
from apps.visits.authentication import VisitSessionMiddleware  # noqa: E402
from remotebank.routing import websocket_urlpatterns  # noqa: E402
from remotebank.warm_up import warm_up  # noqa: E402

# Daphne talks to Janus (hang-ups close rooms; the embedded default's eager
# tasks open them): load the client before the first request, not inside its
# 5 s timeout.
warm_up(["janus"])
# Last, so that what the start-up loaded is frozen with the rest.
gc_tune(settings.GC_THRESHOLDS)

application = ProtocolTypeRouter(
    {
        # Bodies over REQUEST_MAX_BODY_BYTES get 413 before Django reads them.
        "http": request_body_limit(django_asgi_app),
        # Origin check (scheme, host and port) stops another site's page from
        # opening a socket with the user's cookies (cross-site WebSocket
        # hijacking). A customer's socket finds its visit through the session
        # (scope["visit_id"]).
        "websocket": SameOriginValidator(AuthMiddlewareStack(VisitSessionMiddleware(URLRouter(websocket_urlpatterns)))),
    }
)
