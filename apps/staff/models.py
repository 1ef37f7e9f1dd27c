from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from apps.businesses.registry import business_choices
from apps.customers.models import Branch
from apps.staff.roles import Role


class StaffProfile(models.Model):
    """A bank employee who logs in to the back office."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="staff_profile", verbose_name=_("user account")
    )
    employee_number = models.CharField(_("employee number"), max_length=20, unique=True)
    display_name = models.CharField(_("name"), max_length=64)
    role = models.CharField(_("role"), max_length=32, choices=Role.choices)
    branch = models.ForeignKey(Branch, on_delete=models.PROTECT, related_name="staff", verbose_name=_("branch"))
    # The supervisor whose team this member belongs to (supervisors see their teams).
    supervisor = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="team",
        verbose_name=_("supervisor"),
        limit_choices_to={"role": Role.SUPERVISOR},
    )

    class Meta:
        ordering = ("employee_number",)
        verbose_name = _("staff member")
        verbose_name_plural = _("staff members")

    def __str__(self) -> str:
        return f"{self.employee_number} {self.display_name}"


class AgentSkill(models.Model):
    """A business an agent or expert can serve, and how well (1 = learning, 5 = expert)."""

    staff = models.ForeignKey(StaffProfile, on_delete=models.CASCADE, related_name="skills")
    business_code = models.CharField(_("business"), max_length=32, choices=business_choices())
    proficiency = models.PositiveSmallIntegerField(
        _("proficiency"), default=3, validators=[MinValueValidator(1), MaxValueValidator(5)]
    )

    class Meta:
        ordering = ("staff", "business_code")
        verbose_name = _("skill")
        verbose_name_plural = _("skills")
        constraints = (models.UniqueConstraint(fields=("staff", "business_code"), name="one_skill_per_business"),)

    def __str__(self) -> str:
        return f"{self.staff.employee_number} {self.business_code}:{self.proficiency}"


class ElevationGrant(models.Model):
    """Break-glass: superuser rights for one person, for a short time, on two named people's word.

    The only way anyone becomes a superuser (``manage.py break_glass``):
    ``role_permissions_sync`` takes the flag from everyone without a grant
    that is still running, and the housekeeping sweeper ends each grant at its
    expiry (``elevations_expire``). Rows are kept for ever as the record.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="elevation_grants", verbose_name=_("user")
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("requested by")
    )
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("approved by")
    )
    reason = models.TextField(_("reason"))
    granted_at = models.DateTimeField(_("granted at"))
    expires_at = models.DateTimeField(_("expires at"))
    ended_at = models.DateTimeField(_("ended at"), null=True, blank=True)
    end_reason = models.CharField(_("ended because"), max_length=16, blank=True)

    class Meta:
        ordering = ("-granted_at",)
        verbose_name = _("break-glass grant")
        verbose_name_plural = _("break-glass grants")
        constraints = (
            # Four eyes: the approver is neither the requester nor the person elevated.
            models.CheckConstraint(
                condition=~models.Q(requested_by=models.F("approved_by")), name="elevation_two_people"
            ),
            models.CheckConstraint(
                condition=~models.Q(user=models.F("approved_by")), name="elevation_not_self_approved"
            ),
            models.CheckConstraint(condition=models.Q(expires_at__gt=models.F("granted_at")), name="elevation_expires"),
        )

    def __str__(self) -> str:
        return f"break-glass {self.user_id} until {self.expires_at:%Y-%m-%d %H:%M}"
