"""Gates 2–4 (R6.2–R6.4) and their enforcement (R6.5).

Each gate is started by a staff participant of the live call (or, for the
answers of Gate 4, by the customer on their own page); the checks that take
time (the registry, the face model) run in Celery and come back through a
``*_run`` service that applies the result under the progress row's lock only
if the attempt is still running (compare-and-set: a redelivered task changes
nothing). A definite failure ends the service: the progress fails, the
visit's outcome becomes ``gate_failed`` and the call ends. Nothing here lets
anyone override or edit a result.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from PIL import Image

from apps.audit.actions import AuditAction
from apps.audit.services import Actor, AnyActor, audit_record
from apps.calls.integrations.media_capture import CapturedFrame
from apps.calls.models import Call, CallEndReason, CallState, ParticipantRole
from apps.calls.services import call_end, call_live_for_staff, call_notify
from apps.common.errors import ApplicationError, NotAllowed, NotFound, ValidationFailed
from apps.common.fsm import fsm_step
from apps.common.images import ImageRejected, load_untrusted_image
from apps.common.locking import lock_object
from apps.common.transactions import enqueue_on_commit
from apps.customers.integrations.core_banking import CoreBankingError, Transaction, get_core_banking
from apps.gates.face_embeddings import face_embedding_get_or_compute, id_portrait_scope, registry_photo_scope
from apps.gates.integrations.face import FaceError, FaceModelUnavailable, get_face_engine
from apps.gates.integrations.identity_registry import RegistryError, get_identity_registry
from apps.gates.integrations.liveness import (
    BurstMeasure,
    Challenge,
    best_frame_index,
    challenge_draw,
    liveness_decide,
    thresholds_from_settings,
)
from apps.gates.models import (
    AnswerSource,
    AttemptStatus,
    Gate,
    GateAttempt,
    GateProgress,
    GateState,
    LivenessCheck,
    QuestionDraw,
    QuestionPolicy,
    QuestionTemplate,
)
from apps.gates.questions import DEFAULT_TEMPLATES, STATEMENT_DAYS, AskContext, QuestionBankTooSmall, questions_draw
from apps.gates.selectors import (
    citizen_on_file,
    question_policy_for,
    question_templates_active,
    visible_to_customer,
)
from apps.recordings.models import Snapshot
from apps.recordings.services.snapshots import CaptureFailed, snapshot_frames_capture, snapshot_store_frame
from apps.visits.models import Visit, VisitOutcome
from apps.visits.services import visit_close

logger = logging.getLogger(__name__)

REGISTRY = Actor.system("identity_registry")
FACE_ENGINE = Actor.system("face_engine")
GATE_DEADLINE = Actor.system("gate_check_deadline")


def _attempt_limit(gate: Gate) -> int:
    if gate == Gate.IDENTITY:
        return int(settings.GATE_IDENTITY_MAX_ATTEMPTS)
    if gate == Gate.FACE:
        return int(settings.GATE_FACE_MAX_ATTEMPTS)
    return 1


# --- Locks and checks ---------------------------------------------------------------------


def _no_questions() -> NotAllowed:
    return NotAllowed(_("There are no questions to answer now."), code="no_questions")


def _visit_not_found() -> NotFound:
    return NotFound(_("This visit does not exist."), code="visit_not_found")


def _progress_locked(visit: Visit, *, actor: AnyActor) -> GateProgress:
    """The visit's progress, created on first use, locked for the rest of the transaction."""
    progress, created = GateProgress.objects.get_or_create(visit=visit, defaults={"started_at": timezone.now()})
    if created:
        audit_record(actor=actor, action=AuditAction.GATES_STARTED, target=visit, data={"visit": visit.pk})
    return lock_object(GateProgress.objects, not_found=_visit_not_found, related=("visit",), pk=progress.pk)


def _out_of_order(progress: GateProgress, gate: str) -> NotAllowed:
    if progress.state == GateState.FAILED:
        return NotAllowed(_("A check has failed; this service has ended."), code="gate_failed")
    return NotAllowed(
        _("This check is not available now. The checks must be passed in order."),
        code="out_of_order",
        extra={"state": progress.state, "gate": str(gate)},
    )


def _step_refused(progress: GateProgress) -> NotAllowed:
    """The answer to a gate transition the state machine refuses (callers check the state first)."""
    return _out_of_order(progress, progress.state)


def _pass_transition(progress: GateProgress, gate: Gate) -> Callable[..., None]:
    """The transition that passes ``gate``, named here so every transition is visible to grep and mypy."""
    transitions: dict[Gate, Callable[..., None]] = {
        Gate.IDENTITY: progress.identity_passed,
        Gate.FACE: progress.face_passed,
        Gate.QUESTIONS: progress.questions_passed,
    }
    return transitions[gate]


