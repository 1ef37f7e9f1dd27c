"""Call recordings after the call: post-processing state and every file's evidence hash (R3.2), snapshots (R5).

A ``Recording`` is the post-processing of one call. Its ``state`` moves
pending → processing → done (or failed; a failed one can be put back to
pending and re-run). Transitions only change fields; the services in
``apps.recordings.services`` (one module per topic) lock, save and audit.

A ``RecordingFile`` is one file with its SHA-256: the originals Janus wrote
(``original_mjr``, an absolute path on the media disk: post-processing never
moves or deletes them) and the outputs (a name in Django's default storage).
After the retention period of a closed service the files themselves are
removed; the rows (with their hashes) stay, marked ``purged_at``.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from apps.calls.models import Call, CallParticipant


class RecordingState(models.TextChoices):
    PENDING = "pending", _("Waiting for post-processing")
    PROCESSING = "processing", _("Being processed")
    DONE = "done", _("Processed")
    FAILED = "failed", _("Post-processing failed")


class RecordingFileKind(models.TextChoices):
    ORIGINAL_MJR = "original_mjr", _("Original Janus recording")
    PARTICIPANT_AUDIO = "participant_audio", _("Participant audio")
    PARTICIPANT_VIDEO = "participant_video", _("Participant video")
    PARTICIPANT_MUXED = "participant_muxed", _("Participant audio and video")
    COMPOSITE = "composite", _("Evidence file (all participants)")


class Recording(ConcurrentTransitionMixin, models.Model):
    call = models.OneToOneField(Call, on_delete=models.PROTECT, related_name="recording", verbose_name=_("call"))
    state = FSMField(_("state"), default=RecordingState.PENDING, choices=RecordingState.choices, protected=True)
    # Incremented each time processing (re)starts: only the newest attempt may
    # report progress or finish (compare-and-set), so a redelivered task that
    # overlaps an older one cannot mix their files.
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    progress = models.PositiveSmallIntegerField(_("progress (%)"), default=0)
    error = models.TextField(_("error"), blank=True)
    duration_seconds = models.FloatField(_("duration (s)"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    # Pending (waiting for Janus to close the files): since when, how many
    # times the sweeper queued it again and when it looks next (backoff,
    # RECORDINGS_PENDING_RETRY_SECONDS / RECORDINGS_PENDING_MAX_WAIT_SECONDS).
    pending_since = models.DateTimeField(_("pending since"), default=timezone.now)
    pending_checks = models.PositiveSmallIntegerField(verbose_name=_("pending checks"), default=0)
    next_check_at = models.DateTimeField(verbose_name=_("next check at"), null=True, blank=True)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-pk")
        verbose_name = _("recording")
        verbose_name_plural = _("recordings")
        permissions = (
            ("play_recording", _("Can play and download call recordings")),
            ("reprocess_recording", _("Can re-run the post-processing of a recording")),
        )

    def __str__(self) -> str:
        return gettext("Recording of call %(call)s") % {"call": self.call_id}

    # From processing too: a worker that died mid-way leaves the row
    # processing and the broker redelivers the task.
    @transition(
        field=state, source=[RecordingState.PENDING, RecordingState.PROCESSING], target=RecordingState.PROCESSING
    )
    def start(self, *, now: Any) -> None:
        self.attempts += 1
        self.progress = 0
        self.error = ""
        self.started_at = now
        self.finished_at = None

    @transition(field=state, source=RecordingState.PROCESSING, target=RecordingState.DONE)
    def finish(self, *, now: Any, duration_seconds: float | None) -> None:
        self.progress = 100
        self.duration_seconds = duration_seconds
        self.finished_at = now

    @transition(field=state, source=[RecordingState.PENDING, RecordingState.PROCESSING], target=RecordingState.FAILED)
    def fail(self, *, now: Any, error: str) -> None:
        self.error = error
        self.finished_at = now

    @transition(field=state, source=RecordingState.FAILED, target=RecordingState.PENDING)
    def retry(self, *, now: Any) -> None:
        self.progress = 0
        self.pending_since = now
        self.pending_checks = 0
        self.next_check_at = None


class RecordingFile(models.Model):
    recording = models.ForeignKey(
        Recording, on_delete=models.PROTECT, related_name="files", verbose_name=_("recording")
    )
    kind = models.CharField(_("kind"), max_length=24, choices=RecordingFileKind.choices)
    participant = models.ForeignKey(
        CallParticipant,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="recording_files",
        verbose_name=_("participant"),
    )
    # Janus' feed id for per-participant files (a participant who rejoined has several feeds).
    feed_id = models.PositiveBigIntegerField(verbose_name=_("feed ID"), null=True, blank=True)
    # Originals: absolute path where Janus wrote them. Outputs: name in the default storage.
    path = models.CharField(_("path"), max_length=500)
    in_storage = models.BooleanField(verbose_name=_("in storage"), default=True)
    size_bytes = models.PositiveBigIntegerField(_("size (bytes)"))
    sha256 = models.CharField(_("SHA-256"), max_length=64)
    duration_seconds = models.FloatField(_("duration (s)"), null=True, blank=True)
    # First packet written (µs since epoch, from the Janus header), for originals.
    first_write_us = models.PositiveBigIntegerField(verbose_name=_("first write (µs)"), null=True, blank=True)
    created_at = models.DateTimeField(verbose_name=_("created at"), auto_now_add=True)
    # Set when the retention period removed the file itself (recording_file_purge):
    # the row, its hash and its audit records stay as the evidence that it existed.
    purged_at = models.DateTimeField(_("removed at"), null=True, blank=True)

    class Meta:
        ordering = ("recording", "kind", "pk")
        verbose_name = _("recording file")
        verbose_name_plural = _("recording files")
        constraints = (models.UniqueConstraint(fields=("recording", "path"), name="recording_file_path_once"),)

    def __str__(self) -> str:
        return f"{self.kind} {self.path}"


class Snapshot(models.Model):
    """A frame of the customer's video, taken by the server from Janus when staff in the call asked (R5)."""

    public_id = models.UUIDField(verbose_name=_("public ID"), unique=True, editable=False)
    call = models.ForeignKey(Call, on_delete=models.PROTECT, related_name="snapshots", verbose_name=_("call"))
    participant = models.ForeignKey(
        CallParticipant, on_delete=models.PROTECT, related_name="snapshots", verbose_name=_("participant")
    )
    taken_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("taken by")
    )
    image = models.FileField(_("image"), upload_to="recordings/snapshots/%Y/%m/")
    sha256 = models.CharField(_("SHA-256"), max_length=64)
    width = models.PositiveIntegerField(verbose_name=_("width"))
    height = models.PositiveIntegerField(verbose_name=_("height"))
    # The server's clock when the frame was decoded from the customer's feed.
    taken_at = models.DateTimeField(_("taken at"))
    # The Janus feed the server subscribed to; empty on rows from before
    # server capture, when the agent's browser uploaded the image.
    feed_id = models.PositiveBigIntegerField(_("video feed"), null=True, blank=True)
    chosen_for_face = models.BooleanField(_("chosen for face verification"), default=False)
    # Set when the retention period removed the image (the row and hash stay).
    purged_at = models.DateTimeField(_("removed at"), null=True, blank=True)

    class Meta:
        ordering = ("call", "taken_at", "pk")
        verbose_name = _("snapshot")
        verbose_name_plural = _("snapshots")

    def __str__(self) -> str:
        return f"snapshot {self.public_id}"
