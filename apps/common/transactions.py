"""Side effects that must wait for the surrounding transaction to commit.

A rolled-back state change must never ring an agent, start a recording job or
read an ID card that was not stored. These helpers are the one place where a
Celery enqueue or a callable is deferred with ``transaction.on_commit``
(Zulip's ``queue_event_on_commit`` is the model); channel-layer broadcasts
have theirs in ``apps.queueing.events.broadcast_on_commit``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from django.db import transaction


class _Task(Protocol):
    def delay(self, *args: Any, **kwargs: Any) -> Any: ...


def enqueue_on_commit(task: _Task, *args: Any, **kwargs: Any) -> None:
    """``task.delay(*args, **kwargs)`` once the current transaction commits.

    Arguments are bound now (plain ids and values, never model instances:
    tasks load what they need). Outside a transaction it runs at once.
    """
    transaction.on_commit(lambda: task.delay(*args, **kwargs))


def call_on_commit(function: Callable[..., object], *args: Any, **kwargs: Any) -> None:
    """``function(*args, **kwargs)`` once the current transaction commits (file clean-up, …)."""
    transaction.on_commit(lambda: function(*args, **kwargs))
