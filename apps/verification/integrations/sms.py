"""Text messages to customers' phones (the one-time code proving the mobile number).

``SmsGateway`` is what the services depend on; ``get_sms_gateway()`` picks the
adapter named by ``settings.SMS_ADAPTER``. The bank's real gateway is an
outside system; here ``SandboxSmsGateway`` stands in for it and behaves like
one: it takes time (latency), fails now and then (``SmsSendFailed``), and
refuses more than a few messages per number per window
(``SmsRateLimited``), as operators do. What it "sends" is kept in an outbox
(Redis when ``REDIS_URL`` is set, so the web process and a worker see the
same; otherwise in the process) that the development-only page
``/api/visits/dev/sms/`` shows. Touches no models.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from django.conf import settings


class SmsError(Exception):
    """The message was not accepted by the gateway."""


class SmsSendFailed(SmsError):
    """A temporary failure (gateway error or timeout): trying again later may work."""


class SmsRateLimited(SmsError):
    """The gateway refuses more messages to this number for now."""


@dataclass(frozen=True)
class SmsReceipt:
    message_id: str


@dataclass(frozen=True)
class SandboxMessage:
    message_id: str
    mobile: str
    text: str
    sent_at: str


class SmsGateway(Protocol):
    def send(self, *, mobile: str, text: str) -> SmsReceipt: ...


class SandboxSmsGateway:
    """A gateway stand-in: latency, failures, per-number rate limit, and an outbox for the dev page."""

    OUTBOX_KEY = "remotebank:sms-sandbox:outbox"
    OUTBOX_SIZE = 200

    def __init__(self, options: dict[str, Any]) -> None:
        self.latency_min_ms = int(options.get("latency_min_ms", 100))
        self.latency_max_ms = int(options.get("latency_max_ms", 600))
        self.error_rate = float(options.get("error_rate", 0.02))
        self.rate_limit = int(options.get("rate_limit_per_window", 5))
        self.rate_window_seconds = int(options.get("rate_window_seconds", 3600))
        seed = options.get("seed")
        # Simulated failures and latency, not secrets: the code itself comes from ``secrets``.
        self._random = random.Random(seed)  # noqa: S311
        self._lock = threading.Lock()
        self._local_outbox: deque[str] = deque(maxlen=self.OUTBOX_SIZE)
        self._local_sent: dict[str, list[float]] = {}
        self._redis: Any = None
        if settings.REDIS_URL:
            import redis

            self._redis = redis.Redis.from_url(settings.REDIS_URL)

    def send(self, *, mobile: str, text: str) -> SmsReceipt:
        with self._lock:
            latency = self._random.uniform(self.latency_min_ms, self.latency_max_ms) / 1000
            failed = self._random.random() < self.error_rate
        time.sleep(latency)
        if failed:
            raise SmsSendFailed("sandbox gateway error")
        if not self._within_rate_limit(mobile):
            raise SmsRateLimited("too many messages to this number")
        message = SandboxMessage(
            message_id=f"sbx-{time.time_ns():x}", mobile=mobile, text=text, sent_at=datetime.now(UTC).isoformat()
        )
        record = json.dumps(message.__dict__, ensure_ascii=False)
        if self._redis is not None:
            pipe = self._redis.pipeline()
            pipe.lpush(self.OUTBOX_KEY, record)
            pipe.ltrim(self.OUTBOX_KEY, 0, self.OUTBOX_SIZE - 1)
            pipe.execute()
        else:
            with self._lock:
                self._local_outbox.appendleft(record)
        return SmsReceipt(message.message_id)

    def _within_rate_limit(self, mobile: str) -> bool:
        now = time.time()
        if self._redis is not None:
            key = f"remotebank:sms-sandbox:rate:{mobile}"
            pipe = self._redis.pipeline()
            pipe.incr(key)
            pipe.expire(key, self.rate_window_seconds, nx=True)
            count, _ = pipe.execute()
            return int(count) <= self.rate_limit
        with self._lock:
            sent = [moment for moment in self._local_sent.get(mobile, []) if now - moment < self.rate_window_seconds]
            sent.append(now)
            self._local_sent[mobile] = sent
            return len(sent) <= self.rate_limit

    def outbox(self, limit: int = 50) -> list[SandboxMessage]:
        """The latest messages, newest first (the development page)."""
        if self._redis is not None:
            records = [raw.decode() for raw in self._redis.lrange(self.OUTBOX_KEY, 0, limit - 1)]
        else:
            with self._lock:
                records = list(self._local_outbox)[:limit]
        return [SandboxMessage(**json.loads(record)) for record in records]


_gateway: SmsGateway | None = None
_gateway_lock = threading.Lock()


def get_sms_gateway() -> SmsGateway:
    """The process-wide SMS adapter named by ``settings.SMS_ADAPTER``."""
    global _gateway  # noqa: PLW0603 - a deliberate per-process singleton
    with _gateway_lock:
        if _gateway is None:
            if settings.SMS_ADAPTER != "sandbox":
                raise SmsError(f"unknown SMS adapter {settings.SMS_ADAPTER!r}")
            _gateway = SandboxSmsGateway(settings.SMS_SANDBOX)
        return _gateway


def sms_gateway_reset() -> None:
    """Forget the adapter (tests that change SMS settings)."""
    global _gateway  # noqa: PLW0603
    with _gateway_lock:
        _gateway = None
