"""Recordings API: search (R3.3), post-processing status and re-runs, playback with range requests, snapshots (R5).

Every read that serves a person goes through the selectors, which start from
``apps.calls.selectors.visits_visible_to``: a recording, file or snapshot of
a service the user may not see answers 404, as if it did not exist.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

from django.core.files.storage import default_storage
from django.http import HttpResponse, StreamingHttpResponse
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.businesses.registry import business_choices
from apps.calls.selectors import call_get
from apps.common.api import request_staff_user, require_permission
from apps.common.errors import NotFound, ValidationFailed
from apps.recordings.models import Recording, RecordingFile, RecordingState, Snapshot
from apps.recordings.selectors import (
    RangeNotSatisfiable,
    RecordingSearch,
    evidence_file,
    parse_range_header,
    recording_agents,
    recording_file_visible_to,
    recording_is_visible_to,
    recording_of_call_visible_to,
    recordings_search,
    snapshot_visible_to,
    snapshots_for_call,
    staff_may_see_call,
)
from apps.recordings.services.integrity import recording_file_access_record
from apps.recordings.services.processing import recording_reprocess
from apps.recordings.services.snapshots import snapshot_capture, snapshot_view_record
from apps.visits.models import VisitOutcome

_SERVE = require_permission("queueing.serve_customers")
_VIEW = require_permission("recordings.view_recording")
_VIEW_SNAPSHOTS = require_permission("recordings.view_snapshot")
_PLAY = require_permission("recordings.play_recording")
_REPROCESS = require_permission("recordings.reprocess_recording")
_CONTENT_TYPES = {".webm": "video/webm", ".mp4": "video/mp4", ".mkv": "video/x-matroska", ".opus": "audio/ogg"}
_CHUNK = 256 * 1024


class _SnapshotOutput(serializers.ModelSerializer[Snapshot]):
    id = serializers.UUIDField(source="public_id")
    taken_by = serializers.CharField(source="taken_by.username")
    image_url = serializers.SerializerMethodField()

    class Meta:
        model = Snapshot
        fields = (
            "id",
            "sha256",
            "width",
            "height",
            "taken_at",
            "feed_id",
            "taken_by",
            "chosen_for_face",
            "image_url",
        )

    def get_image_url(self, snapshot: Snapshot) -> str | None:
        if snapshot.purged_at is not None:
            return None
        return reverse("recordings:snapshot-image", args=[snapshot.public_id])


class CallSnapshotListApi(APIView):
    """``GET``: the call's snapshots, for anyone with ``recordings.view_snapshot``
    whose services (visits_visible_to) include the call's."""

    permission_classes = (_VIEW_SNAPSHOTS,)

    class OutputSerializer(serializers.Serializer[Any]):
        snapshots = _SnapshotOutput(many=True)

    def get(self, request: Request, public_id: str) -> Response:
        call = call_get(public_id=public_id)
        if not staff_may_see_call(user=request_staff_user(request), call=call):
            raise NotFound(_("This call does not exist."), code="call_not_found")
        return Response(self.OutputSerializer({"snapshots": snapshots_for_call(call=call)}).data)


class CallSnapshotCaptureApi(APIView):
    """``POST`` (no body): the server captures the customer's current frame from the call's video, for staff in the live call (R5).

    The image is never sent by the caller: a request carrying a file or an
    image field is refused (400 ``image_upload_refused``), so no browser can
    make a picture of its choice the customer's live image.
    """

    permission_classes = (_SERVE,)
    parser_classes = (JSONParser, MultiPartParser, FormParser)

    OutputSerializer = _SnapshotOutput

    @extend_schema(request=None)
    def post(self, request: Request, public_id: str) -> Response:
        call = call_get(public_id=public_id)
        data = request.data if hasattr(request.data, "keys") else {}
        if request.FILES or any(key in data for key in ("image", "frame", "snapshot", "photo")):
            raise ValidationFailed(
                _("Images are not accepted here: the server captures the customer's video itself."),
                code="image_upload_refused",
            )
        snapshot = snapshot_capture(actor=request_staff_user(request), call_id=call.pk)
        return Response(self.OutputSerializer(snapshot).data, status=201)


class _RecordingFileOutput(serializers.ModelSerializer[RecordingFile]):
    role = serializers.CharField(source="participant.role", default="")

    class Meta:
        model = RecordingFile
        fields = ("id", "kind", "role", "feed_id", "size_bytes", "sha256", "duration_seconds", "in_storage")