def _start_attempt(
    progress: GateProgress,
    gate: Gate,
    *,
    call: Call,
    actor: User,
    snapshot: Snapshot | None = None,
) -> GateAttempt:
    if progress.state != gate:
        raise _out_of_order(progress, gate.value)
    attempts = progress.attempts.filter(gate=gate)
    if attempts.filter(status=AttemptStatus.RUNNING).exists():
        raise NotAllowed(_("This check is already running. Please wait for its result."), code="gate_check_running")
    number = attempts.count() + 1
    if number > _attempt_limit(gate):
        raise NotAllowed(_("No attempts are left for this check."), code="attempts_exhausted")
    attempt = GateAttempt.objects.create(
        progress=progress,
        gate=gate,
        number=number,
        call=call,
        requested_by=actor,
        snapshot=snapshot,
        started_at=timezone.now(),
    )
    audit_record(
        actor=actor,
        action=AuditAction.GATE_ATTEMPT_STARTED,
        target=progress.visit,
        data={"gate": gate.value, "attempt": number, "call": str(call.public_id)},
    )
    call_notify(call, "gates", gate=gate.value, status=AttemptStatus.RUNNING.value)
    return attempt


def _finish_attempt(
    attempt: GateAttempt,
    *,
    actor: AnyActor,
    status: AttemptStatus,
    result_code: str,
    scores: dict[str, Any] | None = None,
    reference: str = "",
) -> None:
    attempt.status = status
    attempt.result_code = result_code
    attempt.scores = scores or {}
    attempt.reference = reference
    attempt.finished_at = timezone.now()
    attempt.save()
    assert attempt.finished_at is not None
    audit_record(
        actor=actor,
        action=AuditAction.GATE_ATTEMPT_FINISHED,
        target=attempt.progress.visit,
        data={
            "gate": attempt.gate,
            "attempt": attempt.number,
            "status": status.value,
            "result": result_code,
            "scores": attempt.scores,
            "reference": reference,
            "seconds": round((attempt.finished_at - attempt.started_at).total_seconds(), 3),
        },
    )


def _gate_passed(progress: GateProgress, gate: Gate, *, actor: AnyActor, call: Call | None) -> None:
    now = timezone.now()
    fsm_step(_pass_transition(progress, gate), now=now, error=_step_refused)
    progress.save()
    audit_record(actor=actor, action=AuditAction.GATE_PASSED, target=progress.visit, data={"gate": gate.value})
    if progress.state == GateState.PASSED:
        audit_record(actor=actor, action=AuditAction.GATES_ALL_PASSED, target=progress.visit)
    if call is not None:
        call_notify(call, "gates", gate=gate.value, status=AttemptStatus.PASSED.value)


def _gate_failed(progress: GateProgress, gate: Gate, *, reason: str, actor: AnyActor, call: Call | None) -> None:
    """A definite failure ends the service (R6.2, R6.3): record, close the visit, end the call."""
    fsm_step(progress.fail, gate=gate, reason=reason, now=timezone.now(), error=_step_refused)
    progress.save()
    audit_record(
        actor=actor,
        action=AuditAction.GATE_FAILED,
        target=progress.visit,
        data={"gate": gate.value, "reason": reason},
    )
    visit_close(
        visit_id=progress.visit_id, actor=actor, outcome=VisitOutcome.GATE_FAILED, reason=f"{gate.value}:{reason}"
    )
    if call is not None:
        call_notify(call, "gates", gate=gate.value, status=AttemptStatus.FAILED.value, reason=reason)
    for live in Call.objects.filter(visit_id=progress.visit_id).exclude(state=CallState.ENDED):
        call_end(call_id=live.pk, actor=actor, reason=CallEndReason.GATE_FAILED, detail=f"{gate.value}:{reason}")


def _attempt_not_found() -> NotFound:
    return NotFound(_("This check does not exist."), code="gate_attempt_not_found")


def _running_attempt_locked(attempt_id: int) -> tuple[GateProgress, GateAttempt] | None:
    """Lock progress then attempt (always in that order); None if the attempt is no longer running."""
    progress_id = GateAttempt.objects.filter(pk=attempt_id).values_list("progress_id", flat=True).first()
    if progress_id is None:
        return None
    progress = lock_object(GateProgress.objects, not_found=_visit_not_found, related=("visit",), pk=progress_id)
    attempt = lock_object(GateAttempt.objects, not_found=_attempt_not_found, related=("call",), pk=attempt_id)
    if attempt.status != AttemptStatus.RUNNING:
        return None
    attempt.progress = progress
    return progress, attempt


