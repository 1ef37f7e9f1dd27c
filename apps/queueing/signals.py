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

# Sent (synchronously, outside any transaction) whenever the agent's WebSocket
# builds the snapshot of what the agent's page shows, with ``staff`` (the
# StaffProfile). Each receiver returns a dict of JSON-ready keys to add: how a
# higher app puts its part on the page without queueing importing it (the
# console adds the call the agent is in, under "call"). Receivers only read.
agent_snapshot_requested = Signal()

# Sent INSIDE the transaction of the agent's "End service" (``agent_service_close``),
# before anything is locked, with ``staff`` (StaffProfile) and ``actor``: the
# staff member's live call must end (or, for a staff member assisting someone
# else's call, be left) in that same transaction, so that "end service" and
# "hang up" are one action. A receiver returns True when it ended or left a
# call; that call's end puts the agent in wrap-up itself.
agent_service_closing = Signal()
