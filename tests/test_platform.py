"""The platform's plumbing: schema, health, channel layer, Celery configuration."""

from __future__ import annotations

import asyncio
import os
import re

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.test import Client

pytestmark = pytest.mark.django_db


def test_the_openapi_schema_is_served_to_staff(client: Client, agent: object) -> None:
    client.force_login(agent)  # type: ignore[arg-type]
    response = client.get("/api/schema/", headers={"accept": "application/vnd.oai.openapi+json"})
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert "/api/customers/" in schema["paths"]


def test_health_reports_the_database_in_use(client: Client) -> None:
    response = client.get("/health/")
    expected = "postgresql" if os.environ.get("DATABASE_URL", "").startswith("postgres") else "sqlite"
    assert response.json() == {"status": "ok", "database": expected}


def test_the_channel_layer_delivers_a_message() -> None:
    layer = get_channel_layer()
    assert layer is not None

    # On one event loop, as a consumer does: the pub/sub layer subscribes per loop, and a
    # message published while nobody listens is gone (the core layer would have kept it).
    async def round_trip() -> dict[str, str]:
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "probe", "text": "你好"})
        return await asyncio.wait_for(layer.receive(channel), timeout=5)

    assert async_to_sync(round_trip)() == {"type": "probe", "text": "你好"}


def test_the_backends_follow_the_environment() -> None:
    backend = settings.CHANNEL_LAYERS["default"]["BACKEND"]
    if os.environ.get("REDIS_URL"):
        expected = {
            "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "core": "channels_redis.core.RedisChannelLayer",
        }[os.environ.get("REMOTEBANK_CHANNEL_LAYER") or "pubsub"]
        assert backend == expected
        assert os.environ["REDIS_URL"] == settings.CELERY_BROKER_URL
    else:
        assert backend == "channels.layers.InMemoryChannelLayer"
    if os.environ.get("DATABASE_URL", "").startswith("postgres"):
        assert settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"


def test_make_runs_banner_names_every_workspace_and_the_second_factor_enrolment_at_urls_that_exist() -> None:
    """Issue #19: the banner of ``make run`` said nothing of the second factor nor of the compliance workspace."""
    from pathlib import Path

    from django.urls import Resolver404, resolve

    banner = (Path(__file__).resolve().parent.parent / "scripts" / "run.sh").read_text()
    paths = re.findall(r"http://\$host:\$port(/[^\s)\"]*)", banner)
    for required in ("/console/live/compliance/", "/console/security/enrol/", "/console/live/agent/"):
        assert required in paths, required
    unknown = []
    for path in paths:
        try:
            resolve(path)
        except Resolver404:
            unknown.append(path)
    assert unknown == []
