"""Reads of the recordings app.

Which recordings, files and snapshots a staff user may see is decided by one
rule, ``apps.calls.selectors.visits_visible_to`` (agents and experts: the
services they took part in; supervisors: their team's and their own;
compliance officers: all; administrators: none). Every read below that
serves a person starts from it; the role's permission only opens the door.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.db.models import Prefetch, Q, QuerySet

from apps.calls.models import Call, CallParticipant, ParticipantRole
from apps.calls.selectors import visits_visible_to
from apps.recordings.models import Recording, RecordingFile, RecordingFileKind, Snapshot


def staff_may_see_call(*, user: User, call: Call) -> bool:
    """Whether ``call`` belongs to a service that ``user`` may see (visits_visible_to)."""
    return visits_visible_to(user=user).filter(pk=call.visit_id).exists()


def snapshots_for_call(*, call: Call) -> QuerySet[Snapshot]:
    return Snapshot.objects.filter(call=call).select_related("taken_by").order_by("taken_at", "pk")


def recordings_visible_to(*, user: User) -> QuerySet[Recording]:
    return Recording.objects.filter(call__visit__in=visits_visible_to(user=user))


def recording_is_visible_to(*, user: User, recording_id: int) -> bool:
    return recordings_visible_to(user=user).filter(pk=recording_id).exists()


def recording_of_call_visible_to(*, user: User, call_public_id: uuid.UUID | str) -> Recording | None:
    """The recording of a call ``user`` may see, with its files and their participants (None if none or hidden)."""
    return (
        recordings_visible_to(user=user)
        .filter(call__public_id=call_public_id)
        .prefetch_related("files__participant")
        .first()
    )


@dataclass(frozen=True)
class RecordingSearch:
    """Filters of the recordings search (R3.3); empty values filter nothing."""

    agent: str = ""  # employee number of a staff participant (agent or expert)
    customer: str = ""  # customer number
    business: str = ""  # business code
    outcome: str = ""  # Visit.outcome
    state: str = ""  # post-processing state
    call_from: datetime | None = None  # the call started at or after this
    call_until: datetime | None = None  # ... and before this


def recordings_search(*, user: User, search: RecordingSearch) -> QuerySet[Recording]:
    """The recordings ``user`` may see that match ``search``, newest call first, ready to list."""
    recordings = recordings_visible_to(user=user)
    if search.agent:
        # A subquery, not a join: a call with an agent and an expert must not be listed twice.
        recordings = recordings.filter(
            call__in=Call.objects.filter(participants__staff__employee_number=search.agent.strip())
        )
    if search.customer:
        recordings = recordings.filter(call__visit__customer__customer_number=search.customer.strip())
    if search.business:
        recordings = recordings.filter(call__visit__business_code=search.business)
    if search.outcome:
        recordings = recordings.filter(call__visit__outcome=search.outcome)
    if search.state:
        recordings = recordings.filter(state=search.state)
    if search.call_from is not None:
        recordings = recordings.filter(call__created_at__gte=search.call_from)
    if search.call_until is not None:
        recordings = recordings.filter(call__created_at__lt=search.call_until)
    staff = CallParticipant.objects.filter(staff__isnull=False).select_related("staff").order_by("invited_at")
    return (
        recordings.select_related("call", "call__visit", "call__visit__customer")
        .prefetch_related(
            Prefetch("call__participants", queryset=staff, to_attr="staff_participants"),
            Prefetch(
                "files",
                queryset=RecordingFile.objects.filter(kind=RecordingFileKind.COMPOSITE, purged_at__isnull=True),
                to_attr="evidence_files",
            ),
        )
        .order_by("-call__created_at", "-pk")
    )


def recording_visible_to(*, user: User, recording_id: int) -> Recording | None:
    """One recording ``user`` may see, with its call, service, participants, files and snapshots."""
    return (
        recordings_visible_to(user=user)
        .filter(pk=recording_id)
        .select_related("call", "call__visit", "call__visit__customer")
        .prefetch_related(
            Prefetch(
                "call__participants",
                queryset=CallParticipant.objects.select_related("staff").order_by("invited_at"),
            ),
            Prefetch("files", queryset=RecordingFile.objects.select_related("participant").order_by("kind", "pk")),
            Prefetch("call__snapshots", queryset=Snapshot.objects.select_related("taken_by").order_by("taken_at")),
        )
        .first()
    )


def recording_file_visible_to(*, user: User, file_id: int) -> RecordingFile | None:
    """A stored (not purged) output file of a recording ``user`` may see; originals are never served."""
    return (
        RecordingFile.objects.filter(
            pk=file_id,
            in_storage=True,
            purged_at__isnull=True,
            recording__call__visit__in=visits_visible_to(user=user),
        )
        .select_related("recording")
        .first()
    )


def snapshot_visible_to(*, user: User, public_id: uuid.UUID | str) -> Snapshot | None:
    return (
        Snapshot.objects.filter(
            public_id=public_id, purged_at__isnull=True, call__visit__in=visits_visible_to(user=user)
        )
        .select_related("call")
        .first()
    )


def evidence_file(recording: Recording) -> RecordingFile | None:
    """The composite evidence file of a recording loaded by the selectors above (None if none or purged)."""
    prefetched = getattr(recording, "evidence_files", None)
    items = prefetched if prefetched is not None else list(recording.files.all())
    return next(
        (item for item in items if item.kind == RecordingFileKind.COMPOSITE and item.purged_at is None),
        None,
    )


def recording_agents(recording: Recording) -> list[CallParticipant]:
    """Staff of the recording's call (agent first), from the prefetched participants."""
    people = getattr(recording.call, "staff_participants", None)
    if people is None:
        people = [person for person in recording.call.participants.all() if person.staff_id is not None]
    order = {ParticipantRole.AGENT: 0, ParticipantRole.EXPERT: 1}
    return sorted(people, key=lambda person: order.get(ParticipantRole(person.role), 2))