class CallRecordingApi(APIView):
    """The post-processing state, progress, error and files of a call's recording."""

    permission_classes = (_PLAY,)

    class OutputSerializer(serializers.ModelSerializer[Recording]):
        call = serializers.UUIDField(source="call.public_id")
        files = _RecordingFileOutput(many=True)

        class Meta:
            model = Recording
            fields = (
                "id",
                "call",
                "state",
                "progress",
                "attempts",
                "error",
                "duration_seconds",
                "started_at",
                "finished_at",
                "files",
            )

    def get(self, request: Request, public_id: str) -> Response:
        recording = recording_of_call_visible_to(user=request_staff_user(request), call_public_id=public_id)
        if recording is None:
            raise NotFound(_("This call has no recording."), code="recording_not_found")
        return Response(self.OutputSerializer(recording).data)


class RecordingSearchApi(APIView):
    """``GET /api/recordings/``: the recordings the user may see, filtered (R3.3), newest call first, paginated.

    Filters: ``agent`` (employee number), ``customer`` (customer number),
    ``business`` (code), ``outcome`` (the service's), ``state``
    (post-processing), ``from`` / ``until`` (the call started in
    [from, until)). ``limit`` / ``offset`` paginate.
    """

    permission_classes = (_VIEW,)

    class FilterInput(serializers.Serializer):
        agent = serializers.CharField(required=False, allow_blank=True, max_length=20)
        customer = serializers.CharField(required=False, allow_blank=True, max_length=20)
        business = serializers.ChoiceField(choices=business_choices(), required=False, allow_blank=True)
        outcome = serializers.ChoiceField(choices=VisitOutcome.choices, required=False, allow_blank=True)
        state = serializers.ChoiceField(choices=RecordingState.choices, required=False, allow_blank=True)
        call_from = serializers.DateTimeField(required=False, allow_null=True)
        call_until = serializers.DateTimeField(required=False, allow_null=True)

        def to_internal_value(self, data: Any) -> Any:
            # "from" is a Python keyword: the query uses from/until, the search call_from/call_until.
            renamed = {key: value for key, value in data.items() if key not in ("from", "until")}
            for outside, inside in (("from", "call_from"), ("until", "call_until")):
                if data.get(outside):
                    renamed[inside] = data.get(outside)
            return super().to_internal_value(renamed)

    class OutputSerializer(serializers.Serializer[Any]):
        """One row per recording: what the back-office list shows and polls (console/recordings.js)."""

        id = serializers.IntegerField(source="pk")
        call = serializers.CharField(source="call.public_id")
        service = serializers.CharField(source="call.visit.public_id")
        business = serializers.CharField(source="call.visit.business_code")
        business_label = serializers.SerializerMethodField()
        customer_number = serializers.SerializerMethodField()
        customer_name = serializers.SerializerMethodField()
        agents = serializers.SerializerMethodField()
        call_started_at = serializers.SerializerMethodField()
        call_ended_at = serializers.SerializerMethodField()
        outcome = serializers.CharField(source="call.visit.outcome")
        outcome_label = serializers.SerializerMethodField()
        state = serializers.CharField()
        state_label = serializers.SerializerMethodField()
        progress = serializers.IntegerField()
        error = serializers.CharField()
        attempts = serializers.IntegerField()
        duration_seconds = serializers.FloatField()
        evidence_file = serializers.SerializerMethodField()
        reprocess_url = serializers.SerializerMethodField()

        def get_business_label(self, recording: Recording) -> str:
            code = recording.call.visit.business_code
            return str(self.context["businesses"].get(code, code))

        def get_customer_number(self, recording: Recording) -> str:
            customer = recording.call.visit.customer
            return customer.customer_number if customer else ""

        def get_customer_name(self, recording: Recording) -> str:
            customer = recording.call.visit.customer
            return customer.name if customer else ""

        def get_agents(self, recording: Recording) -> list[dict[str, str]]:
            return [
                {
                    "employee_number": person.staff.employee_number,
                    "name": person.staff.display_name,
                    "role": person.role,
                }
                for person in recording_agents(recording)
                if person.staff is not None
            ]

        # ISO 8601 as Python writes it (UTC offset), not DRF's DateTimeField (local time, "Z").
        def get_call_started_at(self, recording: Recording) -> str:
            return recording.call.created_at.isoformat()

        def get_call_ended_at(self, recording: Recording) -> str | None:
            return recording.call.ended_at.isoformat() if recording.call.ended_at else None

        def get_outcome_label(self, recording: Recording) -> str:
            visit = recording.call.visit
            return str(visit.get_outcome_display()) if visit.outcome else ""

        def get_state_label(self, recording: Recording) -> str:
            return str(RecordingState(recording.state).label)

        def get_evidence_file(self, recording: Recording) -> dict[str, Any] | None:
            evidence = evidence_file(recording)
            if evidence is None:
                return None
            return {
                "id": evidence.pk,
                "sha256": evidence.sha256,
                "url": reverse("recordings:file-content", args=[evidence.pk]),
            }

        def get_reprocess_url(self, recording: Recording) -> str | None:
            if self.context["may_reprocess"] and recording.state == RecordingState.FAILED:
                return reverse("recordings:reprocess", args=[recording.pk])
            return None

    def get(self, request: Request) -> Response:
        user = request_staff_user(request)
        filters = self.FilterInput(data=request.query_params)
        if not filters.is_valid():
            raise ValidationFailed(
                _("Some search filters are not valid."), code="invalid_filters", extra={"fields": filters.errors}
            )
        recordings = recordings_search(user=user, search=RecordingSearch(**filters.validated_data))
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(recordings, request, view=self)
        context = {
            "businesses": dict(business_choices()),
            "may_reprocess": user.has_perm("recordings.reprocess_recording"),
        }
        return paginator.get_paginated_response(self.OutputSerializer(page or [], many=True, context=context).data)


