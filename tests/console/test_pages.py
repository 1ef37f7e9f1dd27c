"""The console's live pages: who may open them, what they show, in which language."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.contrib.staticfiles import finders
from django.test import Client
from django.urls import reverse
from django.utils import timezone, translation

from apps.console.selectors import local_day_start
from apps.customers.models import Customer, CustomerLevel
from apps.queueing.models import AgentState, QueueEntry, ServiceQueue
from apps.queueing.services.agents import agent_state_set
from apps.queueing.services.configuration import service_queue_upsert
from apps.queueing.services.entries import queue_entry_enqueue
from apps.queueing.services.housekeeping import queue_snapshots_take
from apps.staff.models import StaffProfile
from tests.conftest import SYSTEM
from tests.factories import visit_with_gate1
from tests.security.helpers import force_login_verified

pytestmark = pytest.mark.django_db

AGENT_PAGE = "/console/live/agent/"
SUPERVISOR_PAGE = "/console/live/supervisor/"


def _client_for(user: User) -> Client:
    client = Client()
    force_login_verified(client, user)
    return client


@pytest.fixture
def queues() -> tuple[ServiceQueue, ServiceQueue]:
    activation = service_queue_upsert(actor=SYSTEM, code="activation", name="激活队列", businesses=["activation"])
    general = service_queue_upsert(actor=SYSTEM, code="general", name="综合队列", businesses=["password_reset"])
    return activation, general


@pytest.fixture
def waiting_entry(queues: tuple[ServiceQueue, ServiceQueue], make_customer: Callable[..., Customer]) -> QueueEntry:
    customer = make_customer(level=CustomerLevel.GOLD)
    # A visit that passed Gate 1 (its flow is tested in tests/verification).
    visit = visit_with_gate1(business_code="activation", mobile=customer.mobile, customer=customer, state="queue_ready")
    return queue_entry_enqueue(visit_id=visit.pk)


def _polyline_vertices(html: str) -> list[list[str]]:
    return [points.split() for points in re.findall(r'<polyline[^>]* points="([^"]*)"', html)]


# --- Who may open the pages ------------------------------------------------------------


def test_an_agent_opens_the_agent_workspace_wired_to_the_queueing_api_and_socket(agent: User) -> None:
    response = _client_for(agent).get(AGENT_PAGE)
    assert response.status_code == 200
    assert response.templates[0].name == "console/agent.html"
    html = response.content.decode()
    for state in ("available", "away", "offline"):
        assert f'data-set-state="{state}"' in html
    assert 'id="offer-accept"' in html
    assert 'id="service-end"' in html
    config = response.context["config"]
    assert config["urls"]["state"] == "/api/queueing/agent/state/"
    assert config["urls"]["accept"] == "/api/queueing/offers/0/accept/"
    assert config["urls"]["decline"] == "/api/queueing/offers/0/decline/"
    assert config["urls"]["service_end"] == "/api/queueing/agent/service-end/"
    assert config["urls"]["socket"] == "/ws/agent/"
    assert 'id="console-config"' in html


@pytest.mark.parametrize("role", ["supervisor", "compliance_officer"])
def test_staff_who_do_not_serve_customers_are_refused_the_agent_workspace(
    role: str, request: pytest.FixtureRequest
) -> None:
    user: User = request.getfixturevalue(role)
    assert _client_for(user).get(AGENT_PAGE).status_code == 403


def test_a_supervisor_opens_the_supervisor_live_view(supervisor: User, queues: tuple[ServiceQueue, ...]) -> None:
    response = _client_for(supervisor).get(SUPERVISOR_PAGE)
    assert response.status_code == 200
    html = response.content.decode()
    assert "激活队列" in html
    assert "综合队列" in html
    assert response.context["config"]["urls"]["figures"] == "/api/queueing/figures/"
    assert response.context["config"]["urls"]["move"] == "/api/queueing/entries/0/move/"
    assert response.context["config"]["urls"]["staff_state"] == "/api/queueing/staff/0/state/"


@pytest.mark.parametrize("role", ["agent", "compliance_officer"])
def test_staff_who_do_not_supervise_are_refused_the_supervisor_live_view(
    role: str, request: pytest.FixtureRequest
) -> None:
    user: User = request.getfixturevalue(role)
    assert _client_for(user).get(SUPERVISOR_PAGE).status_code == 403


@pytest.mark.parametrize("page", [AGENT_PAGE, SUPERVISOR_PAGE])
def test_anonymous_visitors_are_sent_to_the_back_office_login(client: Client, page: str) -> None:
    response = client.get(page)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('admin:login')}?next={page}"


def test_the_live_pages_only_read_and_refuse_posts(agent: User) -> None:
    assert _client_for(agent).post(AGENT_PAGE).status_code == 405


def test_the_admin_index_links_only_the_live_pages_the_user_may_open(
    agent: User, supervisor: User, compliance_officer: User
) -> None:
    agent_html = _client_for(agent).get(reverse("admin:index")).content.decode()
    assert f'href="{AGENT_PAGE}"' in agent_html
    assert f'href="{SUPERVISOR_PAGE}"' not in agent_html

    supervisor_html = _client_for(supervisor).get(reverse("admin:index")).content.decode()
    assert f'href="{SUPERVISOR_PAGE}"' in supervisor_html
    assert f'href="{AGENT_PAGE}"' not in supervisor_html

    # Compliance officers serve no customers and supervise no queue; they search recordings.
    officer_html = _client_for(compliance_officer).get(reverse("admin:index")).content.decode()
    assert f'href="{AGENT_PAGE}"' not in officer_html and f'href="{SUPERVISOR_PAGE}"' not in officer_html
    assert f'href="{reverse("console:recordings")}"' in officer_html


# --- What the pages show ---------------------------------------------------------------


def test_the_pages_give_their_scripts_a_csrf_token_that_the_api_accepts(agent: User) -> None:
    # The CSRF cookie is HttpOnly, so scripts cannot read it: the page must carry the token.
    client = Client(enforce_csrf_checks=True)
    client.force_login(agent)
    html = client.get(AGENT_PAGE).content.decode()
    token = re.search(r'<meta name="csrf-token" content="([^"]+)">', html)
    assert token is not None

    refused = client.post("/api/queueing/agent/state/", {"state": "away"}, content_type="application/json")
    assert refused.status_code == 403
    accepted = client.post(
        "/api/queueing/agent/state/",
        {"state": "away"},
        content_type="application/json",
        headers={"X-CSRFToken": token.group(1)},
    )
    assert accepted.status_code == 200, accepted.content
    assert accepted.json() == {"state": "away"}


def test_the_scripts_and_styles_the_pages_load_exist() -> None:
    for name in ("console/console.js", "console/agent.js", "console/supervisor.js", "console/console.css"):
        assert finders.find(name), name


def test_the_agent_workspace_shows_the_queue_figures_at_load(agent: User, waiting_entry: QueueEntry) -> None:
    html = _client_for(agent).get(AGENT_PAGE).content.decode()
    table = html[html.index('id="figures-table"') : html.index("</table>", html.index('id="figures-table"'))]
    row = re.search(r"<td>激活队列</td>\s*<td class=\"number\">(\d+)</td>", table)
    assert row is not None, table
    assert row.group(1) == "1"


def test_the_supervisor_view_lists_a_waiting_customer_with_why_they_still_wait(
    supervisor: User, waiting_entry: QueueEntry, queues: tuple[ServiceQueue, ServiceQueue]
) -> None:
    activation, general = queues
    html = _client_for(supervisor).get(SUPERVISOR_PAGE, headers={"accept-language": "en"}).content.decode()
    row = re.search(rf'<tr data-entry="{waiting_entry.pk}">(.*?)</tr>', html, re.DOTALL)
    assert row is not None, html
    cells = row.group(1)
    assert "激活队列" in cells
    assert "Account activation" in cells
    assert "Gold" in cells
    # Nobody with the activation skill is logged in.
    assert "No agent with this skill is logged in" in cells
    # The customer can be moved to the other queue, not to the one they are in.
    assert f'<option value="{general.pk}">综合队列</option>' in cells
    assert f'<option value="{activation.pk}">' not in cells


def test_the_waiting_customers_pending_reason_is_in_the_pages_language(
    supervisor: User, waiting_entry: QueueEntry
) -> None:
    html = _client_for(supervisor).get(SUPERVISOR_PAGE).content.decode()
    with translation.override("zh-hans"):
        reason = str(translation.gettext("No agent with this skill is logged in"))
    assert reason in html


def test_the_supervisor_view_lists_agents_and_experts_with_their_state(
    supervisor: User, agent: User, expert: User, compliance_officer: User
) -> None:
    agent_state_set(actor=SYSTEM, staff=StaffProfile.objects.get(user=agent), state=AgentState.AVAILABLE)
    response = _client_for(supervisor).get(SUPERVISOR_PAGE, headers={"accept-language": "en"})
    rows = {row.employee_number: row for row in response.context["agents"]}
    agent_profile = StaffProfile.objects.get(user=agent)
    expert_profile = StaffProfile.objects.get(user=expert)
    assert set(rows) == {agent_profile.employee_number, expert_profile.employee_number}
    assert rows[agent_profile.employee_number].state == "available"
    assert rows[expert_profile.employee_number].state == "offline"  # never logged in to the queues
    html = response.content.decode()
    agent_row = re.search(rf'<tr data-staff="{agent_profile.pk}">(.*?)</tr>', html, re.DOTALL)
    assert agent_row is not None
    assert '<td class="agent-state" data-state="available">Available</td>' in agent_row.group(1)
    assert 'class="state-select"' in agent_row.group(1)


def test_the_supervisor_view_draws_todays_waiting_per_queue_from_the_snapshots(
    supervisor: User, waiting_entry: QueueEntry, queues: tuple[ServiceQueue, ServiceQueue]
) -> None:
    start = local_day_start(timezone.now())
    queue_snapshots_take(now=start - timedelta(hours=1))  # yesterday: not on today's chart
    for minute in range(5):
        queue_snapshots_take(now=start + timedelta(hours=9, minutes=minute))
    response = _client_for(supervisor).get(SUPERVISOR_PAGE)
    charts = {chart["queue"].code: chart for chart in response.context["charts"]}
    assert charts["activation"]["points"] == 5
    html = response.content.decode()
    lines = _polyline_vertices(html)
    assert [len(vertices) for vertices in lines] == [5, 5]
    assert "09:00" in html


def test_a_queue_without_snapshots_today_says_so_instead_of_an_empty_chart(
    supervisor: User, queues: tuple[ServiceQueue, ServiceQueue]
) -> None:
    html = _client_for(supervisor).get(SUPERVISOR_PAGE, headers={"accept-language": "en"}).content.decode()
    assert html.count("No snapshots yet today.") == 2
    assert "waiting-chart" not in html


# --- Languages ---------------------------------------------------------------------------


@pytest.mark.parametrize(("page", "role"), [(AGENT_PAGE, "agent"), (SUPERVISOR_PAGE, "supervisor")])
def test_the_pages_are_in_chinese_by_default_and_in_english_on_request(
    page: str, role: str, request: pytest.FixtureRequest
) -> None:
    client = _client_for(request.getfixturevalue(role))
    title = "Agent workspace" if page == AGENT_PAGE else "Supervisor live view"

    chinese = client.get(page).content.decode()
    assert '<html lang="zh-hans"' in chinese
    assert "远程银行视频柜台" in chinese  # the product's one title, in the header
    with translation.override("zh-hans"):
        assert f"<h1>{translation.gettext(title)}</h1>" in chinese

    english = client.get(page, headers={"accept-language": "en"}).content.decode()
    assert '<html lang="en"' in english
    assert "RemoteBank video counter" in english
    assert f"<h1>{title}</h1>" in english
    assert "远程银行视频柜台" not in english


def test_an_agent_sees_in_the_back_office_only_the_customers_of_their_own_services(
    agent: User, compliance_officer: User, make_customer: Callable[..., Customer], queues: tuple[ServiceQueue, ...]
) -> None:
    """Issue #19: agents could browse every customer. An agent sees those they serve; compliance sees all."""
    from tests.compliance.servicegen import seed_service

    customers = [make_customer() for _number in range(3)]
    changelist = "/console/customers/customer/"
    agent_client = _client_for(agent)
    assert agent_client.get(changelist).context["cl"].result_count == 0
    seed_service(
        customer=customers[1],
        started=timezone.now() - timedelta(minutes=5),
        queue=queues[0],
        agent=StaffProfile.objects.get(user=agent),
        wait_seconds=5,
    )
    shown = agent_client.get(changelist).context["cl"]
    assert [customer.pk for customer in shown.result_list] == [customers[1].pk]
    compliance_page = _client_for(compliance_officer).get(changelist)
    assert compliance_page.context["cl"].result_count == Customer.objects.count() == 3


def test_the_wallboards_help_text_is_printed_once_whatever_the_number_of_queues(
    supervisor: User, queues: tuple[ServiceQueue, ...]
) -> None:
    """Issue #19: the wallboard printed its help text three times."""
    html = _client_for(supervisor).get(SUPERVISOR_PAGE, headers={"accept-language": "en"}).content.decode()
    assert len(queues) == 2
    assert html.count("Service level: share of today") == 1
