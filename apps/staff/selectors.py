"""Reads of staff data that more than one app needs."""

from __future__ import annotations

from typing import Any

from apps.staff.models import StaffProfile


def staff_profile_for(user: Any) -> StaffProfile | None:
    """The staff profile of ``user``, or None for an anonymous visitor or a user who is not staff."""
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return StaffProfile.objects.filter(user=user).first()
