"""The staff's live pages, inside the back office's look (Django admin's base).

The pages only read; every action goes through the queueing API from the
browser, so the services (and their audit records) stay the only writers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.contrib.auth.decorators import user_passes_test
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_safe

from apps.console.charts import waiting_chart_svg
from apps.console.selectors import (
    business_labels,
    console_agents,
    console_waiting_entries,
    level_labels,
    queue_options,
    waiting_points_today,
)
from apps.queueing.models import AgentState, EntryState, ServiceQueue
from apps.queueing.selectors import agents_by_state, queue_figures
from apps.staff.models import StaffProfile
from apps.staff.roles import Role

SERVE = "queueing.serve_customers"
SUPERVISE = "queueing.supervise_queues"

CHART_WIDTH, CHART_HEIGHT = 480, 140


def staff_with_permission(permission: str) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Anonymous visitors go to the back office login; a logged-in user without ``permission`` gets 403."""

    def allowed(user: Any) -> bool:
        if not user.is_authenticated:
            return False
        if user.is_staff and user.has_perm(permission):
            return True
        raise PermissionDenied

    return user_passes_test(allowed)


def _state_labels() -> dict[str, Any]:
    return {state.value: state.label for state in AgentState}


def _common_messages() -> dict[str, Any]:
    return {
        "network": _("The server could not be reached. Check the network connection and try again."),
        "unexpected": _("Unexpected answer from the server (HTTP %(status)s)."),
        "session": _("Your session has ended. Log in again to continue."),
    }


def _service_messages() -> dict[str, Any]:
    """Texts of the gates and business panel (service.js)."""
    return {
        "gate_status": {
            "waiting": _("waiting"),
            "current": _("to do now"),
            "passed": _("passed"),
            "failed": _("failed"),
        },
        "scores": _("distances"),
        "live_vs_id": _("live–ID card"),
        "live_vs_registry": _("live–registry"),
        "id_vs_registry": _("ID card–registry"),
        "threshold": _("threshold"),
        "checking": _("Checking…"),
        "identity_check": _("Run the networked identity check"),
        "face_check": _("Verify the face with the latest snapshot"),
        "snapshot_first": _("Capture the customer's image first."),
        "questions_draw": _("Ask the private questions on the customer's phone"),
        "all_passed": _("All four checks passed. The business may be done."),
        "service_ended": _("A check failed. The service has ended."),
        "operation_states": {
            "awaiting_confirmation": _("waiting for confirmation"),
            "processing": _("with core banking"),
            "succeeded": _("done"),
            "failed": _("failed"),
            "cancelled": _("cancelled"),
        },
        "fields": {
            "address": _("Address"),
            "mobile": _("Mobile number"),
            "occupation": _("Occupation"),
            "id_valid_until": _("ID card valid until"),
            "status": _("Account status"),
        },
        "reported_lost_on": _("Reported lost on %(date)s."),
        "confirm": _("Confirm"),
        "cancel": _("Cancel"),
        "start": _("Start the business"),
        "waiting_pin": _("The customer is setting the PIN on their phone."),
        "waiting_confirm": _("The customer is confirming the change on their phone."),
        "record_answers": _("Record the answers"),
        "yes": _("Yes"),
        "no": _("No"),
        "certificate": _("Download the verification certificate (PDF)"),
    }


