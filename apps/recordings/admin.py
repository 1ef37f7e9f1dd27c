from __future__ import annotations

from django.contrib import admin

from apps.common.admin import ReadOnlyAdmin
from apps.recordings.models import Recording, RecordingFile, Snapshot


@admin.register(Recording)
class RecordingAdmin(ReadOnlyAdmin):
    """Post-processing state, progress and error of each call's recordings (re-run through the service)."""

    list_display = ("id", "call", "state", "progress", "attempts", "started_at", "finished_at")
    list_filter = ("state",)
    fields = (
        "call",
        "state",
        "progress",
        "attempts",
        "error",
        "duration_seconds",
        "created_at",
        "started_at",
        "finished_at",
    )
    readonly_fields = fields


@admin.register(RecordingFile)
class RecordingFileAdmin(ReadOnlyAdmin):
    list_display = ("id", "recording", "kind", "participant", "size_bytes", "sha256", "duration_seconds")
    list_filter = ("kind",)
    fields = (
        "recording",
        "kind",
        "participant",
        "feed_id",
        "path",
        "in_storage",
        "size_bytes",
        "sha256",
        "duration_seconds",
    )
    readonly_fields = fields


@admin.register(Snapshot)
class SnapshotAdmin(ReadOnlyAdmin):
    list_display = ("public_id", "call", "taken_by", "taken_at", "sha256", "chosen_for_face")
    fields = (
        "public_id",
        "call",
        "participant",
        "taken_by",
        "taken_at",
        "sha256",
        "width",
        "height",
        "chosen_for_face",
    )
    readonly_fields = fields
