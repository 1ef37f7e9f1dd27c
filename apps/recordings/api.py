"""Recordings API: post-processing status and re-runs, playback with range requests, snapshots (R5)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

from django.core.files.storage import default_storage
from django.http import HttpResponse, StreamingHttpResponse
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.calls.models import Call
from apps.common.api import request_staff_user, require_permission
from apps.common.errors import NotFound, PermissionDenied, ValidationFailed
from apps.recordings.models import Recording, RecordingFile, Snapshot
from apps.recordings.selectors import RangeNotSatisfiable, parse_range_header, snapshots_for_call, staff_may_see_call
from apps.recordings.services import recording_file_access_record, recording_reprocess, snapshot_capture

_SERVE = require_permission("queueing.serve_customers")
_PLAY = require_permission("recordings.play_recording")
_REPROCESS = require_permission("recordings.reprocess_recording")
_CONTENT_TYPES = {".webm": "video/webm", ".mkv": "video/x-matroska", ".opus": "audio/ogg"}
_CHUNK = 256 * 1024
# Largest accepted upload; load_untrusted_image applies its own (larger) limit too.
MAX_SNAPSHOT_BYTES = 5 * 1024 * 1024


class SnapshotOutput(serializers.ModelSerializer[Snapshot]):
    id = serializers.UUIDField(source="public_id")
    taken_by = serializers.CharField(source="taken_by.username")

    class Meta:
        model = Snapshot
        fields = ("id", "sha256", "width", "height", "taken_at", "taken_by", "chosen_for_face")


def _call(public_id: Any) -> Call:
    call = Call.objects.filter(public_id=public_id).first()
    if call is None:
        raise NotFound(_("This call does not exist."), code="call_not_found")
    return call


class CallSnapshotsApi(APIView):
    """``POST`` (multipart ``image``): capture; ``GET``: the call's snapshots. Staff in the call only."""

    permission_classes = (_SERVE,)
    parser_classes = (MultiPartParser,)

    def get(self, request: Request, public_id: str) -> Response:
        call = _call(public_id)
        if not staff_may_see_call(user=request_staff_user(request), call=call):
            raise PermissionDenied(_("Only staff in this call can see its snapshots."), code="not_in_call")
        return Response({"snapshots": SnapshotOutput(snapshots_for_call(call=call), many=True).data})

    @extend_schema(
        request={
            "multipart/form-data": {
                "type": "object",
                "properties": {"image": {"type": "string", "format": "binary"}},
                "required": ["image"],
            }
        }
    )
    def post(self, request: Request, public_id: str) -> Response:
        call = _call(public_id)
        upload = request.FILES.get("image")
        if upload is None:
            raise ValidationFailed(_("Send the image in the multipart field “image”."), code="image_missing")
        if upload.size is not None and upload.size > MAX_SNAPSHOT_BYTES:
            raise ValidationFailed(_("The image is too large."), code="image_too_large_bytes")
        snapshot = snapshot_capture(actor=request_staff_user(request), call_id=call.pk, image_bytes=upload.read())
        return Response(SnapshotOutput(snapshot).data, status=201)


class RecordingFileOutput(serializers.ModelSerializer[RecordingFile]):
    role = serializers.CharField(source="participant.role", default="")

    class Meta:
        model = RecordingFile
        fields = ("id", "kind", "role", "feed_id", "size_bytes", "sha256", "duration_seconds", "in_storage")


class RecordingOutput(serializers.ModelSerializer[Recording]):
    call = serializers.UUIDField(source="call.public_id")
    files = RecordingFileOutput(many=True)

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


class CallRecordingApi(APIView):
    """The post-processing state, progress, error and files of a call's recording (supervisors, compliance)."""

    permission_classes = (_PLAY,)

    def get(self, request: Request, public_id: str) -> Response:
        recording = Recording.objects.filter(call__public_id=public_id).prefetch_related("files__participant").first()
        if recording is None:
            raise NotFound(_("This call has no recording."), code="recording_not_found")
        return Response(RecordingOutput(recording).data)


class RecordingReprocessApi(APIView):
    permission_classes = (_REPROCESS,)

    def post(self, request: Request, recording_id: int) -> Response:
        recording = recording_reprocess(actor=request_staff_user(request), recording_id=recording_id)
        return Response(RecordingOutput(recording).data, status=202)


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
        item = RecordingFile.objects.filter(pk=file_id, in_storage=True).select_related("recording").first()
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
