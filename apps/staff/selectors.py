"""Reads of staff data that more than one app needs."""

from __future__ import annotations

from typing import Any

from apps.staff.models import StaffProfile


def staff_profile_for(user: Any) -> StaffProfile | None:
    """The staff profile of ``user``, or None for an anonymous visitor or a user who is not staff."""
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return StaffProfile.objects.filter(user=user).first()


def staff_in_team_of(*, staff: StaffProfile, user: Any) -> bool:
    """True when ``staff`` is in the team of the supervisor logged in as ``user`` (StaffProfile.supervisor).

    A supervisor acts on their own team only: not on other teams' agents,
    administrators, compliance officers or other supervisors.
    """
    supervisor = staff_profile_for(user)
    return supervisor is not None and staff.supervisor_id == supervisor.pk
