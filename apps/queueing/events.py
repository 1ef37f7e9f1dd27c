"""Channel-layer group names and event types of queueing, in one place.

Fan-out (R2.4 at scale, issue 18): a change of who waits sends ONE message to
the queue's group, encoded once (``text``): the queue's change version and the
places that left and joined. Consumers forward it untouched and each
customer's page computes its own place (``static/queueing/position.js``),
applying versions in order and asking for a snapshot on a gap. The
dispatcher's periodic ``queue.resync`` is the same message with no changes and
the latest version, so a page that missed one notices. No database work and no
per-customer encoding per change.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from typing import Any, Final, TypeAlias

import redis
from asgiref.sync import SyncToAsync, async_to_sync
from channels.layers import get_channel_layer
from channels_redis.core import RedisChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer
from channels_redis.utils import create_pool, decode_hosts
from django.db import transaction
from redis import asyncio as aioredis
from redis.commands.core import AsyncScript

logger = logging.getLogger(__name__)


def queue_group(queue_id: int) -> str:
    return f"queue.{queue_id}"


def visit_group(visit_id: int) -> str:
    return f"visit.{visit_id}"


def agent_group(presence_id: int) -> str:
    return f"agent.{presence_id}"


FIGURES_GROUP = "queues.figures"

# Event "type" values; Channels maps "queue.changed" to a consumer's queue_changed().
QUEUE_CHANGED = "queue.changed"
QUEUE_RESYNC = "queue.resync"
VISIT_UPDATE = "visit.update"
AGENT_UPDATE = "agent.update"
FIGURES_UPDATE = "figures.update"


def queue_message(message: dict[str, Any], *, event_type: str = QUEUE_CHANGED) -> dict[str, Any]:
    """A queue change (or resync) as a channel-layer event: the page's message, JSON-encoded once.

    ``queue`` tells each Daphne's fan-out (``fanout.py``) whose pages to write it to.
    """
    return {"type": event_type, "queue": message["queue"], "text": json.dumps(message, separators=(",", ":"))}


def broadcast_now(group: str, event: dict[str, Any]) -> None:
    broadcast_many_now([(group, event)])


async def _send_all(messages: list[tuple[str, dict[str, Any]]]) -> None:
    """The layer's own ``group_send`` per event, concurrently on one event loop (any layer)."""
    layer = get_channel_layer()
    if layer is not None:
        await asyncio.gather(*(layer.group_send(group, event) for group, event in messages))


# A channels_redis layer on one Redis host: what this module sends a batch for in one or two commands.
RedisLayer: TypeAlias = RedisChannelLayer | RedisPubSubChannelLayer


def _pipelined_layer() -> RedisLayer | None:
    """The channel layer when it is Redis on one host: what ``_redis_send_many`` can send for."""
    layer = get_channel_layer()
    if isinstance(layer, RedisChannelLayer) and layer.ring_size == 1:
        return layer
    if isinstance(layer, RedisPubSubChannelLayer) and len(layer._kwargs.get("hosts") or [None]) == 1:
        return layer
    return None


def _redis_host(layer: RedisLayer) -> dict[str, Any]:
    if isinstance(layer, RedisChannelLayer):
        return layer.hosts[0]
    return decode_hosts(layer._kwargs.get("hosts"))[0]


async def _redis_send_many(
    layer: RedisLayer, messages: list[tuple[str, dict[str, Any]]], client: aioredis.Redis
) -> None:
    if isinstance(layer, RedisChannelLayer):
        await _redis_group_send_many(layer, messages, client)
    else:
        await _pubsub_publish_many(layer, messages, client)


