"""One member of each queue's group per Daphne process, forwarding to every local page.

A queue change is one pre-encoded message for the whole queue (``events``).
When each page's consumer was a member of the queue's group itself, the
channel layer queued a copy per socket and channels woke each consumer to
pass it on: a task, a receive and a dispatch per page per change, about half
of Daphne's CPU per update once the collector was tuned (a py-spy profile of
bench/queue_websocket_bench.py at 2,000 pages, 2026-12-04). Here the process
joins the group once, on one channel of its own, and writes the text to each
page's socket in one loop: what is left per page is the WebSocket frame.

Pages register before they read their snapshot (``follow`` returns once the
process is a member), so nothing committed after the snapshot is missed; what
came before it is ignored by version on the page. The process stays a member
of a queue's group after its last page leaves (a dropped message costs less
than leaving and joining again as pages come and go); the membership is
renewed now and then, because the in-memory and core layers forget a group
member after ``group_expiry`` (a day by default).
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from typing import Any, Protocol

from channels.layers import get_channel_layer

from apps.queueing import events

logger = logging.getLogger(__name__)

# Renew the group memberships this often (well within channels' default group_expiry of a day).
RENEW_SECONDS = 3600.0
# Pages written to before other work on the event loop (connects, heartbeats) gets a turn.
PAGES_PER_TURN = 500
# After the channel layer fails (Redis gone), wait this long before reading again.
RETRY_SECONDS = 1.0

FORWARDED = frozenset({events.QUEUE_CHANGED, events.QUEUE_RESYNC})


class Page(Protocol):
    async def send(
        self, text_data: str | None = None, bytes_data: bytes | None = None, close: bool = False
    ) -> None: ...


class QueueFanOut:
    """The queue messages of one event loop (one per Daphne process), forwarded to the pages that follow each queue."""

    def __init__(self) -> None:
        self.layer: Any = get_channel_layer()
        self.channel: str | None = None
        # Weak: a consumer that died without its disconnect handler is dropped with it.
        self.pages: dict[int, weakref.WeakSet[Page]] = {}
        # Queue id → time.monotonic() of the last group_add.
        self.joined: dict[int, float] = {}
        self.lock = asyncio.Lock()
        self.reader: asyncio.Task[None] | None = None

    async def follow(self, queue_id: int, page: Page) -> None:
        """Send the queue's messages to ``page`` from now on; returns once they are on their way to this process."""
        self.pages.setdefault(queue_id, weakref.WeakSet()).add(page)
        joined_at = self.joined.get(queue_id)
        if joined_at is None or time.monotonic() - joined_at >= RENEW_SECONDS:
            async with self.lock:
                if self.channel is None:
                    self.channel = await self.layer.new_channel()
                joined_at = self.joined.get(queue_id)
                if joined_at is None or time.monotonic() - joined_at >= RENEW_SECONDS:
                    await self.layer.group_add(events.queue_group(queue_id), self.channel)
                    self.joined[queue_id] = time.monotonic()
        # Checked on every follow: nothing else would notice a reader that ended.
        if self.reader is None or self.reader.done():
            self.reader = asyncio.create_task(self._read(), name="queue fan-out")

    def unfollow(self, queue_id: int, page: Page) -> None:
        pages = self.pages.get(queue_id)
        if pages is not None:
            pages.discard(page)

    async def _read(self) -> None:
        assert self.channel is not None
        while True:
            try:
                message = await self.layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                # The pages notice the versions they missed and ask for a snapshot.
                logger.warning("Queue fan-out could not read from the channel layer", exc_info=True)
                await asyncio.sleep(RETRY_SECONDS)
                continue
            if message.get("type") in FORWARDED and isinstance(message.get("queue"), int):
                await self.forward(message["queue"], message["text"])

    async def forward(self, queue_id: int, text: str) -> None:
        """Write ``text`` to every page following the queue (a page that fails is dropped and logged)."""
        for number, page in enumerate(list(self.pages.get(queue_id, ()))):
            if number and number % PAGES_PER_TURN == 0:
                await asyncio.sleep(0)
            try:
                await page.send(text_data=text)
            except Exception:
                logger.warning("Queue fan-out could not write to a page; it stops following", exc_info=True)
                self.unfollow(queue_id, page)


# One per event loop: Daphne has one; tests may run several, one after the other.
_fan_outs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, QueueFanOut] = weakref.WeakKeyDictionary()


def queue_fan_out() -> QueueFanOut:
    loop = asyncio.get_running_loop()
    fan_out = _fan_outs.get(loop)
    if fan_out is None:
        fan_out = _fan_outs[loop] = QueueFanOut()
    return fan_out
