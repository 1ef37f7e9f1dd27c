"""Channel layer: in-memory by default, Redis when REDIS_URL is set."""

from __future__ import annotations

from remotebank.settings.environment import env_int, env_optional

REDIS_URL = env_optional("REDIS_URL")

if REDIS_URL:
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