def _error_or_exhausted(
    progress: GateProgress, attempt: GateAttempt, *, actor: AnyActor, code: str, reference: str = ""
) -> None:
    """The check could not be done: the attempt counts; the last one allowed fails the gate."""
    _finish_attempt(attempt, actor=actor, status=AttemptStatus.ERROR, result_code=code, reference=reference)
    gate = Gate(attempt.gate)
    if attempt.number >= _attempt_limit(gate) and progress.state == gate:
        _gate_failed(progress, gate, reason="attempts_exhausted", actor=actor, call=attempt.call)
    elif attempt.call is not None:
        call_notify(attempt.call, "gates", gate=gate.value, status=AttemptStatus.ERROR.value, reason=code)


def gate_attempt_error(*, attempt_id: int, actor: AnyActor, code: str) -> GateAttempt | None:
    """End a check that is still running as an error (``code``): its task broke, or it passed its deadline.

    Like any error it counts as an attempt, so the agent may try again within
    the gate's limit, and the last attempt allowed fails the gate. Does
    nothing to an attempt that has finished meanwhile.
    """
    with transaction.atomic():
        locked = _running_attempt_locked(attempt_id)
        if locked is None:
            return GateAttempt.objects.filter(pk=attempt_id).first()
        progress, attempt = locked
        _error_or_exhausted(progress, attempt, actor=actor, code=code)
        return attempt


def gate_attempts_expire(*, now: datetime | None = None) -> int:
    """End the registry and face checks still running past GATE_CHECK_DEADLINE_SECONDS (``check_timed_out``).

    Their worker died or their message was lost; the broker may still
    deliver it, and then the check finds the attempt finished and changes
    nothing. Gate 4's questions wait for the customer, not a worker, and
    are left to the call's own deadlines. Called on every dispatcher round
    (``apps.common.signals.housekeeping_due``); returns how many ended.
    """
    now = now or timezone.now()
    overdue = GateAttempt.objects.filter(
        status=AttemptStatus.RUNNING,
        gate__in=(Gate.IDENTITY, Gate.FACE),
        started_at__lt=now - timedelta(seconds=settings.GATE_CHECK_DEADLINE_SECONDS),
    ).values_list("pk", flat=True)
    ended = 0
    for attempt_id in list(overdue):
        attempt = gate_attempt_error(attempt_id=attempt_id, actor=GATE_DEADLINE, code="check_timed_out")
        ended += int(attempt is not None and attempt.result_code == "check_timed_out")
    return ended


# --- Gate 2: networked identity check ------------------------------------------------------


@transaction.atomic(durable=True)
def gate_identity_check_start(*, actor: User, call_id: int) -> GateAttempt:
    """The agent asks the registry (联网核查); the answer fills in by itself (Celery)."""
    from apps.gates.tasks import gate_identity_check_task

    call = call_live_for_staff(actor=actor, call_id=call_id)
    progress = _progress_locked(call.visit, actor=actor)
    attempt = _start_attempt(progress, Gate.IDENTITY, call=call, actor=actor)
    enqueue_on_commit(gate_identity_check_task, attempt.pk)
    return attempt


def gate_identity_check_run(*, attempt_id: int) -> GateAttempt | None:
    """Ask the registry for one attempt and apply its answer. Safe to run twice."""
    attempt = GateAttempt.objects.select_related("progress__visit__customer").filter(pk=attempt_id).first()
    if attempt is None or attempt.status != AttemptStatus.RUNNING:
        return attempt
    customer = attempt.progress.visit.customer
    assert customer is not None
    # The registry is slow (and may time out): asked outside any transaction.
    failure: RegistryError | None = None
    try:
        result = get_identity_registry(lookup=citizen_on_file).verify(name=customer.name, id_number=customer.id_number)
    except RegistryError as error:
        failure = error
    with transaction.atomic(durable=True):
        locked = _running_attempt_locked(attempt_id)
        if locked is None:
            return GateAttempt.objects.get(pk=attempt_id)
        progress, attempt = locked
        if failure is not None:
            _error_or_exhausted(progress, attempt, actor=REGISTRY, code=failure.code)
            return attempt
        if result.outcome == "match":
            assert result.photo is not None
            progress.registry_photo.save(
                f"{progress.visit.public_id}-{attempt.number}.jpg", ContentFile(result.photo), save=False
            )
            _finish_attempt(
                attempt, actor=REGISTRY, status=AttemptStatus.PASSED, result_code="match", reference=result.reference
            )
            _gate_passed(progress, Gate.IDENTITY, actor=REGISTRY, call=attempt.call)
        else:
            _finish_attempt(
                attempt,
                actor=REGISTRY,
                status=AttemptStatus.FAILED,
                result_code=result.outcome,
                reference=result.reference,
            )
            _gate_failed(progress, Gate.IDENTITY, reason=result.outcome, actor=REGISTRY, call=attempt.call)
        return attempt


