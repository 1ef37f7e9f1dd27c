from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import Group, Permission, User
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.audit.actions import AuditAction
from apps.audit.services import Actor, AnyActor, audit_record
from apps.businesses.registry import business_get
from apps.common.errors import ValidationFailed
from apps.customers.models import Branch
from apps.staff.models import AgentSkill, ElevationGrant, StaffProfile
from apps.staff.roles import ROLE_PERMISSIONS, Role


@transaction.atomic
def role_permissions_sync(*, actor: AnyActor) -> list[Group]:
    """Make every role's group hold exactly the permissions ROLE_PERMISSIONS lists."""
    groups = []
    changes: dict[str, dict[str, list[str]]] = {}
    for role, wanted in ROLE_PERMISSIONS.items():
        group, _created = Group.objects.select_for_update().get_or_create(name=role.value)
        permissions = []
        for dotted in sorted(wanted):
            app_label, codename = dotted.split(".", 1)
            permissions.append(Permission.objects.get(content_type__app_label=app_label, codename=codename))
        current = {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")}
        if current != set(wanted):
            group.permissions.set(permissions)
            changes[role.value] = {"added": sorted(set(wanted) - current), "removed": sorted(current - set(wanted))}
        groups.append(group)
    if changes:
        audit_record(actor=actor, action=AuditAction.STAFF_ROLES_SYNCED, data=changes)
    _rights_outside_roles_revoke(actor=actor)
    return groups


def _rights_outside_roles_revoke(*, actor: AnyActor) -> None:
    """Take every right the role table does not give: the table is the whole truth.

    Per-user permissions go (nobody is granted them by a service), superuser
    flags go unless a break-glass grant is running, and each staff member is
    in exactly the group of their role (users without a profile in none).
    All in the caller's transaction, one audit record naming what went.
    """
    now = timezone.now()
    elevated = set(
        ElevationGrant.objects.filter(ended_at__isnull=True, expires_at__gt=now).values_list("user_id", flat=True)
    )
    role_groups = {group.name: group for group in Group.objects.filter(name__in=[role.value for role in Role])}
    revoked: dict[str, dict[str, object]] = {}
    # of=self: the profile is on the nullable side of an outer join, which cannot be locked.
    users = (
        User.objects.select_for_update(of=("self",))
        .select_related("staff_profile")
        .prefetch_related("user_permissions__content_type", "groups")
    )
    for user in users.order_by("pk"):
        removed: dict[str, object] = {}
        grants = sorted(f"{p.content_type.app_label}.{p.codename}" for p in user.user_permissions.all())
        if grants:
            user.user_permissions.clear()
            removed["permissions"] = grants
        profile = getattr(user, "staff_profile", None)
        wanted = {role_groups[profile.role]} if profile is not None and profile.role in role_groups else set()
        current = set(user.groups.all())
        if current != wanted:
            user.groups.set(wanted)
            removed["groups"] = sorted(group.name for group in current - wanted)
        if user.is_superuser and user.pk not in elevated:
            user.is_superuser = False
            user.save(update_fields=["is_superuser"])
            removed["superuser"] = True
        if removed:
            revoked[user.get_username()] = removed
    if revoked:
        audit_record(actor=actor, action=AuditAction.STAFF_RIGHTS_REVOKED, data={"users": revoked})


class ElevationRefused(ValidationFailed):
    default_code = "elevation_refused"


@transaction.atomic
def elevation_grant(
    *,
    user: User,
    requested_by: User,
    approved_by: User,
    reason: str,
    minutes: int,
    now: datetime | None = None,
) -> ElevationGrant:
    """Break glass: make ``user`` a superuser for ``minutes``, on two named people's word.

    The requester and the approver are two different active staff members,
    and the approver is not the person elevated (four eyes). The grant ends
    by itself at its expiry (``elevations_expire``) or by ``elevation_revoke``.
    Audited with both names and the reason; the requester is the actor.
    """
    now = now or timezone.now()
    reason = " ".join(reason.split())
    if len(reason) < 10:
        raise ElevationRefused(_("Give the reason for the elevation in a full sentence."), code="reason_required")
    if not 1 <= minutes <= settings.BREAK_GLASS_MAX_MINUTES:
        raise ElevationRefused(
            _("An elevation lasts between 1 and %(max)s minutes.") % {"max": settings.BREAK_GLASS_MAX_MINUTES},
            code="invalid_duration",
        )
    if approved_by.pk in (requested_by.pk, user.pk):
        raise ElevationRefused(
            _("Two different people must request and approve, and nobody approves their own elevation."),
            code="four_eyes",
        )
    for person in (requested_by, approved_by, user):
        if not person.is_active or not StaffProfile.objects.filter(user=person).exists():
            raise ElevationRefused(
                _("%(username)s is not an active staff member.") % {"username": person.get_username()},
                code="not_staff",
            )
    locked = User.objects.select_for_update().get(pk=user.pk)
    grant = ElevationGrant.objects.create(
        user=locked,
        requested_by=requested_by,
        approved_by=approved_by,
        reason=reason,
        granted_at=now,
        expires_at=now + timedelta(minutes=minutes),
    )
    locked.is_superuser = True
    locked.save(update_fields=["is_superuser"])
    audit_record(
        actor=requested_by,
        action=AuditAction.STAFF_ELEVATION_GRANTED,
        target=grant,
        data={
            "user": locked.get_username(),
            "requested_by": requested_by.get_username(),
            "approved_by": approved_by.get_username(),
            "reason": reason,
            "expires_at": grant.expires_at.isoformat(),
        },
    )
    return grant


def _elevation_end(*, grant: ElevationGrant, actor: AnyActor, why: str, now: datetime) -> None:
    grant.ended_at = now
    grant.end_reason = why
    grant.save(update_fields=["ended_at", "end_reason"])
    still_elevated = ElevationGrant.objects.filter(
        user_id=grant.user_id, ended_at__isnull=True, expires_at__gt=now
    ).exists()
    if not still_elevated:
        User.objects.filter(pk=grant.user_id).update(is_superuser=False)
    audit_record(
        actor=actor,
        action=AuditAction.STAFF_ELEVATION_ENDED,
        target=grant,
        data={"user": grant.user.get_username(), "why": why, "superuser": still_elevated},
    )


@transaction.atomic
def elevation_revoke(*, actor: AnyActor, user: User, now: datetime | None = None) -> int:
    """End every running break-glass grant of ``user`` now; returns how many ended."""
    now = now or timezone.now()
    grants = list(
        ElevationGrant.objects.select_for_update().select_related("user").filter(user=user, ended_at__isnull=True)
    )
    for grant in grants:
        _elevation_end(grant=grant, actor=actor, why="revoked", now=now)
    return len(grants)


# Who the audit trail names for grants the clock ends.
ELEVATION_EXPIRY = Actor.system("break_glass_expiry")


def elevations_expire(*, now: datetime | None = None) -> int:
    """End the break-glass grants past their expiry (housekeeping sweeper); returns how many ended."""
    now = now or timezone.now()
    ended = 0
    for grant_id in ElevationGrant.objects.filter(ended_at__isnull=True, expires_at__lte=now).values_list(
        "pk", flat=True
    ):
        with transaction.atomic(durable=True):
            grant = (
                ElevationGrant.objects.select_for_update(skip_locked=True)
                .select_related("user")
                .filter(pk=grant_id, ended_at__isnull=True)
                .first()
            )
            if grant is None:
                continue
            _elevation_end(grant=grant, actor=ELEVATION_EXPIRY, why="expired", now=now)
            ended += 1
    return ended


@transaction.atomic
def staff_member_upsert(
    *,
    actor: AnyActor,
    username: str,
    employee_number: str,
    display_name: str,
    role: Role,
    branch: Branch,
    supervisor: StaffProfile | None = None,
    initial_password: str | None = None,
) -> StaffProfile:
    """Create or update a staff member: login, role group and profile.

    ``initial_password`` is only used when the login is created; an existing
    member's password is never overwritten here.
    """
    if supervisor is not None and supervisor.role != Role.SUPERVISOR:
        raise ValidationFailed(_("The chosen supervisor does not have the supervisor role."), code="not_a_supervisor")
    user = User.objects.select_for_update().filter(username=username).first()
    created = user is None
    if user is None:
        user = User(username=username, is_staff=True, is_active=True)
        if initial_password:
            user.set_password(initial_password)
        else:
            user.set_unusable_password()
        user.save()
    # Administrators manage staff through the admin, which needs
    # is_superuser for nothing: their group permissions are enough.
    user.groups.set([Group.objects.get(name=role.value)])
    profile = StaffProfile.objects.select_for_update().filter(user=user).first()
    values = {
        "employee_number": employee_number,
        "display_name": display_name,
        "role": role,
        "branch": branch,
        "supervisor": supervisor,
    }
    if profile is None:
        profile = StaffProfile.objects.create(user=user, **values)
    elif all(getattr(profile, field) == value for field, value in values.items()):
        return profile
    else:
        for field, value in values.items():
            setattr(profile, field, value)
        profile.save()
    audit_record(
        actor=actor,
        action=AuditAction.STAFF_PROFILE_CREATED if created else AuditAction.STAFF_PROFILE_UPDATED,
        target=profile,
        data={"username": username, "role": role.value, "branch": branch.code},
    )
    return profile


@transaction.atomic
def agent_skill_set(*, actor: AnyActor, staff: StaffProfile, business_code: str, proficiency: int) -> AgentSkill:
    try:
        business_get(business_code)
    except KeyError as exc:
        raise ValidationFailed(_("Unknown business."), code="unknown_business") from exc
    if not 1 <= proficiency <= 5:
        raise ValidationFailed(_("Proficiency must be between 1 and 5."), code="invalid_proficiency")
    skill, created = AgentSkill.objects.select_for_update().get_or_create(
        staff=staff, business_code=business_code, defaults={"proficiency": proficiency}
    )
    if not created and skill.proficiency == proficiency:
        return skill
    skill.proficiency = proficiency
    skill.save()
    audit_record(
        actor=actor,
        action=AuditAction.STAFF_PROFILE_UPDATED,
        target=staff,
        data={"skill": business_code, "proficiency": proficiency},
    )
    return skill
