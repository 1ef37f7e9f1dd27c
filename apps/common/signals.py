"""Signals every app may listen to, sent from below all of them.

``housekeeping_due`` is sent by the dispatcher loop (``manage.py
run_dispatcher``, through ``apps.queueing.services.housekeeping.dispatcher_tick``)
after each round, outside any transaction, with ``now`` (an aware datetime:
tests drive the clock by passing their own). It is the one clock of the
platform's deadlines (docs/architecture.md, "Deadlines"): each app connects
one receiver in its ``receivers.py`` (``AppConfig.ready``) that only calls its
sweeper services, which find the rows past their deadline and move them on
(retry or fail with a reason) in transactions of their own.

It lives in ``apps.common`` so that apps below the queueing app
(verification) can hear it without an upward import. Receivers run every
round (half a second by default): a sweeper must be a cheap indexed query
when nothing is due, and must skip rows another dispatcher has locked
(``SKIP LOCKED``), since several dispatchers may run at once.
"""

from __future__ import annotations

from django.dispatch import Signal

housekeeping_due = Signal()
