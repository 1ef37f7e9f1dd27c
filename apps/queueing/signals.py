"""Signals of the queueing app, for higher apps to react to (docs/architecture.md).

``queue_entry_connected`` is sent INSIDE the transaction in which an agent
accepted an offer, with ``entry`` (QueueEntry, state connected) and ``staff``
(the accepting StaffProfile). A receiver's writes commit or roll back with the
acceptance; receivers must only call a service and must not do I/O to outside
systems (schedule it on commit instead).
"""

from __future__ import annotations

from django.dispatch import Signal

queue_entry_connected = Signal()

# Time-based housekeeping (the dispatcher loop's round) is announced by
# ``apps.common.signals.housekeeping_due``, which every app can hear.