class RecordingReprocessApi(APIView):
    """``POST``: re-run the post-processing of a failed recording (supervisors, their team's services)."""

    permission_classes = (_REPROCESS,)

    OutputSerializer = CallRecordingApi.OutputSerializer  # the recording, as its status endpoint shows it

    def post(self, request: Request, recording_id: int) -> Response:
        user = request_staff_user(request)
        if not recording_is_visible_to(user=user, recording_id=recording_id):
            raise NotFound(_("This recording does not exist."), code="recording_not_found")
        recording = recording_reprocess(actor=user, recording_id=recording_id)
        return Response(self.OutputSerializer(recording).data, status=202)


def _chunks(handle: IO[bytes], remaining: int) -> Iterator[bytes]:
    try:
        while remaining > 0:
            chunk = handle.read(min(_CHUNK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk
    finally:
        handle.close()


class RecordingFileContentApi(APIView):
    """A stored recording file, with HTTP range requests so that the browser can seek.

    ``?download=1`` sends it as an attachment. Audited: every download, and
    every playback once — at its request from byte 0; the later range
    requests of the same playback (seeking) are not each audited.
    """

    permission_classes = (_PLAY,)

    def get(self, request: Request, file_id: int) -> HttpResponse | StreamingHttpResponse:
        item = recording_file_visible_to(user=request_staff_user(request), file_id=file_id)
        if item is None:
            raise NotFound(_("This recording file does not exist."), code="recording_file_not_found")
        size = default_storage.size(item.path)
        download = request.query_params.get("download") == "1"
        try:
            byte_range = None if download else parse_range_header(request.headers.get("Range"), size=size)
        except RangeNotSatisfiable:
            refusal = HttpResponse(status=416)
            refusal["Content-Range"] = f"bytes */{size}"
            return refusal
        if download or byte_range is None or byte_range.start == 0:
            recording_file_access_record(
                actor=request_staff_user(request),
                item=item,
                download=download,
                byte_range=request.headers.get("Range", ""),
            )
        handle = default_storage.open(item.path, "rb")
        suffix = "." + item.path.rsplit(".", 1)[-1]
        content_type = _CONTENT_TYPES.get(suffix, "application/octet-stream")
        if byte_range is None:
            response = StreamingHttpResponse(_chunks(handle, size), content_type=content_type)
            response["Content-Length"] = str(size)
        else:
            handle.seek(byte_range.start)
            response = StreamingHttpResponse(_chunks(handle, byte_range.length), content_type=content_type, status=206)
            response["Content-Length"] = str(byte_range.length)
            response["Content-Range"] = f"bytes {byte_range.start}-{byte_range.end}/{size}"
        response["Accept-Ranges"] = "bytes"
        response["Cache-Control"] = "private, no-store"
        if download:
            response["Content-Disposition"] = f'attachment; filename="{item.path.rsplit("/", 1)[-1]}"'
        return response


class SnapshotImageApi(APIView):
    """A stored snapshot image (JPEG), for a user whose services include its call; each opening audited."""

    permission_classes = (_VIEW_SNAPSHOTS,)

    def get(self, request: Request, public_id: str) -> HttpResponse:
        user = request_staff_user(request)
        snapshot = snapshot_visible_to(user=user, public_id=public_id)
        if snapshot is None:
            raise NotFound(_("This snapshot does not exist."), code="snapshot_not_found")
        snapshot_view_record(actor=user, snapshot=snapshot)
        with default_storage.open(str(snapshot.image.name), "rb") as handle:
            content = handle.read()
        response = HttpResponse(content, content_type="image/jpeg")
        response["Cache-Control"] = "private, no-store"
        return response
