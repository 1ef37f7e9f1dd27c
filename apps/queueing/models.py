"""Queues, waiting customers and agents' presence (R2).

Ordering. An entry's place is its ``priority_key``: the moment it entered
the queue, moved earlier by a bonus (seconds) for the customer's level and the
business. Everyone ages at the same rate, so sorting by the key *is* "weigh
level, business and time waited"; because the bonus is bounded, a customer
who has waited longer than the largest bonus is ahead of every newcomer:
nobody starves. The key never needs recomputing, so the queue is an index scan.

Invariants (R2.5, issue 16), held by row locks in the services *and* by the
database: an entry offered or connected names exactly one agent (a column), and
partial unique indexes allow an agent at most one such entry, a visit and a
customer at most one live (waiting, offered, connected) entry.
"""

from __future__ import annotations

from typing import Any

from django.core.validators import MaxValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from apps.businesses.registry import business_choices
from apps.customers.models import Customer, CustomerLevel
from apps.staff.models import StaffProfile
from apps.visits.models import Visit


class AgentStrategy(models.TextChoices):
    LONGEST_IDLE = "longest_idle", _("Longest idle")
    FEWEST_SERVICES = "fewest_services", _("Fewest services today")
    HIGHEST_PROFICIENCY = "highest_proficiency", _("Highest proficiency")


def default_level_bonus() -> dict[str, int]:
    return {
        CustomerLevel.ORDINARY: 0,
        CustomerLevel.GOLD: 30,
        CustomerLevel.PLATINUM: 60,
        CustomerLevel.PRIVATE: 120,
    }


class ServiceQueue(models.Model):
    code = models.SlugField(_("code"), max_length=32, unique=True)
    name = models.CharField(_("name"), max_length=100)
    businesses = models.JSONField(_("businesses served"), default=list, help_text=_("Business codes, e.g. activation."))
    # Bonus seconds per customer level and per business (R2.1 weights).
    level_bonus_seconds = models.JSONField(_("level bonus (seconds)"), default=default_level_bonus)
    business_bonus_seconds = models.JSONField(_("business bonus (seconds)"), default=dict, blank=True)
    agent_strategy = models.CharField(
        _("agent choice"), max_length=32, choices=AgentStrategy.choices, default=AgentStrategy.LONGEST_IDLE
    )
    service_level_seconds = models.PositiveIntegerField(_("service level target (seconds)"), default=20)
    offer_timeout_seconds = models.PositiveIntegerField(_("offer timeout (seconds)"), default=15)
    wrap_up_seconds = models.PositiveIntegerField(_("wrap-up time (seconds)"), default=30)
    max_missed_offers = models.PositiveSmallIntegerField(_("missed offers before away"), default=2)
    reconnect_grace_seconds = models.PositiveIntegerField(_("reconnect grace (seconds)"), default=60)
    overflow_max_waiting = models.PositiveIntegerField(_("overflow above waiting count"), null=True, blank=True)
    overflow_max_wait_seconds = models.PositiveIntegerField(
        _("overflow above longest wait (seconds)"), null=True, blank=True
    )
    paused = models.BooleanField(_("paused"), default=False)
    # The queue's change counter (issue 18, O(1) fan-out): every change of
    # who waits bumps it in the changing transaction (a row lock held to
    # COMMIT, so versions are in commit order) and broadcasts ONE message
    # naming that version; each customer's page applies the messages in
    # version order and asks for a snapshot on a gap (docs/queueing.md, "Positions").
    change_version = models.BigIntegerField(_("change version"), default=0, editable=False)
    # How many of its entries wait, moved with the change version by every
    # change of who waits (services/_common._queue_event): the size of the
    # line in each change message without counting the line (O(1) per change).
    waiting_count = models.BigIntegerField(_("customers waiting"), default=0, editable=False)
    # The supervisor wallboard's targets for this queue: a tile is green when the figure meets
    # its target, amber when within a quarter of it, red beyond (apps/console, R2.6).
    target_waiting = models.PositiveIntegerField(_("target: most customers waiting"), default=5)
    target_longest_wait_seconds = models.PositiveIntegerField(_("target: longest wait (seconds)"), default=120)
    target_service_level_percent = models.PositiveSmallIntegerField(
        _("target: service level at least (%)"), default=80, validators=[MaxValueValidator(100)]
    )
    target_abandon_rate_percent = models.PositiveSmallIntegerField(
        _("target: abandon rate at most (%)"), default=10, validators=[MaxValueValidator(100)]
    )

    class Meta:
        ordering = ("code",)
        verbose_name = _("queue")
        verbose_name_plural = _("queues")

    def __str__(self) -> str:
        return f"{self.code} {self.name}"

    # Written by ``_queue_event``'s SQL alone: a queue loaded earlier and
    # saved must not put back the version and count it read.
    _KEPT_BY_THE_DATABASE = frozenset({"change_version", "waiting_count"})

    def save(self, **kwargs: Any) -> None:
        if not self._state.adding and kwargs.get("update_fields") is None and not kwargs.get("force_insert"):
            kwargs["update_fields"] = [
                field.name
                for field in self._meta.concrete_fields
                if not field.primary_key and field.name not in self._KEPT_BY_THE_DATABASE
            ]
        super().save(**kwargs)

    def bonus_seconds(self, *, level: str, business_code: str) -> int:
        return int(self.level_bonus_seconds.get(level, 0)) + int(self.business_bonus_seconds.get(business_code, 0))


