"""The dispatcher's batched broadcasts on a real Redis channel layer (issue 18: two Redis commands per batch).

``_redis_group_send_many`` replaces one ``group_send`` per event with two
Redis round trips per batch, using channels_redis's internals: these tests
hold it to what ``group_send`` itself delivers, so an upgrade of channels_redis
that changes those internals fails here rather than in a customer's page.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from channels_redis.core import RedisChannelLayer
from django.conf import settings

from apps.queueing.events import _redis_group_send_many

END = {"type": "test.end"}


def _layer(**options: Any) -> RedisChannelLayer:
    if not settings.REDIS_URL:
        pytest.skip("needs Redis (REDIS_URL); with CI=true the run stops before this")
    return RedisChannelLayer(hosts=[settings.REDIS_URL], prefix=f"remotebank-test-{uuid.uuid4().hex[:12]}", **options)


@pytest.fixture
async def layer() -> AsyncIterator[RedisChannelLayer]:
    made = _layer()
    yield made
    await made.flush()


@pytest.fixture
async def small_layer() -> AsyncIterator[RedisChannelLayer]:
    made = _layer(capacity=3)
    yield made
    await made.flush()


async def _received_until_end(layer: RedisChannelLayer, channel: str) -> list[dict[str, Any]]:
    """Everything the channel receives, up to the END marker sent to it after the batch."""
    await layer.send(channel, END)
    received = []
    while True:
        message = await asyncio.wait_for(layer.receive(channel), timeout=5)
        if message == END:
            return received
        received.append(message)


async def _deliveries(
    layer: Any, batch: list[tuple[str, dict[str, Any]]], *, send: Callable[[list[Any]], Awaitable[None]] | None
) -> dict[str, list[dict[str, Any]]]:
    """Three channels in overlapping groups get ``batch`` through ``send`` (None: ``group_send`` per event)."""
    channels = {name: await layer.new_channel() for name in ("a", "b", "c")}
    memberships = {"queue.1": ("a", "b"), "visit.7": ("b",), "agent.3": ("c",), "queue.2": ("a", "c")}
    for group, names in memberships.items():
        for name in names:
            await layer.group_add(group, channels[name])
    if send is not None:
        await send(batch)
    else:
        for group, event in batch:
            await layer.group_send(group, event)
    result = {name: await _received_until_end(layer, channel) for name, channel in channels.items()}
    for group, names in memberships.items():
        for name in names:
            await layer.group_discard(group, channels[name])
    return result


BATCH = [
    ("queue.1", {"type": "queue.changed", "text": '{"v":1}'}),
    ("visit.7", {"type": "visit.update", "state": "offered"}),
    ("agent.3", {"type": "agent.update", "offer": 41}),
    ("queue.1", {"type": "queue.changed", "text": '{"v":2}'}),
    ("nobody.here", {"type": "visit.update", "state": "lost"}),
    ("queue.2", {"type": "queue.changed", "text": '{"v":9}'}),
]


@pytest.mark.asyncio
async def test_a_pipelined_batch_delivers_what_group_send_delivers(layer: RedisChannelLayer) -> None:
    pipelined = await _deliveries(
        layer, BATCH, send=lambda batch: _redis_group_send_many(layer, batch, layer.connection(0))
    )
    one_by_one = await _deliveries(layer, BATCH, send=None)
    assert pipelined == one_by_one
    # And what that is, spelled out: each channel its groups' events, in batch order.
    assert [m.get("text") or m.get("state") for m in pipelined["b"]] == ['{"v":1}', "offered", '{"v":2}']
    assert [m.get("text") or m.get("offer") for m in pipelined["c"]] == [41, '{"v":9}']
    assert [m["text"] for m in pipelined["a"]] == ['{"v":1}', '{"v":2}', '{"v":9}']


@pytest.mark.asyncio
async def test_a_channel_at_capacity_misses_the_event_and_the_others_still_get_it(
    small_layer: RedisChannelLayer, caplog: pytest.LogCaptureFixture
) -> None:
    layer = small_layer
    full, free = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("queue.5", full)
    await layer.group_add("queue.5", free)
    # ``full`` and ``free`` share one Redis key (this process's channels): fill
    # it to the capacity of 3 with events to a third, unrelated group member.
    other = await layer.new_channel()
    for number in range(3):
        await layer.send(other, {"type": "filler", "n": number})
    with caplog.at_level(logging.INFO, logger="apps.queueing.events"):
        await _redis_group_send_many(layer, [("queue.5", {"type": "queue.changed", "text": "x"})], layer.connection(0))
    assert "a channel over capacity in group queue.5 missed an event" in caplog.text
    fillers = [await asyncio.wait_for(layer.receive(other), timeout=5) for _ in range(3)]
    assert [m["n"] for m in fillers] == [0, 1, 2]
    # Room again: the next batch reaches both members.
    await _redis_group_send_many(layer, [("queue.5", {"type": "queue.changed", "text": "y"})], layer.connection(0))
    assert [m["text"] for m in await _received_until_end(layer, full)] == ["y"]
    assert [m["text"] for m in await _received_until_end(layer, free)] == ["y"]


@pytest.mark.asyncio
async def test_an_empty_batch_and_groups_without_members_send_nothing(layer: RedisChannelLayer) -> None:
    lonely = await layer.new_channel()
    await _redis_group_send_many(layer, [], layer.connection(0))
    await _redis_group_send_many(layer, [("nobody.1", {"type": "x"}), ("nobody.2", {"type": "y"})], layer.connection(0))
    assert await _received_until_end(layer, lonely) == []


@pytest.mark.asyncio
async def test_a_pipelined_batch_on_the_pubsub_layer_delivers_what_group_send_delivers() -> None:
    """The same batch through ``RedisPubSubChannelLayer``: one pipeline of PUBLISH, the batch's order kept."""
    from channels_redis.pubsub import RedisPubSubChannelLayer
    from redis import asyncio as aioredis

    from apps.queueing.events import _pubsub_publish_many

    if not settings.REDIS_URL:
        pytest.skip("needs Redis (REDIS_URL); with CI=true the run stops before this")
    layer = RedisPubSubChannelLayer(hosts=[settings.REDIS_URL], prefix=f"remotebank-test-{uuid.uuid4().hex[:12]}")
    client = aioredis.Redis.from_url(settings.REDIS_URL)
    try:
        pipelined = await _deliveries(layer, BATCH, send=lambda batch: _pubsub_publish_many(layer, batch, client))
        one_by_one = await _deliveries(layer, BATCH, send=None)
        assert pipelined == one_by_one
        assert [m.get("text") or m.get("state") for m in pipelined["b"]] == ['{"v":1}', "offered", '{"v":2}']
        assert [m.get("text") or m.get("offer") for m in pipelined["c"]] == [41, '{"v":9}']
        assert [m["text"] for m in pipelined["a"]] == ['{"v":1}', '{"v":2}', '{"v":9}']
        lonely = await layer.new_channel()
        await _pubsub_publish_many(layer, [], client)
        assert await _received_until_end(layer, lonely) == []  # an empty batch sends nothing
    finally:
        await client.aclose()
        await layer.flush()