# --- Retention ---------------------------------------------------------------------------


def retention_cutoff(*, now: datetime, days: int) -> datetime:
    """Services closed before this instant are past the retention period."""
    return now - timedelta(days=days)


def recording_files_past_retention(*, cutoff: datetime) -> QuerySet[RecordingFile]:
    """Files (outputs and originals) of services closed before ``cutoff`` that are still there."""
    return (
        RecordingFile.objects.filter(
            purged_at__isnull=True,
            recording__call__visit__closed_at__isnull=False,
            recording__call__visit__closed_at__lt=cutoff,
        )
        .select_related("recording__call__visit")
        .order_by("pk")
    )


def snapshots_past_retention(*, cutoff: datetime) -> QuerySet[Snapshot]:
    return (
        Snapshot.objects.filter(
            Q(purged_at__isnull=True),
            call__visit__closed_at__isnull=False,
            call__visit__closed_at__lt=cutoff,
        )
        .select_related("call__visit")
        .order_by("pk")
    )


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1


class RangeNotSatisfiable(Exception):
    pass


def parse_range_header(header: str | None, *, size: int) -> ByteRange | None:
    """The single byte range of an HTTP ``Range`` header (RFC 9110), or None for the whole file.

    Browsers' media elements send ``bytes=N-`` (and sometimes ``bytes=N-M`` or
    a suffix ``bytes=-N``); several ranges in one header are not supported and
    are answered with the whole file, which RFC 9110 allows.
    """
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first, _dash, last = header[len("bytes=") :].strip().partition("-")
    try:
        if first == "":
            suffix = int(last)
            if suffix <= 0:
                raise RangeNotSatisfiable
            return ByteRange(max(0, size - suffix), size - 1)
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start >= size or start < 0 or end < start:
        raise RangeNotSatisfiable
    return ByteRange(start, min(end, size - 1))
