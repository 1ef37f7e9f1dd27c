"""Staff roles (R8.3) and exactly what each may do.

Roles are Django groups whose permissions are rebuilt from this table after
every migration (``role_permissions_sync``), so the table is the truth and a
permission granted by hand in the admin does not survive a deploy.
Customers are not staff users and have no role here.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class Role(models.TextChoices):
    AGENT = "agent", _("Agent")
    EXPERT = "expert", _("Expert")
    SUPERVISOR = "supervisor", _("Supervisor")
    COMPLIANCE_OFFICER = "compliance_officer", _("Compliance officer")
    ADMINISTRATOR = "administrator", _("Administrator")


# "app_label.codename" of every permission each role holds.
_SERVE_CUSTOMERS = {
    "customers.view_customer",
    "customers.view_account",
    "customers.view_branch",
}
# Agents and experts find and play back the recordings and snapshots of the
# services they took part in, and only those: which services a user sees is
# apps.calls.selectors.visits_visible_to, the permission only opens the door.
_OWN_RECORDINGS = {
    "recordings.view_recording",
    "recordings.view_snapshot",
    "recordings.play_recording",
}
ROLE_PERMISSIONS: dict[Role, frozenset[str]] = {
    Role.AGENT: frozenset(_SERVE_CUSTOMERS | _OWN_RECORDINGS | {"queueing.serve_customers"}),
    Role.EXPERT: frozenset(_SERVE_CUSTOMERS | _OWN_RECORDINGS | {"queueing.serve_customers"}),
    Role.SUPERVISOR: frozenset(
        _SERVE_CUSTOMERS
        | {
            "staff.view_staffprofile",
            "staff.view_agentskill",
            "staff.change_agentskill",
            "queueing.supervise_queues",
            "queueing.view_servicequeue",
            "queueing.view_queueentry",
            "queueing.view_agentpresence",
            # Recordings (apps.recordings): see post-processing, re-run a failed one, play back.
            "recordings.view_recording",
            "recordings.view_recordingfile",
            "recordings.view_snapshot",
            "recordings.play_recording",
            "recordings.reprocess_recording",
        }
    ),
    # Read-only everywhere, including the audit trail and the blacklists.
    Role.COMPLIANCE_OFFICER: frozenset(
        _SERVE_CUSTOMERS
        | {
            # Every customer, not only those of services one took part in.
            "customers.view_all_customers",
            "customers.view_blacklistentry",
            "audit.view_auditrecord",
            "staff.view_staffprofile",
            "staff.view_elevationgrant",
            # Audit-report exports: request them, see everyone's, and ask for
            # personal data in clear (each unmasking is audited).
            "compliance.export_audit_trail",
            "compliance.view_auditexport",
            "compliance.unmask_personal_data",
            # Recordings (apps.recordings): read and play back (every playback audited).
            "recordings.view_recording",
            "recordings.view_recordingfile",
            "recordings.view_snapshot",
            "recordings.play_recording",
        }
    ),
    # Runs the system: staff accounts, branches, blacklists; reads the audit
    # trail; no role can change or delete audit records.
    # Running the system is not reading customers: branches yes, customers no.
    Role.ADMINISTRATOR: frozenset(
        {
            "customers.view_branch",
            # Logins, groups and permissions are read-only here: they change
            # through audited services only (staff_member_upsert,
            # role_permissions_sync, manage.py break_glass), so nobody can
            # make themselves or anyone else a superuser from the admin.
            "auth.view_user",
            "auth.view_group",
            "customers.add_branch",
            "customers.change_branch",
            "customers.view_blacklistentry",
            "audit.view_auditrecord",
            # Exports of the audit trail (their own only), always masked: the
            # role that manages logins and roles must not also read customers'
            # personal data in clear (separation of duties); unmasking is a
            # compliance decision (compliance.unmask_personal_data).
            "compliance.export_audit_trail",
            "staff.view_staffprofile",
            "staff.view_elevationgrant",
            "staff.add_staffprofile",
            "staff.change_staffprofile",
            "staff.view_agentskill",
            "staff.add_agentskill",
            "staff.change_agentskill",
            "staff.delete_agentskill",
            "queueing.view_servicequeue",
            "queueing.add_servicequeue",
            "queueing.change_servicequeue",
            "queueing.view_overflowtarget",
            "queueing.add_overflowtarget",
            "queueing.change_overflowtarget",
            "queueing.delete_overflowtarget",
            # Gate 4's question bank and per-business policy (retired, never deleted).
            "gates.view_questiontemplate",
            "gates.add_questiontemplate",
            "gates.change_questiontemplate",
            "gates.view_questionpolicy",
            "gates.add_questionpolicy",
            "gates.change_questionpolicy",
        }
    ),
}