def _configured_redis_layer(settings: Any, layer_class: type[Any] = RedisChannelLayer) -> tuple[str, Any]:
    """The application's channel layer set to ``layer_class`` on Redis with a key prefix of this test's own."""
    from channels.layers import get_channel_layer

    if not settings.REDIS_URL:
        pytest.skip("needs Redis (REDIS_URL); with CI=true the run stops before this")
    prefix = f"remotebank-test-{uuid.uuid4().hex[:12]}"
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": f"{layer_class.__module__}.{layer_class.__qualname__}",
            "CONFIG": {"hosts": [{"address": settings.REDIS_URL}], "prefix": prefix},
        }
    }
    layer = get_channel_layer()
    assert isinstance(layer, layer_class)
    return prefix, layer


def test_broadcasts_from_sync_code_go_through_the_process_sender_loop(settings: Any) -> None:
    """The dispatcher's path: sync code, Redis layer; every batch on one loop and one client."""
    import redis
    from asgiref.sync import async_to_sync

    from apps.queueing import events

    prefix, layer = _configured_redis_layer(settings)
    async_to_sync(layer.group_add)("visit.9", "test.visit.nine")
    events.broadcast_many_now([("visit.9", {"type": "visit.update", "n": 1})])
    loop = events._sender._loop
    events.broadcast_now("visit.9", {"type": "visit.update", "n": 2})
    assert events._sender._loop is loop is not None
    assert loop.is_running()

    # A forked child (Celery's prefork pool) has no sender thread: it starts its own.
    child = multiprocessing.get_context("fork").Process(
        target=events.broadcast_now, args=("visit.9", {"type": "visit.update", "n": 3})
    )
    child.start()
    child.join(30)
    assert child.exitcode == 0

    stored = redis.Redis.from_url(settings.REDIS_URL).zrange(f"{prefix}test.visit.nine", 0, -1)
    received = [layer.deserialize(raw) for raw in stored]
    assert [(m["type"], m["n"]) for m in received] == [("visit.update", 1), ("visit.update", 2), ("visit.update", 3)]
    redis.Redis.from_url(settings.REDIS_URL).delete(f"{prefix}test.visit.nine", f"{prefix}:group:visit.9")


