"""Video calls through Janus (R1, R3.1).

One call per answered queue entry, one private Janus video room per call,
recorded from the start. The call's state machine:

    connecting ──(customer and agent publishing)──▶ connected ──▶ ended
        └──────────────────────────(failure, hang-up)──────────────▲

``ended`` always carries a reason.
"""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from django.db import models
from django.utils.translation import gettext_lazy as _
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from apps.queueing.models import QueueEntry
from apps.staff.models import StaffProfile
from apps.visits.models import Visit


class CallState(models.TextChoices):
    CONNECTING = "connecting", _("Connecting")
    CONNECTED = "connected", _("Connected")
    ENDED = "ended", _("Ended")


class CallEndReason(models.TextChoices):
    CUSTOMER_HUNG_UP = "customer_hung_up", _("Customer hung up")
    AGENT_HUNG_UP = "agent_hung_up", _("Agent hung up")
    TRANSFERRED = "transferred", _("Transferred to another queue")
    REJOIN_GRACE_EXPIRED = "rejoin_grace_expired", _("A participant did not come back in time")
    CONNECT_TIMEOUT = "connect_timeout", _("The call did not connect in time")
    MEDIA_SERVER_FAILED = "media_server_failed", _("The video server failed")
    GATE_FAILED = "gate_failed", _("A verification gate failed")


def _room_secret() -> str:
    return secrets.token_urlsafe(24)


def _participant_handle() -> str:
    return secrets.token_hex(10)


def _room_id() -> int:
    # Random, not sequential: a room id must not be guessable (and Janus
    # room ids are unsigned 64-bit; stay within JavaScript's safe integers).
    return secrets.randbelow(2**52) + 1


class Call(ConcurrentTransitionMixin, models.Model):
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    visit = models.ForeignKey(Visit, on_delete=models.PROTECT, related_name="calls")
    entry = models.OneToOneField(QueueEntry, on_delete=models.PROTECT, related_name="call")
    state = FSMField(_("state"), default=CallState.CONNECTING, choices=CallState.choices, protected=True)
    janus_server = models.CharField(_("video server"), max_length=64)
    room_id = models.PositiveBigIntegerField(_("room"), unique=True, default=_room_id)
    room_secret = models.CharField(max_length=64, default=_room_secret, editable=False)
    room_open = models.BooleanField(default=False)
    record_dir = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    connected_at = models.DateTimeField(_("connected at"), null=True, blank=True)
    ended_at = models.DateTimeField(_("ended at"), null=True, blank=True)
    end_reason = models.CharField(_("end reason"), max_length=32, choices=CallEndReason.choices, blank=True)

    class Meta:
        ordering = ("-created_at",)
        verbose_name = _("call")
        verbose_name_plural = _("calls")

    def __str__(self) -> str:
        return f"call {self.public_id}"

    @transition(field=state, source=CallState.CONNECTING, target=CallState.CONNECTED)
    def connect(self, now: Any) -> None:
        self.connected_at = now

    @transition(field=state, source=[CallState.CONNECTING, CallState.CONNECTED], target=CallState.ENDED)
    def end(self, now: Any, reason: CallEndReason) -> None:
        self.ended_at = now
        self.end_reason = reason


class ParticipantRole(models.TextChoices):
    CUSTOMER = "customer", _("Customer")
    AGENT = "agent", _("Agent")
    EXPERT = "expert", _("Expert")
    # Another agent brought in to help (R1.2): the role says who they really are.
    ASSISTING_AGENT = "assisting_agent", _("Second agent")
    # The serving agent's supervisor, listening silently or joined (issue 21).
    SUPERVISOR = "supervisor", _("Supervisor")


class SupervisorMode(models.TextChoices):
    # Subscribes only: never publishes, and is not shown to the customer or the agent.
    LISTEN = "listen", _("Listening in")
    # Publishes camera and microphone and is shown to everyone in the call.
    JOIN = "join", _("Joined the call")


# Staff brought into someone else's call: hanging up only leaves it, and their
# dropping out alone does not end it.
ASSISTING_ROLES = (ParticipantRole.EXPERT, ParticipantRole.ASSISTING_AGENT, ParticipantRole.SUPERVISOR)


class CallParticipant(models.Model):
    """A person allowed in the call's room. What Janus reports fills in the times."""

    call = models.ForeignKey(Call, on_delete=models.CASCADE, related_name="participants")
    role = models.CharField(max_length=16, choices=ParticipantRole.choices)
    staff = models.ForeignKey(StaffProfile, null=True, blank=True, on_delete=models.PROTECT, related_name="calls")
    # The display name the browser joins with: an opaque id, so the event
    # feed and the recording file names map back to this row, and nobody's
    # name appears in Janus.
    handle = models.CharField(max_length=40, unique=True, default=_participant_handle)
    invited_at = models.DateTimeField(auto_now_add=True)
    joined_at = models.DateTimeField(null=True, blank=True)
    publishing_since = models.DateTimeField(null=True, blank=True)
    disconnected_at = models.DateTimeField(null=True, blank=True)
    left_at = models.DateTimeField(null=True, blank=True)
    janus_feed_id = models.PositiveBigIntegerField(null=True, blank=True)
    # Only for the SUPERVISOR role: listening silently or joined (blank otherwise).
    supervisor_mode = models.CharField(max_length=8, choices=SupervisorMode.choices, blank=True)

    class Meta:
        ordering = ("call", "invited_at")
        constraints = (
            models.UniqueConstraint(
                fields=("call", "role"),
                condition=models.Q(role__in=("customer", "agent")),
                name="one_customer_and_one_agent_per_call",
            ),
            # A staff member is present (not left) in at most one call: an agent
            # never serves two live calls, an expert is never pulled into a
            # second one (issue 16). Ending a call sets every seat's left_at.
            models.UniqueConstraint(
                fields=("staff",),
                condition=models.Q(left_at__isnull=True, staff__isnull=False),
                name="one_live_seat_per_staff",
            ),
        )

    def __str__(self) -> str:
        return f"{self.role} in {self.call_id}"
