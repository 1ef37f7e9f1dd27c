"""Each Daphne process is one member of a queue's group and writes each change to every page that follows it.

On the channel layer as configured: in memory locally, Redis pub/sub under CI
(the deployed default). The pages here stand in for consumers: all the
fan-out calls on a page is ``send``. The whole path through real sockets is in
test_consumers.py and bench/queue_websocket_bench.py.
"""

from __future__ import annotations

import asyncio
import gc
import json
import uuid
from typing import Any

import pytest
from channels.layers import get_channel_layer

from apps.queueing import events, fanout
from apps.queueing.fanout import QueueFanOut, queue_fan_out

WAIT = 5.0
QUIET = 0.5


class FakePage:
    def __init__(self, *, fails: bool = False) -> None:
        self.texts: asyncio.Queue[str] = asyncio.Queue()
        self.fails = fails

    async def send(self, text_data: str | None = None, bytes_data: bytes | None = None, close: bool = False) -> None:
        if self.fails:
            raise ConnectionError("the socket is gone")
        assert text_data is not None
        self.texts.put_nowait(text_data)

    async def next(self) -> dict[str, Any]:
        return json.loads(await asyncio.wait_for(self.texts.get(), WAIT))

    async def nothing_more(self) -> None:
        await asyncio.sleep(QUIET)
        assert self.texts.empty(), self.texts.get_nowait()


def _queue_id() -> int:
    """A queue id of its own per test: the Redis layer is shared with earlier tests and other runs."""
    return uuid.uuid4().int % 1_000_000_000 + 1_000_000


async def _change(queue_id: int, version: int, *, event_type: str = events.QUEUE_CHANGED) -> None:
    message = {"type": "queue", "queue": queue_id, "version": version, "waiting": 3, "removed": [], "inserted": []}
    await get_channel_layer().group_send(
        events.queue_group(queue_id), events.queue_message(message, event_type=event_type)
    )


@pytest.fixture
async def fan_out() -> Any:
    fan_out = queue_fan_out()
    yield fan_out
    if fan_out.reader is not None:
        fan_out.reader.cancel()


async def test_one_message_reaches_every_page_of_the_queue_once_and_no_other_queues(fan_out: QueueFanOut) -> None:
    queue_id, other_queue_id = _queue_id(), _queue_id()
    pages = [FakePage() for _ in range(3)]
    elsewhere = FakePage()
    for page in pages:
        await fan_out.follow(queue_id, page)
    await fan_out.follow(other_queue_id, elsewhere)

    await _change(queue_id, 7)
    await _change(queue_id, 8, event_type=events.QUEUE_RESYNC)

    for page in pages:
        assert [(await page.next())["version"] for _ in range(2)] == [7, 8]
        await page.nothing_more()
    await elsewhere.nothing_more()
    # One member of the group for the whole process, however many pages follow.
    assert queue_fan_out() is fan_out
    assert fan_out.channel is not None


async def test_a_page_that_stopped_following_or_failed_is_left_out_and_the_others_still_hear(
    fan_out: QueueFanOut,
) -> None:
    queue_id = _queue_id()
    staying, leaving, broken = FakePage(), FakePage(), FakePage(fails=True)
    for page in (staying, leaving, broken):
        await fan_out.follow(queue_id, page)
    fan_out.unfollow(queue_id, leaving)

    await _change(queue_id, 1)
    assert (await staying.next())["version"] == 1
    await leaving.nothing_more()
    assert broken not in fan_out.pages[queue_id]

    await _change(queue_id, 2)
    assert (await staying.next())["version"] == 2


async def test_a_consumer_that_died_without_its_disconnect_is_not_kept_alive(fan_out: QueueFanOut) -> None:
    queue_id = _queue_id()
    staying, dead = FakePage(), FakePage()
    await fan_out.follow(queue_id, staying)
    await fan_out.follow(queue_id, dead)
    del dead
    gc.collect()
    assert list(fan_out.pages[queue_id]) == [staying]


async def test_the_group_membership_is_renewed_before_the_layer_forgets_it(
    fan_out: QueueFanOut, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue_id = _queue_id()
    added: list[str] = []
    real_group_add = fan_out.layer.group_add

    async def group_add(group: str, channel: str) -> None:
        added.append(group)
        await real_group_add(group, channel)

    monkeypatch.setattr(fan_out.layer, "group_add", group_add)
    await fan_out.follow(queue_id, FakePage())
    await fan_out.follow(queue_id, FakePage())
    assert added == [events.queue_group(queue_id)]

    monkeypatch.setattr(fanout, "RENEW_SECONDS", 0.0)
    await fan_out.follow(queue_id, FakePage())
    assert added == [events.queue_group(queue_id)] * 2


async def test_the_reader_survives_a_channel_layer_failure(
    fan_out: QueueFanOut, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue_id = _queue_id()
    page = FakePage()
    await fan_out.follow(queue_id, page)
    real_receive = fan_out.layer.receive
    failures: list[str] = []

    async def receive(channel: str) -> dict[str, Any]:
        if not failures:
            failures.append(channel)
            raise ConnectionError("Redis went away")
        return await real_receive(channel)

    monkeypatch.setattr(fanout, "RETRY_SECONDS", 0.05)
    monkeypatch.setattr(fan_out.layer, "receive", receive)
    assert fan_out.reader is not None
    fan_out.reader.cancel()
    await asyncio.gather(fan_out.reader, return_exceptions=True)
    await fan_out.follow(queue_id, page)  # starts a new reader, which fails once and reads again

    await _change(queue_id, 3)
    assert (await page.next())["version"] == 3
    assert failures == [fan_out.channel]
