"""Channel layer: in-memory by default, Redis when REDIS_URL is set."""

from __future__ import annotations

from remotebank.settings.environment import env_optional

REDIS_URL = env_optional("REDIS_URL")

if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": "remotebank"},
        }
    }
else:
    # Only valid for a single process: the embedded default runs one Daphne.
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