# --- Gate 3: face verification -------------------------------------------------------------


@transaction.atomic(durable=True)
def gate_face_verify_start(*, actor: User, call_id: int, snapshot_public_id: str) -> GateAttempt:
    """Compare a snapshot of this service's customer with the ID-card portrait and the registry photo (Celery)."""
    from apps.gates.tasks import gate_face_verify_task

    call = call_live_for_staff(actor=actor, call_id=call_id)
    if settings.GATE_FACE_LIVENESS_REQUIRED:
        raise NotAllowed(
            _("Face verification needs the liveness check: start it without choosing a snapshot."),
            code="liveness_required",
        )
    snapshot = Snapshot.objects.filter(public_id=snapshot_public_id, call__visit_id=call.visit_id).first()
    if snapshot is None:
        raise ValidationFailed(_("Please choose a snapshot of this customer taken in this service."), code="snapshot")
    progress = _progress_locked(call.visit, actor=actor)
    attempt = _start_attempt(progress, Gate.FACE, call=call, actor=actor, snapshot=snapshot)
    # The snapshot becomes the service's "live image" (R5.1); a service row, not evidence, changes.
    Snapshot.objects.filter(pk=snapshot.pk).update(chosen_for_face=True)
    audit_record(
        actor=actor,
        action=AuditAction.SNAPSHOT_CHOSEN_FOR_FACE,
        target=snapshot,
        data={"snapshot": str(snapshot.public_id), "sha256": snapshot.sha256, "attempt": attempt.number},
    )
    enqueue_on_commit(gate_face_verify_task, attempt.pk)
    return attempt


@dataclass(frozen=True)
class _FaceOutcome:
    status: AttemptStatus
    code: str
    scores: dict[str, Any]


class _UnreadablePhoto(FaceError):
    """A photo missing or not decodable as an image (before any face is looked for)."""


def _read_photo(field: Any, what: str) -> bytes:
    if not field:
        raise _UnreadablePhoto(f"no_{what}")
    with field.open("rb") as handle:
        data: bytes = handle.read()
        return data


def _decode_photo(data: bytes, what: str) -> Image.Image:
    try:
        return load_untrusted_image(data)
    except ImageRejected as rejected:
        error = _UnreadablePhoto(f"bad_{what}")
        error.photo = what
        raise error from rejected


def _face_compare(attempt: GateAttempt) -> _FaceOutcome:
    """Compare the three photos with the engine's rule, naming which one had no usable face."""
    progress = attempt.progress
    assert attempt.snapshot is not None
    visit = progress.visit
    photos = {}
    for what, field in (
        ("live", attempt.snapshot.image),
        ("id_portrait", visit.verification.id_card_portrait),
        ("registry_photo", progress.registry_photo),
    ):
        try:
            photos[what] = _read_photo(field, what)
        except FaceError as error:
            return _FaceOutcome(AttemptStatus.ERROR, f"{what}:{error}", {})
    engine = get_face_engine()
    try:
        live = _decode_photo(photos["live"], "live")
        # The ID-card portrait (per visit) and the registry photo (per
        # customer) come back unchanged across retakes and visits: their
        # embeddings are cached, keyed by the photo's content hash.
        id_portrait, registry_photo = (
            face_embedding_get_or_compute(
                scope=scope,
                photo_bytes=photos[what],
                decode=partial(_decode_photo, photos[what], what),
                engine=engine,
                photo=what,
            )
            for what, scope in (
                ("id_portrait", id_portrait_scope(visit_id=visit.pk)),
                ("registry_photo", registry_photo_scope(customer_id=visit.customer_id, visit_id=visit.pk)),
            )
        )
        verdict = engine.verify_three(live, id_portrait, registry_photo)
    except _UnreadablePhoto as error:
        return _FaceOutcome(AttemptStatus.ERROR, f"{error.photo}:{error}", {})
    except FaceError as error:
        return _FaceOutcome(AttemptStatus.ERROR, f"{error.photo}:{type(error).__name__}", {})
    scores = {
        **{name: round(value, 4) for name, value in verdict.scores.items()},
        "threshold": verdict.threshold,
        "thresholds": verdict.thresholds,
    }
    if verdict.passed:
        return _FaceOutcome(AttemptStatus.PASSED, "match", scores)
    return _FaceOutcome(AttemptStatus.FAILED, "below_threshold", scores)