@pytest.mark.asyncio
async def test_sync_code_serving_an_event_loop_sends_on_that_loop(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Daphne's path: a service run by ``sync_to_async`` sends on the server's loop, not through the sender thread."""
    import redis
    from asgiref.sync import sync_to_async

    from apps.queueing import events

    prefix, layer = _configured_redis_layer(settings)
    await layer.group_add("visit.8", "test.visit.eight")
    sender_loop = events._sender._loop
    sent: list[Any] = []
    monkeypatch.setattr(events._sender, "send", lambda *args: sent.append(args))
    await sync_to_async(events.broadcast_now)("visit.8", {"type": "visit.update", "n": 8})
    assert sent == [] and events._sender._loop is sender_loop
    stored = redis.Redis.from_url(settings.REDIS_URL).zrange(f"{prefix}test.visit.eight", 0, -1)
    assert [layer.deserialize(raw)["n"] for raw in stored] == [8]
    await layer.flush()


def test_with_the_pubsub_layer_sync_code_publishes_on_a_blocking_client_and_on_a_serving_loop(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both paths of ``broadcast_many_now`` when the application's layer is ``RedisPubSubChannelLayer``.

    A member of the group receives through the layer itself, so both paths
    are held to the layer's own channel names and serialisation.
    """
    import asyncio

    from asgiref.sync import async_to_sync, sync_to_async
    from channels_redis.pubsub import RedisPubSubChannelLayer

    from apps.queueing import events

    _, layer = _configured_redis_layer(settings, RedisPubSubChannelLayer)
    assert events._pipelined_layer() is layer
    monkeypatch.setattr(events._sender, "_blocking_clients", {})

    async def exchange() -> list[int]:
        channel = await layer.new_channel()
        await layer.group_add("visit.9", channel)
        # A thread that serves no event loop (the dispatcher's): one pipeline on the blocking client.
        await asyncio.to_thread(
            events.broadcast_many_now,
            [("visit.9", {"type": "visit.update", "n": 1}), ("visit.9", {"type": "visit.update", "n": 2})],
        )
        # Daphne's sync code: sends on the serving loop.
        await sync_to_async(events.broadcast_now)("visit.9", {"type": "visit.update", "n": 3})
        received = [(await asyncio.wait_for(layer.receive(channel), 5))["n"] for _ in range(3)]
        await layer.flush()
        return received

    assert async_to_sync(exchange)() == [1, 2, 3]
    assert events._sender._blocking_clients, "the sync path did not use the blocking client"