class _Sender:
    """One event loop per process, on a thread of its own, that sends the broadcasts of sync code to Redis.

    Used where no event loop runs (the dispatcher, Celery workers, management
    commands); Daphne's sync threads send on Daphne's loop instead
    (``_serving_an_event_loop``).

    ``async_to_sync`` from a sync process (the dispatcher, a Celery worker)
    runs each call on a new event loop, and channels_redis keeps its
    connections per loop: every batch paid for a new loop and a new Redis
    connection (5.0 CPU-ms for a batch of 33 events against 1.5 here,
    measured 2026-12-03). This loop and its Redis client live as long as the
    process. The client is our own, not the layer's: the layer's per-loop
    pools are closed by ``layer.flush()`` from whatever loop calls it, which
    fails for a pool bound to another loop. A forked child (Celery's pool)
    inherits neither the thread nor the lock's state, and starts its own
    loop on first use.

    The pub/sub layer's batches (the default layer) skip the loop: one
    pipeline of PUBLISH on a blocking client in the calling thread. The hop
    to the loop's thread and back cost more than the send itself: a
    dispatch batch's 33 events took 1.7–1.8 ms (wall and CPU) that way
    against 0.6–0.9 ms here (2026-12-04, on a slow hour of the machine).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._clients: dict[str, aioredis.Redis] = {}
        self._blocking_clients: dict[str, redis.Redis] = {}
        self._inherited: list[Any] = []

    def reset_after_fork(self) -> None:
        # The parent's sender thread does not exist in the child, and its
        # lock may have been held by another thread at the fork. Its loop and
        # clients are kept, never used: collected in the child, a connection
        # closes its transport, which takes the socket out of the loop's epoll
        # set, an instance the child shares with the parent. The parent's
        # sender then never heard Redis again (seen: every send timed out).
        self._inherited.append((self._loop, self._clients, self._blocking_clients))
        self._lock = threading.Lock()
        self._loop = None
        self._thread = None
        self._clients = {}
        self._blocking_clients = {}

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or not (self._thread and self._thread.is_alive()):
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=self._loop.run_forever, name="broadcast-sender", daemon=True)
                self._thread.start()
                self._clients = {}
            return self._loop

    async def _send(
        self, layer: RedisLayer, host: dict[str, Any], name: str, messages: list[tuple[str, dict[str, Any]]]
    ) -> None:
        client = self._clients.get(name)
        if client is None:
            client = self._clients[name] = aioredis.Redis(connection_pool=create_pool(host))
        await _redis_send_many(layer, messages, client)

    def send(self, layer: RedisLayer, messages: list[tuple[str, dict[str, Any]]]) -> None:
        """Send and wait until Redis has them (errors are raised here, as ``group_send``'s were)."""
        host = _redis_host(layer)
        name = repr(sorted(host.items()))  # the key of this host's client, blocking or async
        if isinstance(layer, RedisPubSubChannelLayer) and "address" in host:
            self._publish(layer, host, name, messages)
            return
        future = asyncio.run_coroutine_threadsafe(self._send(layer, host, name, messages), self._running_loop())
        future.result(timeout=SEND_TIMEOUT_SECONDS)

    def _publish(
        self,
        layer: RedisPubSubChannelLayer,
        host: dict[str, Any],
        name: str,
        messages: list[tuple[str, dict[str, Any]]],
    ) -> None:
        """``_pubsub_publish_many`` on a blocking client: one pipeline, one round trip, in this thread."""
        client = self._blocking_clients.get(name)
        if client is None:
            options = dict(host)
            client = redis.Redis.from_url(options.pop("address"), **options)
            with self._lock:
                client = self._blocking_clients.setdefault(name, client)
        pipeline = client.pipeline(transaction=False)
        for group, event in messages:
            pipeline.publish(_pubsub_group_channel(layer, group), layer.serialize(event))
        pipeline.execute()


# Longer than the Redis socket timeout (REMOTEBANK_REDIS_SOCKET_TIMEOUT, 10 s):
# a send that hangs past both is a stuck sender, not a slow Redis.
SEND_TIMEOUT_SECONDS: Final = 30

_sender = _Sender()
os.register_at_fork(after_in_child=_sender.reset_after_fork)


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _serving_an_event_loop() -> bool:
    """True in a thread that ``sync_to_async`` runs for a live event loop (Daphne's sync code).

    There ``async_to_sync`` runs the send on that loop, which holds the
    layer's connections already; a hop to the sender thread instead made
    the waiting customers' connects 2.7 times slower (41 → 15 per second,
    bench/queue_websocket_bench.py, 2026-12-03): the consumers' one database
    thread waited on the sender thread, which waited for the GIL behind the
    busy loop. Mirrors asgiref's own test in ``AsyncToSync.__call__``.
    """
    loop = getattr(SyncToAsync.threadlocal, "main_event_loop", None)
    owner = getattr(SyncToAsync.threadlocal, "main_event_loop_pid", None)
    return loop is not None and owner == os.getpid() and loop.is_running()


async def _send_on_this_loop(layer: RedisLayer, messages: list[tuple[str, dict[str, Any]]]) -> None:
    """With the client the layer itself uses on this loop."""
    if isinstance(layer, RedisChannelLayer):
        client = layer.connection(0)
    else:
        shard = layer._get_layer()._shards[0]
        shard._ensure_redis()  # the pub/sub layer creates its client on first use
        client = shard._redis
    await _redis_send_many(layer, messages, client)


async def _pubsub_publish_many(
    layer: RedisPubSubChannelLayer, messages: list[tuple[str, dict[str, Any]]], client: aioredis.Redis
) -> None:
    """Every ``group_send`` of a batch as one pipeline of PUBLISH commands: one round trip.

    ``RedisPubSubChannelLayer.group_send`` is one PUBLISH to the group's Redis
    channel, which every process with a member subscribes to and fans out to
    its own consumers; here they go in one pipeline on one connection, so
    Redis delivers them in the batch's order. Group channel names and the
    serialisation are the layer's own (``tests/queueing/test_events.py``
    holds this to what ``group_send`` delivers). A group without members
    costs a PUBLISH nobody receives, as it does with ``group_send``.
    """
    if not messages:
        return
    pipeline = client.pipeline(transaction=False)
    for group, event in messages:
        pipeline.publish(_pubsub_group_channel(layer, group), layer.serialize(event))
    await pipeline.execute()


def _pubsub_group_channel(layer: RedisPubSubChannelLayer, group: str) -> str:
    """The Redis channel of a group, as ``RedisPubSubLoopLayer._get_group_channel_name`` names it.

    Computed here because the layer only hands out its per-loop half from
    inside an event loop; tests/queueing/test_events.py holds both send
    paths to what ``group_send`` delivers.
    """
    return f"{layer._kwargs.get('prefix', 'asgi')}__group__{group}"


# The two scripts of a batch. Redis runs a script atomically and returns its
# replies in one go, so a batch costs two commands whatever its size.
#
# Every group of the batch: drop members past the layer's group expiry, list the rest.
# KEYS: the group keys; ARGV[1]: the expiry cut-off.
_LIST_GROUPS_LUA: Final = b"""
local members = {}
for i = 1, #KEYS do
    redis.call('ZREMRANGEBYSCORE', KEYS[i], 0, ARGV[1])
    members[i] = redis.call('ZRANGE', KEYS[i], 0, -1)
end
return members
"""

# Every delivery of the batch, as channels_redis's own group-send script
# (core.py, 4.3) does it per group: drop the channel's expired messages, add
# the message unless the channel is at capacity, refresh the key's expiry.
# KEYS: one channel key per delivery (a key may repeat); ARGV: the n
# messages, the n capacities, the n scores, the message cut-off, the expiry.
# Returns the deliveries refused for capacity (1-based).
_DELIVER_LUA: Final = b"""
local n = #KEYS
local cutoff = ARGV[3 * n + 1]
local expiry = ARGV[3 * n + 2]
local cleaned = {}
local refused = {}
for i = 1, n do
    local key = KEYS[i]
    if not cleaned[key] then
        redis.call('ZREMRANGEBYSCORE', key, 0, cutoff)
        cleaned[key] = true
    end
    if redis.call('ZCOUNT', key, '-inf', '+inf') < tonumber(ARGV[n + i]) then
        redis.call('ZADD', key, ARGV[2 * n + i], ARGV[i])
        redis.call('EXPIRE', key, expiry)
    else
        refused[#refused + 1] = i
    end
end
return refused
"""

# EVALSHA of the scripts, loading them on a server that does not know them yet.
_LIST_GROUPS: Final = AsyncScript(None, _LIST_GROUPS_LUA)  # type: ignore[arg-type]
_DELIVER: Final = AsyncScript(None, _DELIVER_LUA)  # type: ignore[arg-type]

# A channel's messages are popped by score (equal scores by their random
# bytes): one step per delivery keeps the batch's order. Above a float's
# resolution at today's epoch seconds (about 2.4e-7).
_ORDER_STEP_SECONDS: Final = 1e-5


async def _redis_group_send_many(
    layer: RedisChannelLayer, messages: list[tuple[str, dict[str, Any]]], connection: aioredis.Redis
) -> None:
    """Every ``group_send`` of a batch in two Redis commands.

    ``RedisChannelLayer.group_send`` makes four round trips per event (expire
    the group, list it, expire the channels' old messages, run its send
    script, sent in full each time); a dispatch batch of 50 offers sends 101
    events, and those round trips were most of the dispatcher's CPU (3.0
    CPU-ms per assignment against 0.5 without Redis). Here one script lists
    every group of the batch and one delivers every message, with the
    layer's own key names, serialisation, capacity and expiry, so consumers
    receive exactly what ``group_send`` would have delivered, in the batch's
    order (``asyncio.gather`` of ``group_send`` calls, used before, could
    reorder two events of one channel). Only for a single Redis host
    (``ring_size == 1``, how we deploy): with a sharded ring groups and
    channels live on several servers, and ``broadcast_many_now`` falls back
    to the layer's own ``group_send``.
    """
    if not messages:
        return
    now = time.time()
    group_keys = [layer._group_key(group) for group, _event in messages]
    distinct = list(dict.fromkeys(group_keys))
    listed = await _LIST_GROUPS(keys=distinct, args=[int(now) - layer.group_expiry], client=connection)
    members = {key: [name.decode("utf8") for name in names] for key, names in zip(distinct, listed, strict=True)}
    keys: list[str] = []
    payloads: list[bytes] = []
    capacities: list[int] = []
    groups: list[str] = []
    for (group, event), group_key in zip(messages, group_keys, strict=True):
        if not members[group_key]:
            continue
        by_connection, key_to_message, key_to_capacity = layer._map_channel_keys_to_connection(
            members[group_key], event
        )
        for channel_key in by_connection[0]:
            keys.append(channel_key)
            payloads.append(key_to_message[channel_key])
            capacities.append(key_to_capacity[channel_key])
            groups.append(group)
    if not keys:
        return
    scores = [now + order * _ORDER_STEP_SECONDS for order in range(len(keys))]
    refused = await _DELIVER(
        keys=keys,
        args=[*payloads, *capacities, *scores, int(now) - int(layer.expiry), layer.expiry],
        client=connection,
    )
    for index in refused:
        logger.info("a channel over capacity in group %s missed an event", groups[int(index) - 1])


def broadcast_many_now(messages: list[tuple[str, dict[str, Any]]]) -> None:
    """Send a batch of events: on Redis in two commands (on the loop this thread serves, else the sender loop)."""
    if not messages:
        return
    layer = _pipelined_layer()
    if layer is None or _in_event_loop():
        # From inside an event loop, ``async_to_sync`` raises the error that says why not.
        async_to_sync(_send_all)(messages)
    elif _serving_an_event_loop():
        async_to_sync(_send_on_this_loop)(layer, messages)
    else:
        _sender.send(layer, messages)


def broadcast_many_on_commit(messages: list[tuple[str, dict[str, Any]]]) -> None:
    """``broadcast_many_now`` once the surrounding transaction commits: the batched dispatcher's one sender."""
    transaction.on_commit(lambda: broadcast_many_now(messages))


def broadcast_on_commit(group: str, event: dict[str, Any]) -> None:
    """Send after the surrounding transaction commits; a rollback sends nothing."""
    transaction.on_commit(lambda: broadcast_now(group, event))
