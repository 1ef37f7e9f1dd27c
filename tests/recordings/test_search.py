"""Search and playback of recordings (R3.3): one test per filter, and who sees what, for every role.

Visibility is ``apps.calls.selectors.visits_visible_to``: agents and experts
see the services they took part in, a supervisor their team's (and their
own), a compliance officer all, an administrator none. The list API, the
file endpoint, the snapshots and the console pages all go through it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.audit.models import AuditRecord
from apps.customers.models import Customer
from apps.recordings.models import RecordingState
from apps.staff.models import StaffProfile
from apps.staff.roles import Role
from apps.staff.services import staff_member_upsert
from tests.conftest import SYSTEM
from tests.recordings.conftest import StoredService
from tests.security.helpers import force_login_verified

pytestmark = pytest.mark.django_db

SEARCH = reverse("recordings:search")


def _ids(client: Client, **filters: str) -> set[int]:
    response = client.get(SEARCH, filters)
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


def _body(response: Any) -> bytes:
    return b"".join(response.streaming_content)


@pytest.fixture
def team(make_staff: Callable[..., User], branch: Any) -> dict[str, User]:
    """A supervisor with one agent in their team, one agent in another team, an expert, compliance, admin."""
    supervisor = make_staff(Role.SUPERVISOR, "sup_a")
    other_supervisor = make_staff(Role.SUPERVISOR, "sup_b")

    def member(username: str, role: Role, boss: User) -> User:
        return staff_member_upsert(
            actor=SYSTEM,
            username=username,
            employee_number=f"E-{username}",
            display_name=username,
            role=role,
            branch=branch,
            supervisor=StaffProfile.objects.get(user=boss),
            initial_password="correct horse battery",
        ).user

    return {
        "supervisor": supervisor,
        "other_supervisor": other_supervisor,
        "agent": member("agent_a", Role.AGENT, supervisor),
        "other_agent": member("agent_b", Role.AGENT, other_supervisor),
        "expert": member("expert_a", Role.EXPERT, other_supervisor),
        "compliance": make_staff(Role.COMPLIANCE_OFFICER, "compliance"),
        "administrator": make_staff(Role.ADMINISTRATOR, "admin"),
    }


@pytest.fixture
def services(team: dict[str, User], make_recorded_service: Callable[..., StoredService]) -> dict[str, StoredService]:
    """Agent A's service (with the expert invited), and agent B's."""
    return {
        "mine": make_recorded_service(agent=team["agent"], expert=team["expert"]),
        "theirs": make_recorded_service(agent=team["other_agent"]),
    }


# --- Filters -----------------------------------------------------------------------------


@pytest.fixture
def officer_client(client: Client, team: dict[str, User]) -> Client:
    return force_login_verified(client, team["compliance"])


def test_search_by_agent_employee_number(
    officer_client: Client, services: dict[str, StoredService], team: dict[str, User]
) -> None:
    assert _ids(officer_client, agent="E-agent_b") == {services["theirs"].recording.pk}
    # An invited expert counts as staff of the call too, and the call is listed once.
    response = officer_client.get(SEARCH, {"agent": "E-expert_a"})
    assert [row["id"] for row in response.json()["results"]] == [services["mine"].recording.pk]
    assert _ids(officer_client, agent="E-nobody") == set()


def test_search_by_customer_number(
    officer_client: Client, services: dict[str, StoredService], make_customer: Callable[..., Customer]
) -> None:
    customer = services["mine"].visit.customer
    assert customer is not None
    assert _ids(officer_client, customer=customer.customer_number) == {services["mine"].recording.pk}
    assert _ids(officer_client, customer=make_customer().customer_number) == set()


def test_search_by_business(
    officer_client: Client, team: dict[str, User], make_recorded_service: Callable[..., StoredService]
) -> None:
    activation = make_recorded_service(agent=team["agent"], business="activation")
    reset = make_recorded_service(agent=team["agent"], business="password_reset")
    assert _ids(officer_client, business="password_reset") == {reset.recording.pk}
    assert _ids(officer_client, business="activation") == {activation.recording.pk}
    assert officer_client.get(SEARCH, {"business": "no_such_business"}).status_code == 400


def test_search_by_outcome(
    officer_client: Client, team: dict[str, User], make_recorded_service: Callable[..., StoredService]
) -> None:
    completed = make_recorded_service(agent=team["agent"], outcome="completed")
    failed = make_recorded_service(agent=team["agent"], outcome="gate_failed")
    open_service = make_recorded_service(agent=team["agent"], outcome="")
    assert _ids(officer_client, outcome="gate_failed") == {failed.recording.pk}
    assert _ids(officer_client, outcome="completed") == {completed.recording.pk}
    assert _ids(officer_client) == {completed.recording.pk, failed.recording.pk, open_service.recording.pk}


def test_search_by_time_range_of_the_call(
    officer_client: Client, team: dict[str, User], make_recorded_service: Callable[..., StoredService]
) -> None:
    now = timezone.now().replace(microsecond=0)
    old = make_recorded_service(agent=team["agent"], started_at=now - timedelta(days=3))
    recent = make_recorded_service(agent=team["agent"], started_at=now - timedelta(hours=2))
    since_yesterday = (now - timedelta(days=1)).isoformat()
    assert _ids(officer_client, **{"from": since_yesterday}) == {recent.recording.pk}
    assert _ids(officer_client, until=since_yesterday) == {old.recording.pk}
    # [from, until): a call that started exactly at "until" is not in the range.
    exactly = (now - timedelta(days=3)).isoformat()
    assert _ids(officer_client, **{"from": (now - timedelta(days=4)).isoformat(), "until": exactly}) == set()
    assert officer_client.get(SEARCH, {"from": "yesterday"}).status_code == 400


def test_search_by_post_processing_state(
    officer_client: Client, team: dict[str, User], make_recorded_service: Callable[..., StoredService]
) -> None:
    make_recorded_service(agent=team["agent"])
    failed = make_recorded_service(agent=team["agent"], state=RecordingState.FAILED)
    assert _ids(officer_client, state="failed") == {failed.recording.pk}


def test_results_are_paginated_newest_call_first(
    officer_client: Client, team: dict[str, User], make_recorded_service: Callable[..., StoredService]
) -> None:
    now = timezone.now()
    made = [make_recorded_service(agent=team["agent"], started_at=now - timedelta(hours=hours)) for hours in (3, 1, 2)]
    first = officer_client.get(SEARCH, {"limit": "2"}).json()
    assert first["count"] == 3
    assert [row["id"] for row in first["results"]] == [made[1].recording.pk, made[2].recording.pk]
    second = officer_client.get(SEARCH, {"limit": "2", "offset": "2"}).json()
    assert [row["id"] for row in second["results"]] == [made[0].recording.pk]
    row = first["results"][0]
    assert row["state"] == "done" and row["progress"] == 100
    assert row["evidence_file"]["url"] == reverse("recordings:file-content", args=[made[1].composite.pk])
    assert row["agents"] == [{"employee_number": "E-agent_a", "name": "agent_a", "role": "agent"}]


# --- Who sees what -----------------------------------------------------------------------

# Which of the two services each person sees.
VISIBLE = {
    "agent": {"mine"},  # own services only
    "expert": {"mine"},  # invited into that one
    "other_agent": {"theirs"},
    "supervisor": {"mine"},  # their team's (agent A's)
    "other_supervisor": {"theirs", "mine"},  # agent B is in their team, and so is the expert invited into "mine"
    "compliance": {"mine", "theirs"},  # all
    "administrator": set(),  # none
}


@pytest.mark.parametrize("person", sorted(VISIBLE))
def test_the_list_the_player_and_the_file_show_only_the_services_one_may_see(
    person: str, client: Client, team: dict[str, User], services: dict[str, StoredService]
) -> None:
    force_login_verified(client, team[person])
    expected = VISIBLE[person]

    listed = client.get(SEARCH)
    page = client.get(reverse("console:recordings"))
    if person == "administrator":
        # Administrators run the system; they do not read customers' services.
        assert listed.status_code == 403 and page.status_code == 403
    else:
        assert {row["id"] for row in listed.json()["results"]} == {services[name].recording.pk for name in expected}
        assert page.status_code == 200
        assert {row["recording"].pk for row in page.context["rows"]} == {
            services[name].recording.pk for name in expected
        }

    for name, service in services.items():
        visible = name in expected
        player = client.get(reverse("console:recording-player", args=[service.recording.pk]))
        content = client.get(
            reverse("recordings:file-content", args=[service.composite.pk]), headers={"range": "bytes=0-"}
        )
        status = client.get(reverse("recordings:call-recording", args=[service.call.public_id]))
        if person == "administrator":
            assert (player.status_code, content.status_code, status.status_code) == (403, 403, 403)
        elif visible:
            assert player.status_code == 200 and content.status_code == 206 and status.status_code == 200
            assert _body(content) == service.content
        else:
            # Not even whether it exists: 404, as for an unknown id.
            assert (player.status_code, content.status_code, status.status_code) == (404, 404, 404), name

    played = AuditRecord.objects.filter(action="recordings.file.played")
    assert {record.data["file"] for record in played} == {services[name].composite.pk for name in expected}
    assert {record.actor_id for record in played} <= {str(team[person].pk)}


def test_the_player_plays_the_evidence_file_through_the_range_endpoint(
    client: Client, team: dict[str, User], services: dict[str, StoredService]
) -> None:
    force_login_verified(client, team["supervisor"])
    service = services["mine"]
    page = client.get(reverse("console:recording-player", args=[service.recording.pk]))
    html = page.content.decode()
    src = reverse("recordings:file-content", args=[service.composite.pk])
    assert (
        f'<video id="recording-video" class="recording-video" controls preload="metadata" playsinline\n           src="{src}">'
        in html
    )
    assert service.composite.sha256 in html
    assert page.context["evidence"] == service.composite
    # Chinese first: the page is in Simplified Chinese by default.
    assert '<html lang="zh-hans"' in html

    # The <video> element starts with "bytes=0-" (one playback, audited), then seeks with later ranges.
    start = client.get(src, headers={"range": "bytes=0-"})
    assert start.status_code == 206 and start["Accept-Ranges"] == "bytes" and _body(start) == service.content
    middle = client.get(src, headers={"range": "bytes=100-199"})
    assert middle.status_code == 206 and middle["Content-Range"] == f"bytes 100-199/{len(service.content)}"
    assert _body(middle) == service.content[100:200]
    download = client.get(src, {"download": "1"})
    assert download.status_code == 200 and _body(download) == service.content
    assert AuditRecord.objects.filter(action="recordings.file.played", data__file=service.composite.pk).count() == 1
    assert AuditRecord.objects.filter(action="recordings.file.downloaded", data__file=service.composite.pk).count() == 1


def test_a_failed_post_processing_shows_its_error_and_a_re_run_button_to_supervisors_only(
    client: Client, team: dict[str, User], make_recorded_service: Callable[..., StoredService]
) -> None:
    failed = make_recorded_service(agent=team["agent"], state=RecordingState.FAILED)
    processing = make_recorded_service(agent=team["agent"], state=RecordingState.PROCESSING)
    rerun = reverse("recordings:reprocess", args=[failed.recording.pk])

    force_login_verified(client, team["supervisor"])
    page = client.get(reverse("console:recordings"))
    html = page.content.decode()
    assert "janus-pp-rec: exit 1" in html
    assert f'data-reprocess="{rerun}"' in html
    # The processing one shows its progress, and the page polls the API while it is not settled.
    assert f'<tr data-recording="{processing.recording.pk}" data-state="processing">' in html
    assert '<progress max="100" value="40"' in html
    assert page.context["config"]["urls"]["status"].startswith(SEARCH)
    rows = {row["id"]: row for row in client.get(page.context["config"]["urls"]["status"]).json()["results"]}
    assert rows[processing.recording.pk]["progress"] == 40 and rows[processing.recording.pk]["state"] == "processing"
    assert rows[failed.recording.pk]["reprocess_url"] == rerun
    assert rows[failed.recording.pk]["error"] == "janus-pp-rec: exit 1"

    force_login_verified(client, team["compliance"])
    html = client.get(reverse("console:recordings")).content.decode()
    assert "janus-pp-rec: exit 1" in html and "data-reprocess" not in html
    assert client.get(SEARCH).json()["results"][0]["reprocess_url"] is None


def test_a_supervisor_cannot_re_run_a_recording_outside_their_team(
    client: Client, team: dict[str, User], make_recorded_service: Callable[..., StoredService]
) -> None:
    theirs = make_recorded_service(agent=team["other_agent"], state=RecordingState.FAILED)
    force_login_verified(client, team["supervisor"])
    assert client.post(reverse("recordings:reprocess", args=[theirs.recording.pk])).status_code == 404
    theirs.recording.refresh_from_db()
    assert theirs.recording.state == RecordingState.FAILED


def test_the_search_page_filters_with_its_form(
    client: Client, team: dict[str, User], make_recorded_service: Callable[..., StoredService]
) -> None:
    make_recorded_service(agent=team["agent"], business="activation")
    reset = make_recorded_service(agent=team["agent"], business="password_reset", outcome="cancelled")
    force_login_verified(client, team["compliance"])
    page = client.get(
        reverse("console:recordings"),
        {"business": "password_reset", "outcome": "cancelled", "call_from": "2000-01-01T00:00"},
    )
    assert [row["recording"].pk for row in page.context["rows"]] == [reset.recording.pk]
    # The page's poll asks the API for the same filters.
    polled = client.get(page.context["config"]["urls"]["status"]).json()
    assert [row["id"] for row in polled["results"]] == [reset.recording.pk]


@pytest.mark.parametrize(("person", "expected"), [("agent", {"mine"}), ("compliance", {"mine", "theirs"})])
def test_the_admin_lists_of_recordings_and_files_follow_the_same_rule(
    person: str, expected: set[str], client: Client, team: dict[str, User], services: dict[str, StoredService]
) -> None:
    force_login_verified(client, team[person])
    recordings = client.get(reverse("admin:recordings_recording_changelist"))
    assert recordings.status_code == 200
    assert {item.pk for item in recordings.context["cl"].result_list} == {
        services[name].recording.pk for name in expected
    }
    files = client.get(reverse("admin:recordings_recordingfile_changelist"))
    if person == "agent":
        assert files.status_code == 403  # agents reach their files through the player, not the admin
    else:
        assert {item.pk for item in files.context["cl"].result_list} == {
            services[name].composite.pk for name in expected
        }
