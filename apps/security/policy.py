"""Who must prove a second factor (R8.3), and which requests it guards.

Supervisors, compliance officers and administrators read customers' personal
data, the audit trail and other staff's accounts, so a stolen password alone
must not open the back office for them. Agents and experts serve customers
from a branch workstation and are exempt.
"""

from __future__ import annotations

from typing import Any

from apps.staff.roles import Role

TWO_FACTOR_ROLES = frozenset({Role.SUPERVISOR, Role.COMPLIANCE_OFFICER, Role.ADMINISTRATOR})


def two_factor_required(user: Any) -> bool:
    """True for a logged-in user whose role (or superuser flag) requires a verified second factor."""
    if not getattr(user, "is_authenticated", False):
        return False
    if getattr(user, "is_superuser", False):
        return True
    # A user without a staff profile raises RelatedObjectDoesNotExist, an AttributeError.
    profile = getattr(user, "staff_profile", None)
    return profile is not None and profile.role in TWO_FACTOR_ROLES


def two_factor_satisfied(user: Any) -> bool:
    """True unless the user must verify a second factor and has not in this session."""
    if not two_factor_required(user):
        return True
    is_verified = getattr(user, "is_verified", None)
    return bool(is_verified is not None and is_verified())
