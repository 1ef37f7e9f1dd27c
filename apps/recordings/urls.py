from __future__ import annotations

from django.urls import path

from apps.recordings import api

app_name = "recordings"

urlpatterns = [
    path("", api.RecordingSearchApi.as_view(), name="search"),
    path("calls/<uuid:public_id>/", api.CallRecordingApi.as_view(), name="call-recording"),
    path("<int:recording_id>/reprocess/", api.RecordingReprocessApi.as_view(), name="reprocess"),
    path("files/<int:file_id>/content/", api.RecordingFileContentApi.as_view(), name="file-content"),
    path("calls/<uuid:public_id>/snapshots/", api.CallSnapshotListApi.as_view(), name="call-snapshots"),
    path(
        "calls/<uuid:public_id>/snapshots/capture/", api.CallSnapshotCaptureApi.as_view(), name="call-snapshot-capture"
    ),
    path("snapshots/<uuid:public_id>/image/", api.SnapshotImageApi.as_view(), name="snapshot-image"),
]
