from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.urls import reverse

from apps.audit.models import AuditRecord
from apps.audit.triggers import audit_triggers_suspended
from apps.compliance.models import AuditExport
from apps.staff.roles import Role
from tests.security.helpers import force_login_verified

pytestmark = pytest.mark.django_db

WORKSPACE = "/console/live/compliance/"
VERIFY_NOW = "/console/live/compliance/chain/verify/"


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        (Role.AGENT, False),
        (Role.EXPERT, False),
        (Role.SUPERVISOR, False),
        (Role.COMPLIANCE_OFFICER, True),
        (Role.ADMINISTRATOR, True),
    ],
)
def test_the_workspace_is_open_to_roles_that_read_the_audit_trail(
    client: Client, make_staff: Callable[..., User], role: Role, allowed: bool
) -> None:
    force_login_verified(client, make_staff(role))
    assert client.get(WORKSPACE).status_code == (200 if allowed else 403)
    assert client.post(VERIFY_NOW).status_code == (302 if allowed else 403)


def test_the_workspace_needs_a_login(client: Client) -> None:
    response = client.get(WORKSPACE)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_search_filters_by_actor_and_action_prefix(
    client: Client, compliance_officer: User, supervisor: User, agent: User
) -> None:
    for someone in (supervisor, agent, supervisor):
        Client().force_login(someone)  # each login is audited with the user as actor
    force_login_verified(client, compliance_officer)
    response = client.get(WORKSPACE, {"actor": supervisor.username, "action_prefix": "staff."})
    html = response.content.decode()
    expected = AuditRecord.objects.filter(actor_label=supervisor.username, action__startswith="staff.").count()
    assert expected > 0
    assert f"{expected} " in html
    assert html.count("<tr><td>") == expected
    assert agent.username not in html.split('id="search-results"')[1].split("</table>")[0]


def test_an_unknown_action_prefix_is_explained(client: Client, compliance_officer: User) -> None:
    force_login_verified(client, compliance_officer)
    html = client.get(WORKSPACE, {"action_prefix": "nothing."}, headers={"accept-language": "en"}).content.decode()
    assert "No audit action starts with nothing." in html


def test_verifying_now_records_the_outcome_and_the_page_shows_it(client: Client, compliance_officer: User) -> None:
    force_login_verified(client, compliance_officer)
    assert (
        "The audit chain has not been verified yet."
        in client.get(WORKSPACE, headers={"accept-language": "en"}).content.decode()
    )
    client.post(VERIFY_NOW)
    record = AuditRecord.objects.filter(action="audit.chain.verified").latest("sequence")
    assert record.data["intact"] is True
    assert record.actor_label == compliance_officer.username
    html = client.get(WORKSPACE, headers={"accept-language": "en"}).content.decode()
    assert "Intact when last verified" in html


def test_a_broken_chain_is_shown_with_its_first_bad_sequence(client: Client, compliance_officer: User) -> None:
    force_login_verified(client, compliance_officer)
    victim = AuditRecord.objects.order_by("sequence").first()
    assert victim is not None
    # What an attacker with database-superuser rights could do: bypass the trigger, then write.
    with audit_triggers_suspended(connection), connection.cursor() as cursor:
        cursor.execute("UPDATE audit_auditrecord SET actor_label = 'tampered' WHERE id = %s", [victim.pk])
    client.post(VERIFY_NOW)
    html = client.get(WORKSPACE, headers={"accept-language": "en"}).content.decode()
    assert f"first bad record is sequence {victim.sequence}" in html


def test_an_export_requested_from_the_page_runs_and_shows_its_progress_and_download(
    client: Client, compliance_officer: User, django_capture_on_commit_callbacks: Any
) -> None:
    force_login_verified(client, compliance_officer)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/console/live/compliance/exports/", {"format": "csv", "action_prefix": "staff.", "unmask": "1"}
        )
    assert response.status_code == 302
    export = AuditExport.objects.get()
    assert (export.format, export.filters, export.unmasked, export.state) == (
        "csv",
        {"action_prefix": "staff."},
        True,
        "done",
    )
    assert AuditRecord.objects.filter(action="compliance.personal_data.unmasked", target_id=str(export.pk)).exists()
    html = client.get(WORKSPACE).content.decode()
    assert f'<progress class="export-progress" value="{export.rows_written}" max="{export.rows_total}">' in html
    assert f"/api/compliance/exports/{export.pk}/download/" in html
    assert "compliance/exports.js" in html


def test_an_administrator_exports_masked_only_and_a_refusal_is_shown(client: Client, administrator: User) -> None:
    force_login_verified(client, administrator)
    page = client.get(WORKSPACE).content.decode()
    assert 'id="export-form"' in page and 'name="unmask"' not in page
    response = client.post(
        "/console/live/compliance/exports/", {"format": "csv", "unmask": "1"}, headers={"accept-language": "en"}
    )
    assert response.status_code == 302
    assert not AuditExport.objects.exists()
    assert (
        "Your role may only export masked personal data."
        in client.get(WORKSPACE, headers={"accept-language": "en"}).content.decode()
    )


def test_the_search_results_name_targets_in_words_with_their_number_not_the_recorded_code(
    client: Client, compliance_officer: User, agent: User
) -> None:
    """Issue #19: results showed the recorded labels ("T-agent_user available", "visit <uuid>"): codes and English."""
    import re

    from apps.queueing.models import AgentState
    from apps.queueing.services.agents import agent_state_set
    from apps.staff.models import StaffProfile
    from tests.conftest import SYSTEM

    agent_state_set(actor=SYSTEM, staff=StaffProfile.objects.get(user=agent), state=AgentState.AVAILABLE)
    force_login_verified(client, compliance_officer)
    html = client.get(WORKSPACE, {"action_prefix": "queueing."}, headers={"accept-language": "zh-hans"})
    results = html.content.decode().split('id="search-results"')[1].split("</table>")[0]
    cells = re.findall(r'<td title="[^"]*">([^<]*)</td>', results)
    assert cells, results
    for cell in cells:
        assert not re.search(r"[A-Za-z]{2,}", cell), cell  # the kind in Chinese and a number
        assert re.search(r"#\d+|[0-9a-f]{8}-", cell), cell
