from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.db.models import Q, QuerySet
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from apps.calls.models import Call, CallParticipant
from apps.common.errors import NotFound, PermissionDenied
from apps.staff.roles import Role
from apps.visits.models import Visit

# Janus videoroom recording names (docs/janus.md):
# videoroom-<room>-user-<feed id>-<µs timestamp>-<audio|video>-<mid>.mjr
_RECORDING = re.compile(
    r"^videoroom-(?P<room>\d+)-user-(?P<feed>\d+)-(?P<stamp>\d+)-(?P<kind>audio|video)-\d+\.mjr(?P<open>\.tmp)?$"
)


@dataclass(frozen=True)
class RecordingFile:
    path: Path
    kind: str  # "audio" or "video"
    feed_id: int
    started_us: int
    role: str | None  # the participant's role, None if the feed id is unknown
    participant_id: int | None


def call_recording_files(*, call: Call, include_unclosed: bool = False) -> list[RecordingFile]:
    """The call's finished recording files, each mapped to its participant by feed id.

    Open recordings (``.mjr.tmp``) are not listed: Janus renames them when it
    closes them. ``include_unclosed`` lists them too, for a call whose Janus
    died (``media_server_failed``): nobody will close them, and what was
    written up to the crash is the call's evidence. A participant who rejoined
    has several feeds, hence several files; all map back to them.
    """
    folder = Path(call.record_dir)
    if not folder.is_dir():
        return []
    feeds = {p.janus_feed_id: p for p in call.participants.exclude(janus_feed_id__isnull=True)}
    files = []
    for path in sorted(folder.iterdir()):
        match = _RECORDING.match(path.name)
        if match is None or int(match["room"]) != call.room_id or (match["open"] and not include_unclosed):
            continue
        participant = feeds.get(int(match["feed"]))
        files.append(
            RecordingFile(
                path=path,
                kind=match["kind"],
                feed_id=int(match["feed"]),
                started_us=int(match["stamp"]),
                role=participant.role if participant else None,
                participant_id=participant.pk if participant else None,
            )
        )
    return files


def visits_visible_to(*, user: AbstractBaseUser | AnonymousUser) -> QuerySet[Visit]:
    """The services (visits) whose record and evidence this staff user may see (R8 object-level rules).

    - agent, expert: the services they took part in (as agent or invited expert);
    - supervisor: those of the staff they supervise, and their own;
    - compliance officer: every service (read-only: no role edits evidence);
    - administrator, anyone else: none (running the system is not reading customers' services).

    Every back-office page and API that lists or opens a service, a recording
    or a snapshot filters through this one function.
    """
    profile = getattr(user, "staff_profile", None) if user.is_authenticated else None
    if profile is None or not user.is_active:
        return Visit.objects.none()
    if profile.role == Role.COMPLIANCE_OFFICER:
        return Visit.objects.all()
    if profile.role in (Role.AGENT, Role.EXPERT):
        return Visit.objects.filter(calls__participants__staff=profile).distinct()
    if profile.role == Role.SUPERVISOR:
        return Visit.objects.filter(
            Q(calls__participants__staff__supervisor=profile) | Q(calls__participants__staff=profile)
        ).distinct()
    return Visit.objects.none()


def call_get(*, public_id: Any) -> Call:
    """The call with this public id (with its visit), or NotFound."""
    call = Call.objects.select_related("visit").filter(public_id=public_id).first()
    if call is None:
        raise NotFound(_("This call does not exist."), code="call_not_found")
    return call


def call_for_staff_participant(*, public_id: Any, user: User, denied: str | Promise) -> Call:
    """The call with this public id, if ``user`` took part in it as staff; else NotFound / PermissionDenied(``denied``).

    For reads of a call's own panels (its gates, its operations); writes
    also check that the person is still present in the live call.
    """
    call = call_get(public_id=public_id)
    if not CallParticipant.objects.filter(call=call, staff__user=user).exists():
        raise PermissionDenied(denied, code="not_in_call")
    return call
