"""The export API: request (202), status with progress, audited download; who may do what."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from apps.audit.actions import AuditAction
from apps.compliance.models import AuditExport, ExportState
from apps.staff.roles import Role
from apps.staff.services import staff_member_upsert
from tests.compliance.conftest import file_bytes, records_of
from tests.conftest import SYSTEM
from tests.security.helpers import force_login_verified

pytestmark = pytest.mark.django_db

EXPORTS = reverse("compliance:export-list")


def _detail(export_id: int) -> str:
    return reverse("compliance:export-detail", args=[export_id])


def _download(export_id: int) -> str:
    return reverse("compliance:export-download", args=[export_id])


@pytest.fixture
def post_export(client: Client, django_capture_on_commit_callbacks: Callable[..., Any]) -> Callable[..., Any]:
    def post(user: User, body: dict[str, Any]) -> Any:
        force_login_verified(client, user)
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(EXPORTS, body, content_type="application/json")

    return post


def test_a_compliance_officer_requests_follows_and_downloads_an_export(
    client: Client, compliance_officer: User, post_export: Callable[..., Any]
) -> None:
    response = post_export(compliance_officer, {"format": "csv", "filters": {"action_prefix": "staff."}})

    assert response.status_code == 202
    export_id = response.json()["id"]
    status = client.get(_detail(export_id)).json()
    assert status["state"] == ExportState.DONE
    assert status["rows_written"] == status["rows_total"] > 0
    assert status["progress"] == 1.0
    export = AuditExport.objects.get(pk=export_id)
    assert status["sha256"] == export.sha256
    assert status["download_url"].endswith(_download(export_id))

    download = client.get(_download(export_id))

    assert download.status_code == 200
    content = b"".join(download.streaming_content)
    assert content == file_bytes(export)
    assert hashlib.sha256(content).hexdigest() == export.sha256 == download["X-Content-SHA256"]
    assert download["Content-Disposition"] == f'attachment; filename="audit-export-{export_id}.csv"'
    assert download["Content-Type"] == "text/csv; charset=utf-8"
    (downloaded,) = records_of(AuditAction.COMPLIANCE_EXPORT_DOWNLOADED)
    assert downloaded.actor_label == compliance_officer.username
    assert downloaded.target_id == str(export_id)
    assert downloaded.data["sha256"] == export.sha256


def test_the_status_of_a_waiting_export_shows_no_progress_and_it_cannot_be_downloaded(
    client: Client, compliance_officer: User, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    force_login_verified(client, compliance_officer)
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(EXPORTS, {"format": "xlsx"}, content_type="application/json")
    assert response.status_code == 202
    body = response.json()
    assert (body["state"], body["progress"], body["download_url"], body["sha256"]) == ("pending", 0.0, None, None)

    refused = client.get(_download(body["id"]))

    assert refused.status_code == 409
    assert refused.json()["code"] == "export_not_ready"
    assert records_of(AuditAction.COMPLIANCE_EXPORT_DOWNLOADED) == []


def test_a_pdf_request_is_told_about_the_row_limit(compliance_officer: User, post_export: Callable[..., Any]) -> None:
    body = post_export(compliance_officer, {"format": "pdf"}).json()
    assert body["row_limit"] == 20_000
    assert body["truncated"] is False


@pytest.mark.parametrize("role", ["agent", "expert", "supervisor"])
def test_roles_without_exports_get_403_everywhere(
    role: str, request: pytest.FixtureRequest, client: Client, compliance_officer: User, post_export: Callable[..., Any]
) -> None:
    export_id = post_export(compliance_officer, {"format": "csv"}).json()["id"]
    user = request.getfixturevalue(role)
    force_login_verified(client, user)

    for response in (
        client.post(EXPORTS, {"format": "csv"}, content_type="application/json"),
        client.get(EXPORTS),
        client.get(_detail(export_id)),
        client.get(_download(export_id)),
    ):
        assert response.status_code == 403
        assert response.json()["code"] == "permission_denied"
    assert AuditExport.objects.count() == 1


def test_an_administrator_exports_masked_only(
    client: Client, administrator: User, post_export: Callable[..., Any]
) -> None:
    refused = post_export(administrator, {"format": "csv", "unmask": True})
    assert refused.status_code == 403
    assert refused.json()["code"] == "unmask_not_allowed"
    assert refused.json()["message"]

    allowed = post_export(administrator, {"format": "csv"})
    assert allowed.status_code == 202
    assert allowed.json()["unmasked"] is False
    assert client.get(_download(allowed.json()["id"])).status_code == 200


def test_exports_are_seen_by_their_requester_and_compliance_officers_only(
    client: Client, administrator: User, compliance_officer: User, post_export: Callable[..., Any]
) -> None:
    officers = post_export(compliance_officer, {"format": "csv"}).json()["id"]
    admins = post_export(administrator, {"format": "csv"}).json()["id"]

    force_login_verified(client, administrator)
    refused = client.get(_download(officers))
    assert refused.status_code == 403
    assert refused.json()["code"] == "not_your_export"
    assert client.get(_detail(officers)).status_code == 403
    assert [item["id"] for item in client.get(EXPORTS).json()["results"]] == [admins]

    force_login_verified(client, compliance_officer)
    assert client.get(_download(admins)).status_code == 200
    assert {item["id"] for item in client.get(EXPORTS).json()["results"]} == {officers, admins}


def test_an_unmasked_file_is_refused_to_someone_who_lost_the_unmask_permission(
    client: Client, compliance_officer: User, branch: Any, post_export: Callable[..., Any]
) -> None:
    export_id = post_export(compliance_officer, {"format": "csv", "unmask": True}).json()["id"]
    staff_member_upsert(
        actor=SYSTEM,
        username=compliance_officer.username,
        employee_number=f"T-{Role.COMPLIANCE_OFFICER.value}"[:20],
        display_name="moved",
        role=Role.ADMINISTRATOR,
        branch=branch,
    )
    moved = User.objects.get(pk=compliance_officer.pk)  # fresh permission cache
    force_login_verified(client, moved)

    refused = client.get(_download(export_id))

    assert refused.status_code == 403
    assert refused.json()["code"] == "unmask_not_allowed"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"format": "docx"}, "unknown_format"),
        ({"format": "csv", "filters": {"colour": "red"}}, "unknown_filter"),
        ({"format": "csv", "filters": {"from": "2026-02-30"}}, "invalid_date"),
        ({"filters": {}}, "invalid"),
    ],
)
def test_bad_requests_get_a_code_and_a_message(
    body: dict[str, Any], code: str, compliance_officer: User, post_export: Callable[..., Any]
) -> None:
    response = post_export(compliance_officer, body)
    assert response.status_code == 400
    assert response.json()["code"] == code
    assert response.json()["message"]
    assert not AuditExport.objects.exists()


def test_an_unknown_export_is_404(client: Client, compliance_officer: User) -> None:
    force_login_verified(client, compliance_officer)
    response = client.get(_detail(999_999))
    assert response.status_code == 404
    assert response.json()["code"] == "export_not_found"


def test_anonymous_visitors_are_refused(client: Client) -> None:
    assert client.post(EXPORTS, {"format": "csv"}, content_type="application/json").status_code == 403


def test_a_file_missing_from_storage_is_a_clear_404(
    client: Client, compliance_officer: User, post_export: Callable[..., Any]
) -> None:
    export = AuditExport.objects.get(pk=post_export(compliance_officer, {"format": "csv"}).json()["id"])
    export.file.storage.delete(export.file.name)

    response = client.get(_download(export.pk))

    assert response.status_code == 404
    assert response.json()["code"] == "export_file_missing"