def gate_face_verify_run(*, attempt_id: int) -> GateAttempt | None:
    """Run the face model for one attempt and apply the verdict. Safe to run twice and concurrently."""
    attempt = GateAttempt.objects.select_related("progress__visit", "snapshot").filter(pk=attempt_id).first()
    if attempt is None or attempt.status != AttemptStatus.RUNNING:
        return attempt
    try:
        outcome = _face_compare(attempt)
    except FaceModelUnavailable:
        # A deployment fault, not the customer's: logged loudly, the attempt
        # ends as an error so the agent is not left waiting forever.
        logger.exception("face model unavailable for gate attempt %s", attempt_id)
        outcome = _FaceOutcome(AttemptStatus.ERROR, "face_model_unavailable", {})
    with transaction.atomic(durable=True):
        locked = _running_attempt_locked(attempt_id)
        if locked is None:
            return GateAttempt.objects.get(pk=attempt_id)
        progress, attempt = locked
        if outcome.status == AttemptStatus.ERROR:
            _error_or_exhausted(progress, attempt, actor=FACE_ENGINE, code=outcome.code)
            return attempt
        _finish_attempt(
            attempt, actor=FACE_ENGINE, status=outcome.status, result_code=outcome.code, scores=outcome.scores
        )
        if outcome.status == AttemptStatus.PASSED:
            _gate_passed(progress, Gate.FACE, actor=FACE_ENGINE, call=attempt.call)
        else:
            _gate_failed(progress, Gate.FACE, reason=outcome.code, actor=FACE_ENGINE, call=attempt.call)
        return attempt


# --- Gate 3 with active liveness (issue 14) ----------------------------------------------------


def _liveness_refused(message: Any, code: str) -> NotAllowed:
    return NotAllowed(message, code=code)


@transaction.atomic(durable=True)
def gate_face_liveness_start(*, actor: User, call_id: int) -> GateAttempt:
    """Gate 3 as the bank relies on it: a random challenge on the customer's page, a burst the server captures.

    The attempt counts against GATE_FACE_MAX_ATTEMPTS like any face attempt
    (every try audited). The challenge goes to the customer's page (visit
    event ``liveness``); the burst, the landmarks' decision and the face
    comparison of the burst's best frame run in Celery
    (``gate_face_liveness_run``).
    """
    from apps.gates.tasks import gate_face_liveness_task

    call = call_live_for_staff(actor=actor, call_id=call_id)
    customer = call.participants.filter(role=ParticipantRole.CUSTOMER).first()
    if customer is None or customer.janus_feed_id is None or customer.publishing_since is None:
        raise _liveness_refused(
            _("The customer's video is not being received. Please wait until their camera is on."),
            "customer_not_publishing",
        )
    progress = _progress_locked(call.visit, actor=actor)
    attempt = _start_attempt(progress, Gate.FACE, call=call, actor=actor)
    challenge = challenge_draw(
        steps=int(settings.LIVENESS_STEPS),
        window=float(settings.LIVENESS_STEP_SECONDS),
        first_delay=(float(settings.LIVENESS_FIRST_DELAY_SECONDS[0]), float(settings.LIVENESS_FIRST_DELAY_SECONDS[1])),
        gap=(float(settings.LIVENESS_GAP_SECONDS[0]), float(settings.LIVENESS_GAP_SECONDS[1])),
    )
    LivenessCheck.objects.create(
        attempt=attempt, challenge=challenge.as_dict(), feed_id=customer.janus_feed_id, issued_at=timezone.now()
    )
    audit_record(
        actor=actor,
        action=AuditAction.GATE_LIVENESS_CHALLENGED,
        target=progress.visit,
        data={
            "attempt": attempt.number,
            "call": str(call.public_id),
            "feed": customer.janus_feed_id,
            "challenge": challenge.as_dict(),
        },
    )
    call_notify(call, "liveness", attempt=attempt.number, challenge=challenge.as_dict())
    enqueue_on_commit(gate_face_liveness_task, attempt.pk)
    return attempt


@dataclass
class _LivenessOutcome:
    status: AttemptStatus
    code: str
    scores: dict[str, Any]
    snapshot: Snapshot | None = None


