"""Read-only admin of recordings, files and snapshots, limited to the services the user may see."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.calls.selectors import visits_visible_to
from apps.common.admin import ReadOnlyAdmin
from apps.recordings.models import Recording, RecordingFile, Snapshot


class _VisibleServicesOnly(ReadOnlyAdmin):
    """Agents hold ``view_recording`` for their own services: the admin lists must not show everyone's."""

    visit_lookup = ""

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        visible = visits_visible_to(user=request.user)
        return super().get_queryset(request).filter(**{f"{self.visit_lookup}__in": visible})


@admin.register(Recording)
class RecordingAdmin(_VisibleServicesOnly):
    """Post-processing state, progress and error of each call's recordings (re-run through the service)."""

    visit_lookup = "call__visit"

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
class RecordingFileAdmin(_VisibleServicesOnly):
    visit_lookup = "recording__call__visit"
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
class SnapshotAdmin(_VisibleServicesOnly):
    visit_lookup = "call__visit"
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
