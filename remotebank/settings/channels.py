"""Channel layer (in-memory by default, Redis when REDIS_URL is set) and the live sockets' timing."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from remotebank.settings.environment import env_int, env_optional

REDIS_URL = env_optional("REDIS_URL")

# Which channels_redis layer: "pubsub" (RedisPubSubChannelLayer: a group message
# is ONE Redis PUBLISH, and each Daphne fans it out to its own sockets) or
# "core" (RedisChannelLayer: one list push per member channel, each popped by
# its Daphne in a round trip of its own). Chosen by bench/queue_websocket_bench.py
# (docs/operations.md, issue 18; 2026-12-03, same machine and load, one Daphne,
# before the per-process fan-out of apps/queueing/fanout.py): with 2,000
# waiting pages pubsub delivered position updates at p99 0.74 s and 186 µs of
# Daphne CPU per update, core at p99 4.5 s and 347 µs.
CHANNEL_LAYER_KIND = env_optional("REMOTEBANK_CHANNEL_LAYER") or "pubsub"
if CHANNEL_LAYER_KIND not in ("core", "pubsub"):
    raise ImproperlyConfigured("REMOTEBANK_CHANNEL_LAYER must be 'core' or 'pubsub'.")

if REDIS_URL and CHANNEL_LAYER_KIND == "pubsub":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {
                "hosts": [{"address": REDIS_URL, "socket_timeout": env_int("REMOTEBANK_REDIS_SOCKET_TIMEOUT", 10)}],
                "prefix": "remotebank",
            },
        }
    }
elif REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [
                    {
                        "address": REDIS_URL,
                        # Longer than channels-redis' 5 s blocking receive: with
                        # redis-py's default of 5 s an idle socket times out and
                        # Daphne closes the customer's page (bench/README.md).
                        "socket_timeout": env_int("REMOTEBANK_REDIS_SOCKET_TIMEOUT", 10),
                        # One Daphne holds thousands of waiting customers; the
                        # default pool of 100 fails instead of waiting.
                        "max_connections": env_int("REMOTEBANK_REDIS_MAX_CONNECTIONS", 4000),
                    }
                ],
                "prefix": "remotebank",
            },
        }
    }
else:
    # Only valid for a single process: the embedded default runs one Daphne.
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# The waiting customer's page sends a heartbeat over its WebSocket every
# VISIT_HEARTBEAT_SECONDS; an entry not heard from for
# VISIT_HEARTBEAT_SILENCE_SECONDS is marked disconnected by the dispatcher (the
# reconnect grace then applies). That catches a page whose Daphne died without
# running ``disconnect``. The stored time is written at most once per interval,
# so it can lag by up to two intervals: the silence limit must leave room for
# that and for one lost heartbeat (docs/queueing.md).
VISIT_HEARTBEAT_SECONDS = env_int("REMOTEBANK_VISIT_HEARTBEAT_SECONDS", 15)
VISIT_HEARTBEAT_SILENCE_SECONDS = env_int("REMOTEBANK_VISIT_HEARTBEAT_SILENCE_SECONDS", 60)
if VISIT_HEARTBEAT_SECONDS < 1 or VISIT_HEARTBEAT_SILENCE_SECONDS < 3 * VISIT_HEARTBEAT_SECONDS:
    raise ImproperlyConfigured(
        "REMOTEBANK_VISIT_HEARTBEAT_SILENCE_SECONDS must be at least three times "
        "REMOTEBANK_VISIT_HEARTBEAT_SECONDS (and the interval at least 1 s)."
    )

# Python's cyclic garbage collector in Daphne and the dispatcher (apps/common/collector.py,
# ``gc_tune``): three thresholds, or "off" for Python's own (700, 10, 10).
# With thousands of sockets most objects a queue update creates are still in
# flight when a young collection runs, so they are promoted and walked again by
# the older generations: 19 % of Daphne's event-loop CPU in a py-spy profile of
# bench/queue_websocket_bench.py at 2,000 pages (2026-12-04). Freezing what the
# start-up loaded and these thresholds took it from 176–193 to 115–125 µs of
# Daphne CPU per update, at the same RSS (docs/operations.md, "Issue 18 figures").
_gc_thresholds = env_optional("REMOTEBANK_GC_THRESHOLDS") or "50000,20,100"
GC_THRESHOLDS: tuple[int, int, int] | None
if _gc_thresholds == "off":
    GC_THRESHOLDS = None
else:
    try:
        _first, _second, _third = (int(part) for part in _gc_thresholds.split(","))
    except ValueError:
        raise ImproperlyConfigured(
            "REMOTEBANK_GC_THRESHOLDS must be three whole numbers, e.g. '50000,20,100', or 'off'."
        ) from None
    if min(_first, _second, _third) < 1:
        raise ImproperlyConfigured("REMOTEBANK_GC_THRESHOLDS must be positive.")
    GC_THRESHOLDS = (_first, _second, _third)