def _liveness_check(attempt: GateAttempt) -> _LivenessOutcome:
    """Capture the burst, decide liveness on the landmarks, compare the best frame's face (replay included)."""
    check = attempt.liveness_check
    call = attempt.call
    assert call is not None
    challenge = Challenge.from_dict(check.challenge)
    slack = float(settings.LIVENESS_SLACK_SECONDS)
    fps = max(1, int(settings.LIVENESS_CAPTURE_FPS))
    # The burst runs until the challenge's last window closes (from the moment it was issued).
    remaining = challenge.seconds + slack - (timezone.now() - check.issued_at).total_seconds()
    # Frames are measured as they arrive (this thread) while the capture thread
    # receives the next ones: when the last window closes, one frame is left.
    arrived: queue.Queue[CapturedFrame] = queue.Queue()
    burst = BurstMeasure()
    measured_cpu = 0.0

    def measure_waiting(wait: float) -> None:
        nonlocal measured_cpu
        try:
            frame = arrived.get(timeout=wait)
        except queue.Empty:
            return
        started = time.thread_time()
        burst.add((frame.captured_at - check.issued_at).total_seconds(), frame.image)
        measured_cpu += time.thread_time() - started

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="liveness-capture") as pool:
        capture = pool.submit(
            snapshot_frames_capture,
            call=call,
            feed_id=check.feed_id,
            count=int((challenge.seconds + slack) * fps) + fps,
            interval=1.0 / fps,
            duration=max(remaining, 1.0),
            timeout=max(remaining, 1.0) + float(settings.MEDIA_CAPTURE_TIMEOUT_SECONDS),
            on_frame=arrived.put,
        )
        while not capture.done():
            measure_waiting(0.05)
        try:
            frames = capture.result()
        except CaptureFailed:
            return _LivenessOutcome(AttemptStatus.ERROR, "capture_failed", {})
    burst_ended = time.monotonic()
    started = time.thread_time()
    while not arrived.empty():
        measure_waiting(0)
    samples = burst.samples
    result = liveness_decide(samples, challenge, thresholds_from_settings())
    best = best_frame_index(samples)
    liveness: dict[str, Any] = {
        "passed": result.passed,
        "reasons": result.reasons,
        **result.measures,
        "landmark_cpu_seconds": round(measured_cpu + time.thread_time() - started, 3),
        # CPU of this thread only (the capture thread decodes meanwhile); and from the end
        # of the burst to the landmarks' decision (the face comparison follows).
        "decision_seconds": round(time.monotonic() - burst_ended, 3),
    }
    if best is None:
        liveness["passed"] = False
        return _LivenessOutcome(AttemptStatus.ERROR, f"liveness:{result.reasons[0]}", {"liveness": liveness})
    try:
        snapshot = snapshot_store_frame(actor=attempt.requested_by, call_id=call.pk, frame=frames[best])  # type: ignore[arg-type]
    except ApplicationError as error:
        return _LivenessOutcome(AttemptStatus.ERROR, f"capture_failed:{error.code}", {"liveness": liveness})
    attempt.snapshot = snapshot
    face = _face_compare(attempt)
    scores = {**face.scores, "liveness": liveness}
    distances = [face.scores[name] for name in ("live_vs_registry", "live_vs_id") if name in face.scores]
    if distances and min(distances) < float(settings.LIVENESS_REPLAY_MAX_DISTANCE):
        # The "live" face is the registry photo or the ID portrait itself, played to the camera.
        liveness["passed"] = False
        liveness["reasons"] = [*result.reasons, "replayed_known_image"]
        return _LivenessOutcome(AttemptStatus.FAILED, "replayed_known_image", scores, snapshot)
    if not result.passed:
        return _LivenessOutcome(AttemptStatus.ERROR, f"liveness:{result.reasons[0]}", scores, snapshot)
    return _LivenessOutcome(face.status, face.code, scores, snapshot)


def gate_face_liveness_run(*, attempt_id: int) -> GateAttempt | None:
    """Run one liveness attempt and apply it. Safe to run twice: only a running attempt changes.

    A failed challenge or an unusable burst is an error the agent may retry
    (within GATE_FACE_MAX_ATTEMPTS; the last one fails the gate); a replayed
    known image or a face that does not match is definitive and ends the service.
    """
    attempt = (
        GateAttempt.objects.select_related("progress__visit", "call", "liveness_check", "requested_by")
        .filter(pk=attempt_id)
        .first()
    )
    if attempt is None or attempt.status != AttemptStatus.RUNNING:
        return attempt
    try:
        outcome = _liveness_check(attempt)
    except FaceModelUnavailable:
        logger.exception("face or landmark model unavailable for gate attempt %s", attempt_id)
        outcome = _LivenessOutcome(AttemptStatus.ERROR, "face_model_unavailable", {})
    with transaction.atomic(durable=True):
        locked = _running_attempt_locked(attempt_id)
        if locked is None:
            return GateAttempt.objects.get(pk=attempt_id)
        progress, attempt = locked
        if outcome.snapshot is not None:
            attempt.snapshot = outcome.snapshot
            Snapshot.objects.filter(pk=outcome.snapshot.pk).update(chosen_for_face=True)
            audit_record(
                actor=FACE_ENGINE,
                action=AuditAction.SNAPSHOT_CHOSEN_FOR_FACE,
                target=outcome.snapshot,
                data={
                    "snapshot": str(outcome.snapshot.public_id),
                    "sha256": outcome.snapshot.sha256,
                    "attempt": attempt.number,
                    "feed": outcome.snapshot.feed_id,
                },
            )
        if outcome.status == AttemptStatus.ERROR:
            _finish_attempt(
                attempt, actor=FACE_ENGINE, status=AttemptStatus.ERROR, result_code=outcome.code, scores=outcome.scores
            )
            gate = Gate.FACE
            if attempt.number >= _attempt_limit(gate) and progress.state == gate:
                _gate_failed(progress, gate, reason="attempts_exhausted", actor=FACE_ENGINE, call=attempt.call)
            elif attempt.call is not None:
                call_notify(
                    attempt.call, "gates", gate=gate.value, status=AttemptStatus.ERROR.value, reason=outcome.code
                )
            return attempt
        _finish_attempt(
            attempt, actor=FACE_ENGINE, status=outcome.status, result_code=outcome.code, scores=outcome.scores
        )
        if outcome.status == AttemptStatus.PASSED:
            _gate_passed(progress, Gate.FACE, actor=FACE_ENGINE, call=attempt.call)
        else:
            _gate_failed(progress, Gate.FACE, reason=outcome.code, actor=FACE_ENGINE, call=attempt.call)
        return attempt


