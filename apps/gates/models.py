"""The in-call gates 2–4 (R6.2–R6.4) and the state machine that enforces them (R6.5).

One ``GateProgress`` per visit (service), created when its first call
connects. The visit must pass the gates in order; nothing but the services in
``apps.gates.services`` moves the state, and each of them asks the state
machine first:

    identity ──passed──▶ face ──passed──▶ questions ──passed──▶ passed
        └───────────────────┴──────────────────┴──failed──▶ failed (final)

A transfer keeps the progress (it belongs to the visit, not to the call), so
a customer handed to another agent does not repeat a gate already passed.

Every try at a gate is a ``GateAttempt``. An attempt is written once when it
finishes and never again: its ``save`` refuses to change a finished row, and
the admin shows it read-only. Nobody, through any API or admin path, edits a
gate result.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from apps.calls.models import Call
from apps.recordings.models import Snapshot
from apps.visits.models import Visit


class Gate(models.TextChoices):
    IDENTITY = "identity", _("Gate 2: networked identity check")
    FACE = "face", _("Gate 3: face verification")
    QUESTIONS = "questions", _("Gate 4: private questions")


class GateState(models.TextChoices):
    IDENTITY = "identity", _("Waiting for the networked identity check")
    FACE = "face", _("Waiting for face verification")
    QUESTIONS = "questions", _("Waiting for the private questions")
    PASSED = "passed", _("All gates passed")
    FAILED = "failed", _("A gate failed")


_OPEN = [GateState.IDENTITY, GateState.FACE, GateState.QUESTIONS]


class GateProgress(ConcurrentTransitionMixin, models.Model):
    visit = models.OneToOneField(Visit, on_delete=models.PROTECT, related_name="gate_progress", verbose_name=_("visit"))
    state = FSMField(_("state"), default=GateState.IDENTITY, choices=GateState.choices, protected=True)
    started_at = models.DateTimeField(_("started at"))
    identity_passed_at = models.DateTimeField(verbose_name=_("identity check passed at"), null=True, blank=True)
    face_passed_at = models.DateTimeField(verbose_name=_("face check passed at"), null=True, blank=True)
    questions_passed_at = models.DateTimeField(verbose_name=_("questions passed at"), null=True, blank=True)
    failed_gate = models.CharField(_("failed gate"), max_length=16, choices=Gate.choices, blank=True)
    failure_reason = models.CharField(_("failure reason"), max_length=64, blank=True)
    failed_at = models.DateTimeField(verbose_name=_("failed at"), null=True, blank=True)
    # The photo on file returned by Gate 2, compared by Gate 3.
    registry_photo = models.FileField(verbose_name=_("registry photo"), upload_to="gates/registry/%Y/%m/", blank=True)

    class Meta:
        verbose_name = _("gate progress")
        verbose_name_plural = _("gate progress")

    def __str__(self) -> str:
        return f"gates of visit {self.visit_id}: {self.state}"

    # Transitions only change fields; services lock, save, audit and notify.

    @transition(field=state, source=GateState.IDENTITY, target=GateState.FACE)
    def identity_passed(self, *, now: Any) -> None:
        self.identity_passed_at = now

    @transition(field=state, source=GateState.FACE, target=GateState.QUESTIONS)
    def face_passed(self, *, now: Any) -> None:
        self.face_passed_at = now

    @transition(field=state, source=GateState.QUESTIONS, target=GateState.PASSED)
    def questions_passed(self, *, now: Any) -> None:
        self.questions_passed_at = now

    @transition(field=state, source=_OPEN, target=GateState.FAILED)
    def fail(self, *, gate: Gate, reason: str, now: Any) -> None:
        self.failed_gate = gate
        self.failure_reason = reason
        self.failed_at = now


class AttemptStatus(models.TextChoices):
    RUNNING = "running", _("Running")
    PASSED = "passed", _("Passed")
    FAILED = "failed", _("Failed")
    # The check could not be done (registry down, no face found): counts as
    # an attempt but neither passes nor fails the gate.
    ERROR = "error", _("Could not be completed")


class FinishedAttemptIsImmutable(Exception):
    pass


class FaceEmbeddingCacheEntry(models.Model):
    """Gate 3's embedding of a photo that comes back unchanged, kept so it is not embedded again.

    A cache, never evidence: the gate attempt keeps the scores. One row per
    ``scope``: ``registry_photo:customer:<pk>`` (a customer's photo on file at
    the registry, the same across their visits) or ``id_portrait:visit:<pk>``
    (the ID-card portrait of one visit, the same across live retakes). A row
    answers only for the photo whose content SHA-256 it holds, made by the
    pipeline it names: a changed photo (or engine) is a miss, and the new
    embedding replaces the row (apps/gates/face_embeddings.py).
    """

    scope = models.CharField(_("scope"), max_length=64, unique=True)
    content_sha256 = models.CharField(_("photo SHA-256"), max_length=64)
    pipeline = models.CharField(_("face pipeline"), max_length=32)
    vector = models.JSONField(_("embedding"))
    # The face box in the photo's pixels: [x, y, width, height].
    box = models.JSONField(_("face box"))
    # Indexed: the housekeeping round purges entries older than FACE_EMBEDDING_CACHE_DAYS.
    computed_at = models.DateTimeField(_("computed at"), db_index=True)

    class Meta:
        verbose_name = _("cached face embedding")
        verbose_name_plural = _("cached face embeddings")

    def __str__(self) -> str:
        return f"face embedding of {self.scope}"


class GateAttempt(models.Model):
    """One try at one gate, with what the check returned. Immutable once finished."""

    progress = models.ForeignKey(GateProgress, on_delete=models.PROTECT, related_name="attempts")
    gate = models.CharField(_("gate"), max_length=16, choices=Gate.choices)
    number = models.PositiveSmallIntegerField(_("attempt"))
    call = models.ForeignKey(Call, null=True, blank=True, on_delete=models.PROTECT, related_name="gate_attempts")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    status = models.CharField(_("status"), max_length=16, choices=AttemptStatus.choices, default=AttemptStatus.RUNNING)
    # match / mismatch / not_found / registry_timeout / below_threshold / no_face / wrong_answers …
    result_code = models.CharField(_("result"), max_length=32, blank=True)
    # Gate 3: distances and the threshold; Gate 4: questions asked and how many were right.
    scores = models.JSONField(_("scores"), default=dict, blank=True)
    reference = models.CharField(_("reference"), max_length=64, blank=True)
    snapshot = models.ForeignKey(Snapshot, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    started_at = models.DateTimeField(_("started at"))
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        ordering = ("progress", "started_at", "pk")
        verbose_name = _("gate attempt")
        verbose_name_plural = _("gate attempts")
        constraints = (
            models.UniqueConstraint(fields=("progress", "gate", "number"), name="gate_attempt_number_once"),
            # At most one check of a gate runs at a time for a visit: a
            # double-click or two agents cannot start two registry queries.
            models.UniqueConstraint(
                fields=("progress", "gate"),
                condition=models.Q(status="running"),
                name="one_running_attempt_per_gate",
            ),
        )

    def __str__(self) -> str:
        return f"{self.gate} attempt {self.number}: {self.status}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            stored = GateAttempt.objects.filter(pk=self.pk).values_list("status", flat=True).first()
            if stored is not None and stored != AttemptStatus.RUNNING:
                raise FinishedAttemptIsImmutable(f"gate attempt {self.pk} is finished and cannot change")
        super().save(*args, **kwargs)


class QuestionDraw(models.Model):
    """Gate 4's questions for one attempt: what the customer sees and, server-side only, the answers."""

    attempt = models.OneToOneField(GateAttempt, on_delete=models.PROTECT, related_name="question_draw")
    # [{"key": ..., "text": ..., "options": [...]}] — sent to the customer's page.
    questions = models.JSONField(default=list)
    # The index of the right option per question; never leaves the server.
    correct = models.JSONField(default=list)
    # The business's policy when drawn: a later policy change never moves a running attempt.
    allowed_wrong = models.PositiveSmallIntegerField(null=True, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("question draw")
        verbose_name_plural = _("question draws")

    def __str__(self) -> str:
        return f"questions of attempt {self.attempt_id}"


class AnswerSource(models.TextChoices):
    """Where a question's right answer comes from (apps/gates/questions.py knows how to read each)."""

    OPENING_BRANCH = "account.opening_branch", _("The branch where the account was opened")
    OPENING_YEAR = "account.opening_year", _("The year the account was opened")
    HOME_BRANCH = "customer.home_branch", _("The customer's home branch")
    HOME_CITY = "customer.home_city", _("The city of the customer's home branch")
    RECENT_COUNTERPARTY = "transactions.recent_counterparty", _("A payee of a recent payment (core banking)")
    RECENT_AMOUNT = "transactions.recent_amount", _("The amount band of the latest payment (core banking)")


class QuestionTemplate(models.Model):
    """One question of Gate 4's bank, maintained by the bank in the back office (R6.4).

    The text is the bank's own words, so it is stored (Chinese and English)
    rather than translated by gettext. What is asked is snapshotted into each
    ``QuestionDraw``: editing or retiring a template never changes evidence.
    """

    code = models.SlugField(_("code"), max_length=40, unique=True)
    text = models.CharField(_("question (Chinese)"), max_length=200)
    text_en = models.CharField(_("question (English)"), max_length=200)
    answer_source = models.CharField(_("answer source"), max_length=40, choices=AnswerSource.choices)
    # Relative chance of being drawn among the usable active templates.
    weight = models.PositiveSmallIntegerField(_("weight"), default=1)
    active = models.BooleanField(_("active"), default=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("question template")
        verbose_name_plural = _("question templates")
        ordering = ("code",)
        constraints = [models.CheckConstraint(condition=models.Q(weight__gte=1), name="question_weight_positive")]

    def __str__(self) -> str:
        return self.code


class QuestionPolicy(models.Model):
    """Per business: how many questions Gate 4 asks and how many may be answered wrong."""

    business_code = models.CharField(_("business"), max_length=32, unique=True)
    count = models.PositiveSmallIntegerField(_("questions asked"))
    max_wrong = models.PositiveSmallIntegerField(_("wrong answers allowed"), default=0)

    class Meta:
        verbose_name = _("question policy")
        verbose_name_plural = _("question policies")
        constraints = [
            models.CheckConstraint(condition=models.Q(count__gte=1, count__lte=10), name="question_policy_count_range"),
            models.CheckConstraint(
                condition=models.Q(max_wrong__lt=models.F("count")), name="question_policy_wrong_lt_count"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.business_code}: {self.count}/{self.max_wrong}"


class LivenessCheck(models.Model):
    """Gate 3's active liveness challenge for one face attempt (issue 14): what the customer was asked, when.

    The server draws the challenge, the customer's page shows it, and the
    server captures a burst from ``feed_id`` meanwhile; the result and every
    measure go into the attempt's ``scores["liveness"]`` (immutable with it).
    """

    attempt = models.OneToOneField(GateAttempt, on_delete=models.PROTECT, related_name="liveness_check")
    # {"steps": [{"action": "blink" | "turn_left" | "turn_right", "at": s, "window": s}], "seconds": s}
    challenge = models.JSONField(default=dict)
    feed_id = models.PositiveBigIntegerField(_("video feed"))
    issued_at = models.DateTimeField(_("issued at"))

    class Meta:
        verbose_name = _("liveness check")
        verbose_name_plural = _("liveness checks")

    def __str__(self) -> str:
        return f"liveness of attempt {self.attempt_id}"
