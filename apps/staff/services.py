from __future__ import annotations

from django.contrib.auth.models import Group, Permission, User
from django.db import transaction
from django.utils.translation import gettext_lazy as _

from apps.audit.actions import AuditAction
from apps.audit.services import AnyActor, audit_record
from apps.businesses.registry import business_get
from apps.common.errors import ValidationFailed
from apps.customers.models import Branch
from apps.staff.models import AgentSkill, StaffProfile
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
    return groups


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