# --- Gate 4: private questions ---------------------------------------------------------------


def _statement_for(account_number: str) -> list[Transaction] | None:
    """The account's recent statement from core banking, or None if it cannot be had now.

    Asked before any lock is taken (core banking may take seconds); without it
    the draw simply uses the questions that need no transactions.
    """
    try:
        return get_core_banking().account_transactions(account_number=account_number, days=STATEMENT_DAYS)
    except CoreBankingError as exc:
        logger.warning("Gate 4: no statement for the draw (%s); drawing without transaction questions", exc.code)
        return None


def gate_questions_draw(*, actor: User, call_id: int) -> GateAttempt:
    """Draw the questions; they appear on the customer's own page (never the answers on the agent's)."""
    visit = call_live_for_staff(actor=actor, call_id=call_id).visit
    statement = _statement_for(visit.account.number) if visit.account is not None else None
    with transaction.atomic(durable=True):
        call = call_live_for_staff(actor=actor, call_id=call_id)
        progress = _progress_locked(call.visit, actor=actor)
        visit = progress.visit
        if progress.state == Gate.QUESTIONS and (visit.customer is None or visit.account is None):
            raise NotAllowed(_("This service has no customer account to ask about."), code="no_account")
        count, allowed_wrong = question_policy_for(business_code=visit.business_code)
        attempt = _start_attempt(progress, Gate.QUESTIONS, call=call, actor=actor)
        assert visit.customer is not None and visit.account is not None
        context = AskContext(
            customer=visit.customer,
            account=visit.account,
            statement=statement,
            visible=visible_to_customer(visit=visit),
        )
        try:
            drawn = questions_draw(templates=question_templates_active(), context=context, count=count)
        except QuestionBankTooSmall as exc:
            # Nothing is written: the agent hears why, the bank must add questions.
            transaction.set_rollback(True)
            raise NotAllowed(
                _("The question bank has too few questions for this customer (%(usable)d of %(needed)d).")
                % {"usable": exc.usable, "needed": exc.needed},
                code="question_bank_too_small",
            ) from exc
        QuestionDraw.objects.create(
            attempt=attempt,
            questions=[
                {"code": q.code, "text": q.text, "text_en": q.text_en, "source": q.source, "options": q.options}
                for q in drawn
            ],
            correct=[question.correct for question in drawn],
            allowed_wrong=allowed_wrong,
        )
        return attempt


def gate_questions_answer(*, visit_id: int, answers: list[int]) -> GateAttempt:
    """The customer's answers, from their own page: checked here, pass or fail per policy."""
    with transaction.atomic(durable=True):
        progress = lock_object(
            GateProgress.objects, not_found=_no_questions, related=("visit__customer",), visit_id=visit_id
        )
        if progress.state != GateState.QUESTIONS:
            raise _no_questions()
        attempt = lock_object(
            GateAttempt.objects,
            not_found=_no_questions,
            related=("call", "question_draw"),
            progress=progress,
            gate=Gate.QUESTIONS,
            status=AttemptStatus.RUNNING,
        )
        attempt.progress = progress
        draw = attempt.question_draw
        if not isinstance(answers, list) or len(answers) != len(draw.questions):
            raise ValidationFailed(_("Please answer every question."), code="answers_incomplete")
        for answer, question in zip(answers, draw.questions, strict=True):
            if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < len(question["options"]):
                raise ValidationFailed(_("Please choose one of the options for every question."), code="answer")
        wrong = sum(1 for answer, right in zip(answers, draw.correct, strict=True) if answer != right)
        allowed_wrong = draw.allowed_wrong if draw.allowed_wrong is not None else int(settings.GATE_QUESTIONS_MAX_WRONG)
        passed = wrong <= allowed_wrong
        customer = progress.visit.customer
        actor: AnyActor = customer.as_audit_actor() if customer is not None else Actor.system("customer")
        draw.answered_at = timezone.now()
        draw.save(update_fields=["answered_at"])
        _finish_attempt(
            attempt,
            actor=actor,
            status=AttemptStatus.PASSED if passed else AttemptStatus.FAILED,
            result_code="answers_right" if passed else "wrong_answers",
            scores={"asked": len(draw.correct), "wrong": wrong, "allowed_wrong": allowed_wrong},
        )
        if passed:
            _gate_passed(progress, Gate.QUESTIONS, actor=actor, call=attempt.call)
        else:
            _gate_failed(progress, Gate.QUESTIONS, reason="wrong_answers", actor=actor, call=attempt.call)
        return attempt