@require_safe
@staff_with_permission(SERVE)
def agent_workspace(request: HttpRequest) -> HttpResponse:
    """Where an agent sets their state, answers offers and ends services; live through ``/ws/agent/``."""
    # The decorator let only a logged-in staff user through.
    staff = StaffProfile.objects.filter(user=request.user).first() if isinstance(request.user, User) else None
    config = {
        "urls": {
            "me": reverse("queueing:agent-me"),
            "state": reverse("queueing:agent-state"),
            "service_end": reverse("queueing:agent-service-end"),
            # The entry id is filled in by the page.
            "accept": reverse("queueing:offer-accept", kwargs={"entry_id": 0}),
            "decline": reverse("queueing:offer-decline", kwargs={"entry_id": 0}),
            "socket": "/ws/agent/",
            "call_mine": reverse("calls:staff-my-call"),
            "calls": "/api/calls/",
            "gates": "/api/gates/",
            "operations": "/api/operations/",
        },
        # Who can be invited into a call, and where a customer can be transferred (R1.2).
        "experts": [
            {"id": member.pk, "name": f"{member.display_name} ({member.get_role_display()})"}
            for member in StaffProfile.objects.filter(role__in=(Role.EXPERT, Role.AGENT)).exclude(
                user__username=request.user.get_username()
            )
        ],
        "queues": [{"id": queue.pk, "name": queue.name} for queue in ServiceQueue.objects.order_by("code")],
        "states": _state_labels(),
        "businesses": business_labels(),
        "levels": level_labels(),
        "messages": _common_messages()
        | {
            "connecting": _("Connecting to live updates…"),
            "live": _("Live updates connected."),
            "reconnecting": _("Live updates lost; reconnecting in %(seconds)s s…"),
            "refused": _(
                "Live updates were refused: this login may not serve customers or has no staff profile. Log in again, then reload the page."
            ),
            "seconds_left": _("%(seconds)s s left to answer"),
            "expired": _("The offer has expired."),
            "offer_withdrawn": _("The customer left before the offer was answered."),
            "offer_missed": _("The offer was not answered in time."),
            "wrap_up": _("Service ended. Wrap-up: you become available again automatically."),
            "queue_paused": _("paused"),
            "no_queues": _("No queues are configured."),
            "call_connecting": _("Connecting the video…"),
            "call_connected": _("Video connected."),
            "call_ended": _("The call has ended."),
            "call_peer_left": _("The other side dropped; waiting for them to come back…"),
            "camera_refused": _("Camera or microphone access was refused. Allow it in the browser to continue."),
            "camera_missing": _("No camera or microphone was found."),
            "server_unreachable": _("The video connection dropped."),
            "invited": _("Invitation sent."),
            "invite_from": _("You are invited into a call by %(name)s."),
            "customer": _("Customer"),
            "agent": _("Agent"),
            "expert": _("Expert"),
            "mute": _("Mute"),
            "unmute": _("Unmute"),
            "camera_off": _("Camera off"),
            "camera_on": _("Camera on"),
            "quality": _("Connection quality"),
        }
        | _service_messages(),
    }
    context = {
        **admin.site.each_context(request),
        "title": _("Agent workspace"),
        "staff": staff,
        "figures": queue_figures(),
        "config": config,
    }
    return render(request, "console/agent.html", context)


@require_safe
@staff_with_permission(SUPERVISE)
def supervisor_live(request: HttpRequest) -> HttpResponse:
    """Queues, waiting customers and agents at a glance; figures refresh from the queueing API."""
    now = timezone.now()
    queues = queue_options()
    points = waiting_points_today(now=now)
    charts = [
        {
            "queue": queue,
            "points": len(points.get(queue.queue_id, [])),
            # Built only from numbers and fixed markup (apps/console/charts.py), so nothing to escape.
            "svg": mark_safe(  # noqa: S308
                waiting_chart_svg(points.get(queue.queue_id, []), width=CHART_WIDTH, height=CHART_HEIGHT)
            ),
        }
        for queue in queues
    ]
    states = _state_labels()
    config = {
        "urls": {
            "figures": reverse("queueing:figures"),
            "move": reverse("queueing:entry-move", kwargs={"entry_id": 0}),
            "staff_state": reverse("queueing:staff-state", kwargs={"staff_id": 0}),
        },
        "refresh_seconds": 2,
        "agents_refresh_seconds": 15,
        "queues": [{"id": queue.queue_id, "code": queue.code, "name": queue.name} for queue in queues],
        "states": states,
        "entry_states": {state.value: state.label for state in EntryState},
        "businesses": business_labels(),
        "levels": level_labels(),
        "messages": _common_messages()
        | {
            "updated": _("Updated at %(time)s."),
            "stale": _("Live figures unavailable: %(message)s Retrying every %(seconds)s s."),
            "nobody_waiting": _("Nobody is waiting."),
            "no_queues": _("No queues are configured."),
            "move_to": _("Move to…"),
            "moved": _("Customer moved to %(queue)s."),
            "state_set": _("%(name)s is now %(state)s."),
            "paused": _("paused"),
        },
    }
    context = {
        **admin.site.each_context(request),
        "title": _("Supervisor live view"),
        "figures": queue_figures(now=now),
        "agent_counts": [(states[state], count) for state, count in agents_by_state().items()],
        "waiting": console_waiting_entries(now=now),
        "agents": console_agents(now=now),
        "settable_states": [AgentState.AVAILABLE, AgentState.AWAY, AgentState.OFFLINE],
        "queues": queues,
        "charts": charts,
        "config": config,
    }
    return render(request, "console/supervisor.html", context)
