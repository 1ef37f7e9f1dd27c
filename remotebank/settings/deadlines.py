"""Deadlines of the waiting states that a worker, not a person, must end (docs/architecture.md, "Deadlines").

Each is enforced by a sweeper on the dispatcher's clock
(``apps.common.signals.housekeeping_due``). Read from the environment only;
imported at the end of ``base``. Deadlines owned by a queue (offer timeout,
wrap-up, reconnect grace) are fields of the queue; the calls' are in ``base``.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from remotebank.settings.environment import env_int

__all__ = [
    "COMPLIANCE_EXPORT_STALL_SECONDS",
    "GATE1_OCR_DEADLINE_SECONDS",
    "GATE_CHECK_DEADLINE_SECONDS",
    "RECORDINGS_PENDING_MAX_WAIT_SECONDS",
    "RECORDINGS_PENDING_RETRY_SECONDS",
    "VISIT_IDLE_CLOSE_SECONDS",
]

# Gate 1: an ID card still being read this long after its upload (the OCR
# worker died or its message was lost) has its OCR queued again, once; still
# unread this long after that, the customer is asked to upload again
# (``ocr_timeout``, not counted as one of their uploads). A read takes about
# half a second, a cold worker loading the model a few seconds more.
GATE1_OCR_DEADLINE_SECONDS = env_int("REMOTEBANK_GATE1_OCR_DEADLINE_SECONDS", 30)

# Gates 2 and 3: a registry query or face comparison still running this long
# after it started ends as an error (``check_timed_out``); it counts as one of
# the gate's attempts, so the agent may try again within the limits. The
# registry's own timeout is seconds; the face model's first load tens of them.
GATE_CHECK_DEADLINE_SECONDS = env_int("REMOTEBANK_GATE_CHECK_DEADLINE_SECONDS", 120)

# Recordings: a post-processing still pending after its call ended (Janus had
# not closed the files when the task ran, and nothing retried it) is queued
# again after RETRY seconds, then at doubling intervals (at most 5 minutes
# apart); once it has waited MAX_WAIT seconds it fails with the reason, for
# a person to re-run.
RECORDINGS_PENDING_RETRY_SECONDS = env_int("REMOTEBANK_RECORDINGS_PENDING_RETRY_SECONDS", 30)
RECORDINGS_PENDING_MAX_WAIT_SECONDS = env_int("REMOTEBANK_RECORDINGS_PENDING_MAX_WAIT_SECONDS", 60 * 60)

# Compliance exports: an export that has written no row for this long (its
# worker died) or has waited this long without starting (its message was
# lost) fails with the reason; the officer may request it again.
COMPLIANCE_EXPORT_STALL_SECONDS = env_int("REMOTEBANK_COMPLIANCE_EXPORT_STALL_SECONDS", 15 * 60)

# Visits: an open visit that nothing moves on any more (the customer left
# during Gate 1, or never came back after an interrupted call: no live queue
# entry, no live call, nothing written to it or its Gate 1) is closed as
# abandoned (``idle_timeout``) after this long, so the service record ends.
VISIT_IDLE_CLOSE_SECONDS = env_int("REMOTEBANK_VISIT_IDLE_CLOSE_SECONDS", 30 * 60)

for _name in __all__:
    if globals()[_name] < 1:
        raise ImproperlyConfigured(f"REMOTEBANK_{_name} must be at least 1.")