# --- R6.5: no business operation before every gate passed -----------------------------------


def gates_require_passed(*, visit_id: int, actor: AnyActor, operation: str) -> GateProgress:
    """Raise ``gates_not_passed`` unless all four gates passed for this service.

    Gate 1 is passed by construction (a visit reaches a call only from
    ``queue_ready``); gates 2–4 by the progress' state. A refusal is
    audited in its own transaction, before the error propagates, so the
    record survives the caller's rollback.
    """
    progress = GateProgress.objects.filter(visit_id=visit_id).first()
    if progress is not None and progress.state == GateState.PASSED:
        return progress
    with transaction.atomic(durable=True):
        audit_record(
            actor=actor,
            action=AuditAction.GATES_OUT_OF_ORDER,
            target=Visit.objects.get(pk=visit_id),
            data={"operation": operation, "state": progress.state if progress else "not_started"},
        )
    raise NotAllowed(
        _("This business cannot be done before every identity check has passed."),
        code="gates_not_passed",
        extra={"state": progress.state if progress else "not_started"},
    )


# --- Gate 4's question bank, maintained by the bank --------------------------------------


@transaction.atomic
def question_template_save(
    *,
    actor: AnyActor,
    code: str,
    text: str,
    text_en: str,
    answer_source: str,
    weight: int = 1,
    active: bool = True,
) -> QuestionTemplate:
    """Add or change one question of the bank (retiring is ``active=False``; rows are never deleted)."""
    if answer_source not in AnswerSource.values:
        raise ValidationFailed(_("Unknown answer source."), code="unknown_answer_source")
    template = QuestionTemplate.objects.select_for_update().filter(code=code).first()
    created = template is None
    template = template or QuestionTemplate(code=code)
    values = {"text": text.strip(), "text_en": text_en.strip(), "answer_source": answer_source, "weight": weight}
    values["active"] = active
    changed = sorted(field for field, value in values.items() if getattr(template, field) != value)
    if not created and not changed:
        return template
    for field, value in values.items():
        setattr(template, field, value)
    template.full_clean()
    template.save()
    audit_record(
        actor=actor,
        action=AuditAction.QUESTION_TEMPLATE_SAVED,
        target=template,
        data={"code": code, "created": created, "changed": changed, "active": active, "source": answer_source},
    )
    return template


def question_bank_install_defaults(*, actor: AnyActor) -> int:
    """Add the starting questions the bank does not have yet (by code); retired ones stay retired."""
    have = set(QuestionTemplate.objects.values_list("code", flat=True))
    added = 0
    for code, text, text_en, source in DEFAULT_TEMPLATES:
        if code not in have:
            question_template_save(actor=actor, code=code, text=text, text_en=text_en, answer_source=source)
            added += 1
    return added


@transaction.atomic
def question_policy_set(*, actor: AnyActor, business_code: str, count: int, max_wrong: int) -> QuestionPolicy:
    """How many questions Gate 4 asks for a business, and how many may be wrong."""
    if not 1 <= count <= 10 or not 0 <= max_wrong < count:
        raise ValidationFailed(
            _("Ask between 1 and 10 questions, and allow fewer wrong answers than questions."), code="question_policy"
        )
    policy = QuestionPolicy.objects.select_for_update().filter(business_code=business_code).first()
    policy = policy or QuestionPolicy(business_code=business_code, count=count)
    before = (policy.count, policy.max_wrong) if policy.pk else None
    policy.count, policy.max_wrong = count, max_wrong
    policy.full_clean()
    policy.save()
    audit_record(
        actor=actor,
        action=AuditAction.QUESTION_POLICY_SAVED,
        target=policy,
        data={"business": business_code, "count": count, "max_wrong": max_wrong, "before": before},
    )
    return policy