class OverflowTarget(models.Model):
    """Where a queue's customers overflow to, tried in ``position`` order (R2.3)."""

    queue = models.ForeignKey(
        ServiceQueue, on_delete=models.CASCADE, related_name="overflow_targets", verbose_name=_("queue")
    )
    target = models.ForeignKey(ServiceQueue, on_delete=models.CASCADE, related_name="+", verbose_name=_("target"))
    position = models.PositiveSmallIntegerField(_("order"), default=1)

    class Meta:
        ordering = ("queue", "position")
        verbose_name = _("overflow target")
        verbose_name_plural = _("overflow targets")
        constraints = (
            models.UniqueConstraint(fields=("queue", "target"), name="overflow_target_once"),
            models.CheckConstraint(condition=~models.Q(queue=models.F("target")), name="overflow_not_to_itself"),
        )

    def __str__(self) -> str:
        return f"{self.queue.code} → {self.target.code}"


class AgentState(models.TextChoices):
    OFFLINE = "offline", _("Offline")
    AVAILABLE = "available", _("Available")
    OFFERED = "offered", _("Ringing")
    BUSY = "busy", _("Busy")
    WRAP_UP = "wrap_up", _("Wrap-up")
    AWAY = "away", _("Away")


class AgentPresence(ConcurrentTransitionMixin, models.Model):
    """An agent's or expert's live state at the remote counter (R2.2)."""

    staff = models.OneToOneField(
        StaffProfile, on_delete=models.CASCADE, related_name="presence", verbose_name=_("staff member")
    )
    state = FSMField(_("state"), default=AgentState.OFFLINE, choices=AgentState.choices, protected=True)
    state_since = models.DateTimeField(_("since"))
    # When the agent last became free: "longest idle" orders by this.
    idle_since = models.DateTimeField(_("idle since"), null=True, blank=True)
    wrap_up_until = models.DateTimeField(verbose_name=_("wrap-up until"), null=True, blank=True)
    services_date = models.DateField(verbose_name=_("services date"), null=True, blank=True)
    services_today = models.PositiveIntegerField(_("services today"), default=0)
    missed_offers_in_row = models.PositiveSmallIntegerField(verbose_name=_("missed offers in a row"), default=0)

    class Meta:
        verbose_name = _("agent presence")
        verbose_name_plural = _("agent presence")
        permissions = (
            ("serve_customers", _("Can take customers from the queues")),
            ("supervise_queues", _("Can supervise queues and agents")),
        )
        indexes = (models.Index(fields=("state", "idle_since")),)

    def __str__(self) -> str:
        return f"{self.staff} {self.state}"

    # Transitions only change fields; the queueing services do the rest.

    @transition(
        field=state, source=[AgentState.OFFLINE, AgentState.AWAY, AgentState.WRAP_UP], target=AgentState.AVAILABLE
    )
    def go_available(self, now: Any) -> None:
        self.state_since = now
        self.idle_since = now
        self.wrap_up_until = None
        self.missed_offers_in_row = 0

    @transition(
        field=state, source=[AgentState.AVAILABLE, AgentState.WRAP_UP, AgentState.OFFLINE], target=AgentState.AWAY
    )
    def go_away(self, now: Any) -> None:
        self.state_since = now

    @transition(
        field=state, source=[AgentState.AVAILABLE, AgentState.AWAY, AgentState.WRAP_UP], target=AgentState.OFFLINE
    )
    def go_offline(self, now: Any) -> None:
        self.state_since = now

    @transition(field=state, source=AgentState.AVAILABLE, target=AgentState.OFFERED)
    def ring(self, now: Any) -> None:
        self.state_since = now

    @transition(field=state, source=AgentState.OFFERED, target=AgentState.AVAILABLE)
    def offer_declined(self, now: Any) -> None:
        # Declining keeps the agent's place in the idle order.
        self.state_since = now

    @transition(field=state, source=AgentState.OFFERED, target=AgentState.AVAILABLE)
    def offer_missed(self, now: Any) -> None:
        self.state_since = now
        self.missed_offers_in_row += 1

    @transition(field=state, source=AgentState.OFFERED, target=AgentState.AWAY)
    def offer_missed_too_often(self, now: Any) -> None:
        self.state_since = now
        self.missed_offers_in_row += 1

    @transition(field=state, source=AgentState.OFFERED, target=AgentState.BUSY)
    def answer(self, now: Any) -> None:
        self.state_since = now
        self.missed_offers_in_row = 0
        today = now.date()
        if self.services_date != today:
            self.services_date = today
            self.services_today = 0
        self.services_today += 1

    @transition(field=state, source=AgentState.AVAILABLE, target=AgentState.BUSY)
    def assist(self, now: Any) -> None:
        """Joining another agent's call as expert or second agent: not offered customers meanwhile."""
        self.state_since = now

    @transition(field=state, source=AgentState.BUSY, target=AgentState.WRAP_UP)
    def service_ended(self, now: Any, until: Any) -> None:
        self.state_since = now
        self.wrap_up_until = until


