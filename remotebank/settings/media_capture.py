"""Server-side capture of call frames (docs/calls.md, "Frames the server takes"): read from the environment only."""

from __future__ import annotations

from remotebank.settings.environment import env_int, env_str

__all__ = ["MEDIA_CAPTURE_NETNS", "MEDIA_CAPTURE_TIMEOUT_SECONDS"]

# How long one capture may take: subscribing (ICE, DTLS), the publisher's next
# keyframe and the frames asked for. Measured here: 0.6-1.5 s for one frame.
MEDIA_CAPTURE_TIMEOUT_SECONDS = env_int("REMOTEBANK_MEDIA_CAPTURE_TIMEOUT_SECONDS", 10)
# Development and CI only: the network namespace Janus runs in (docs/janus.md);
# the capture thread joins it (needs root). Empty on a real server.
MEDIA_CAPTURE_NETNS = env_str("REMOTEBANK_MEDIA_CAPTURE_NETNS", "")
