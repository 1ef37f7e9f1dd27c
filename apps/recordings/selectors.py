"""Reads of the recordings app."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db.models import QuerySet

from apps.calls.models import Call
from apps.calls.selectors import visits_visible_to
from apps.recordings.models import Snapshot


def staff_may_see_call(*, user: User, call: Call) -> bool:
    """Whether ``user`` may see this call's recordings and snapshots: its service is one they may see.

    The object-level rule of R8 (``visits_visible_to``): staff who took part
    in the service, their supervisor, compliance officers. Whether they may
    *play* a recording is the role's permission, checked by the views.
    """
    return visits_visible_to(user=user).filter(pk=call.visit_id).exists()


def snapshots_for_call(*, call: Call) -> QuerySet[Snapshot]:
    return Snapshot.objects.filter(call=call).select_related("taken_by").order_by("taken_at", "pk")


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