class EntryState(models.TextChoices):
    WAITING = "waiting", _("Waiting")
    OFFERED = "offered", _("Offered to an agent")
    CONNECTED = "connected", _("Connected")
    SERVED = "served", _("Served")
    ABANDONED = "abandoned", _("Abandoned")
    CANCELLED = "cancelled", _("Cancelled")


# An entry in one of these states holds the customer's place (and, offered or
# connected, an agent); the others are final.
LIVE_ENTRY_STATES = (EntryState.WAITING, EntryState.OFFERED, EntryState.CONNECTED)


class EndReason(models.TextChoices):
    ANSWERED = "answered", _("Answered")
    CUSTOMER_LEFT = "customer_left", _("Customer left")
    GRACE_EXPIRED = "grace_expired", _("Did not reconnect in time")
    # The call of an answered entry failed (video server down, a participant
    # never came back): the customer may queue again with priority.
    CALL_FAILED = "call_failed", _("The call failed")
    # The customer started a newer visit while this one waited (one live entry per customer).
    SUPERSEDED = "superseded", _("Superseded by a newer visit")


class QueueEntry(ConcurrentTransitionMixin, models.Model):
    """One customer waiting (or being offered) in one queue."""

    # One visit may queue more than once (a transfer, a dropped call coming
    # back), but has at most one live entry (constraint below).
    visit = models.ForeignKey(Visit, on_delete=models.PROTECT, related_name="queue_entries", verbose_name=_("service"))
    # The visit's customer, copied at enqueue so that the database can hold
    # "one live entry per customer" (constraint below); null only on rows
    # older than the column whose visit had no customer.
    customer = models.ForeignKey(
        Customer,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="queue_entries",
        verbose_name=_("customer"),
    )
    queue = models.ForeignKey(ServiceQueue, on_delete=models.PROTECT, related_name="entries", verbose_name=_("queue"))
    business_code = models.CharField(verbose_name=_("business"), max_length=32, choices=business_choices())
    level = models.CharField(verbose_name=_("customer level"), max_length=16, choices=CustomerLevel.choices)
    state = FSMField(verbose_name=_("state"), default=EntryState.WAITING, choices=EntryState.choices, protected=True)
    # Kept across overflow and moves: the customer's waited time is theirs.
    enqueued_at = models.DateTimeField(verbose_name=_("queued at"))
    priority_key = models.FloatField(verbose_name=_("priority key"), db_index=True)
    # Monotonically increasing (one database sequence) at enqueue; a move
    # takes a new one in the target queue: the tie-break of ``priority_key`` everywhere (the
    # dispatcher, positions, the customer's page), so that (key, ticket) is a
    # strict total order that the page can compare without the database.
    ticket = models.BigIntegerField(_("ticket"), default=0)
    agent = models.ForeignKey(
        AgentPresence, null=True, blank=True, on_delete=models.PROTECT, related_name="entries", verbose_name=_("agent")
    )
    offer_expires_at = models.DateTimeField(verbose_name=_("offer expires at"), null=True, blank=True)
    offers_made = models.PositiveSmallIntegerField(verbose_name=_("offers made"), default=0)
    # Set while the customer's page is gone; cleared when it comes back.
    disconnected_at = models.DateTimeField(verbose_name=_("disconnected at"), null=True, blank=True)
    # When the customer was last heard from: joining, the page's WebSocket
    # connecting, its heartbeats (written at most once per heartbeat
    # interval). A page silent for VISIT_HEARTBEAT_SILENCE_SECONDS is marked
    # disconnected by the dispatcher, e.g. after its Daphne died without
    # running ``disconnect`` (docs/queueing.md, "Dropped pages").
    last_seen_at = models.DateTimeField(_("last heard from"), default=timezone.now)
    answered_at = models.DateTimeField(verbose_name=_("answered at"), null=True, blank=True)
    ended_at = models.DateTimeField(verbose_name=_("ended at"), null=True, blank=True)
    end_reason = models.CharField(verbose_name=_("end reason"), max_length=32, choices=EndReason.choices, blank=True)
    overflowed_from = models.ForeignKey(
        ServiceQueue,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("overflowed from"),
    )

    class Meta:
        ordering = ("priority_key", "ticket")
        verbose_name = _("queue entry")
        verbose_name_plural = _("queue entries")
        indexes = (models.Index(fields=("queue", "state", "priority_key")),)
        constraints = (
            # Never two customers for one agent (R2.5), whatever the code does.
            models.UniqueConstraint(
                fields=("agent",),
                condition=models.Q(state__in=("offered", "connected")),
                name="one_live_entry_per_agent",
            ),
            models.CheckConstraint(
                condition=~models.Q(state__in=("offered", "connected")) | models.Q(agent__isnull=False),
                name="live_entry_has_agent",
            ),
            # Never two agents for one customer (R2.5).
            models.UniqueConstraint(
                fields=("visit",),
                condition=models.Q(state__in=("waiting", "offered", "connected")),
                name="one_live_entry_per_visit",
            ),
            # A customer is in at most one queue at a time, whatever visit they come with.
            models.UniqueConstraint(
                fields=("customer",),
                condition=models.Q(state__in=("waiting", "offered", "connected")),
                name="one_live_entry_per_customer",
            ),
        )

    def __str__(self) -> str:
        return f"{self.queue.code} entry {self.pk}"

    @transition(field=state, source=EntryState.WAITING, target=EntryState.OFFERED)
    def offer(self, agent: AgentPresence, expires_at: Any) -> None:
        self.agent = agent
        self.offer_expires_at = expires_at
        self.offers_made += 1

    @transition(field=state, source=EntryState.OFFERED, target=EntryState.WAITING)
    def back_to_front(self, front_key: float) -> None:
        """A declined or unanswered offer: back to the FRONT of the queue (R2.4)."""
        self.agent = None
        self.offer_expires_at = None
        self.priority_key = front_key

    @transition(field=state, source=EntryState.OFFERED, target=EntryState.CONNECTED)
    def connect(self, now: Any) -> None:
        self.answered_at = now
        self.offer_expires_at = None

    @transition(field=state, source=EntryState.CONNECTED, target=EntryState.SERVED)
    def finish(self, now: Any, reason: str = EndReason.ANSWERED) -> None:
        self.ended_at = now
        self.end_reason = reason

    @transition(field=state, source=EntryState.WAITING, target=EntryState.WAITING)
    def move(self, queue: ServiceQueue, priority_key: float, overflow: bool, ticket: int = 0) -> None:
        if overflow:
            self.overflowed_from = self.queue
        self.queue = queue
        self.priority_key = priority_key
        self.ticket = ticket

    @transition(field=state, source=[EntryState.WAITING, EntryState.OFFERED], target=EntryState.ABANDONED)
    def abandon(self, now: Any, reason: str) -> None:
        self.agent = None
        self.offer_expires_at = None
        self.ended_at = now
        self.end_reason = reason


class QueueSnapshot(models.Model):
    """A queue's figures at one moment, taken each minute by the dispatcher: the supervisors' charts."""

    queue = models.ForeignKey(ServiceQueue, on_delete=models.CASCADE, related_name="snapshots")
    taken_at = models.DateTimeField(db_index=True)
    waiting = models.PositiveIntegerField()
    longest_wait_seconds = models.FloatField()
    agents_available = models.PositiveIntegerField()
    agents_busy = models.PositiveIntegerField()

    class Meta:
        ordering = ("queue", "taken_at")
        constraints = (models.UniqueConstraint(fields=("queue", "taken_at"), name="one_snapshot_per_queue_and_time"),)

    def __str__(self) -> str:
        return f"{self.queue.code} @ {self.taken_at:%H:%M}"
