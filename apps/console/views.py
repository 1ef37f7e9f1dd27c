"""The staff's live pages, inside the back office's look (Django admin's base).

The pages only read; every action goes through the queueing API from the
browser, so the services (and their audit records) stay the only writers.
The blocks page is the one form post: its lift view only calls the service
(``visit_block_lift``, which audits) and redirects back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth.decorators import user_passes_test
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST, require_safe

from apps.calls.models import Call
from apps.calls.selectors import call_current_for_staff, call_get, calls_live_for_supervisor
from apps.common.errors import ApplicationError, NotFound
from apps.common.masking import mask_mobile, mask_name
from apps.console.charts import waiting_chart_svg
from apps.console.forms import RecordingSearchForm
from apps.console.selectors import (
    agent_state_counts,
    business_labels,
    console_agents,
    console_waiting_entries,
    level_labels,
    queue_options,
    waiting_points_today,
)
from apps.queueing.models import AgentState, EntryState, ServiceQueue
from apps.queueing.selectors import agent_snapshot_for_staff, queue_figures
from apps.recordings.models import RecordingFileKind, RecordingState
from apps.recordings.selectors import (
    evidence_file,
    recording_agents,
    recording_visible_to,
    recordings_search,
    snapshots_for_call,
)
from apps.staff.models import StaffProfile
from apps.staff.roles import Role
from apps.staff.selectors import staff_profile_for
from apps.visits.selectors import visit_blocks_in_force
from apps.visits.services import visit_block_lift

SERVE = "queueing.serve_customers"
SUPERVISE = "queueing.supervise_queues"
VIEW_RECORDINGS = "recordings.view_recording"
PLAY_RECORDINGS = "recordings.play_recording"
REPROCESS_RECORDINGS = "recordings.reprocess_recording"
RECORDINGS_PER_PAGE = 25
# While a recording is waiting or being processed the list asks the API again this often.
RECORDINGS_REFRESH_SECONDS = 3

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
        "waiting_intent": _("The legal representative is answering the intent questions on their phone."),
        "application": _("Application %(application)s · %(company)s · credit code %(credit_code)s"),
        "certificate": _("Download the verification certificate (PDF)"),
    }


def _invitees(request: HttpRequest) -> list[dict[str, Any]]:
    """Who the agent can bring into their current call: available now and skilled for its business.

    Each is shown with their role and state (always "available" here: anyone
    else could not pick the call up); without a current call, nobody.
    """
    staff = staff_profile_for(request.user)
    call = call_current_for_staff(staff=staff) if staff is not None else None
    if call is None or staff is None:
        return []
    state_label = AgentState(AgentState.AVAILABLE).label
    return [
        {
            "id": member.pk,
            "name": f"{member.display_name} ({member.get_role_display()} · {state_label})",
            "state": AgentState.AVAILABLE.value,
        }
        for member in StaffProfile.objects.filter(
            role__in=(Role.EXPERT, Role.AGENT),
            presence__state=AgentState.AVAILABLE,
            skills__business_code=call.visit.business_code,
        )
        .exclude(pk=staff.pk)
        .distinct()
        .order_by("role", "employee_number")
    ]


@require_safe
@staff_with_permission(SERVE)
def agent_invitees(request: HttpRequest) -> JsonResponse:
    """The colleagues available now and skilled for the call's business (refreshed when the agent opens it)."""
    return JsonResponse({"invitees": _invitees(request)})


@require_safe
@staff_with_permission(SERVE)
def agent_workspace(request: HttpRequest) -> HttpResponse:
    """Where an agent sets their state, answers offers and ends services; live through ``/ws/agent/``."""
    staff = staff_profile_for(request.user)
    config = {
        "urls": {
            "state": reverse("queueing:agent-state"),
            "service_end": reverse("queueing:agent-service-end"),
            # The entry id is filled in by the page.
            "accept": reverse("queueing:offer-accept", kwargs={"entry_id": 0}),
            "decline": reverse("queueing:offer-decline", kwargs={"entry_id": 0}),
            "socket": "/ws/agent/",
            "calls": "/api/calls/",
            "gates": "/api/gates/",
            "operations": "/api/operations/",
            "invitees": reverse("console:agent-invitees"),
        },
        # Who can be invited into a call, and where a customer can be transferred (R1.2).
        # Only colleagues who are available now: an offline or busy one cannot pick the call up.
        "experts": _invitees(request),
        "queues": [{"id": queue.pk, "name": queue.name} for queue in ServiceQueue.objects.order_by("code")],
        # What the server holds now, for the first paint (and for a page whose
        # socket cannot connect); the socket then pushes every change.
        "snapshot": agent_snapshot_for_staff(staff=staff),
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
            "supervisor": _("Supervisor"),
            "supervisor_joined": _("A supervisor has joined the call."),
            "supervisor_left": _("The supervisor has left the call."),
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
    agents = console_agents(now=now)
    config = {
        # Agents and experts in all: the figures API counts presences, and who never logged in is offline too.
        "staff_total": len(agents),
        # Per queue, the wallboard tiles' targets (green when met, amber within a quarter, red beyond).
        "targets": {
            queue.code: {
                "waiting": queue.target_waiting,
                "longest_wait_seconds": queue.target_longest_wait_seconds,
                "service_level": queue.target_service_level_percent / 100,
                "abandon_rate": queue.target_abandon_rate_percent / 100,
            }
            for queue in ServiceQueue.objects.all()
        },
        # Today's waiting counts per queue for the charts (Chart.js, served from static/vendor).
        "chart_points": {str(queue_id): series for queue_id, series in points.items()},
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
            "kpi_waiting": _("Waiting"),
            "kpi_longest": _("Longest wait"),
            "kpi_service_level": _("Service level"),
            "kpi_abandon": _("Abandon rate"),
            "kpi_target": _("Target %(target)s"),
            "chart_waiting": _("Customers waiting"),
        },
    }
    supervisor = staff_profile_for(request.user)
    business_names = business_labels()
    live_calls = [
        {
            "public_id": live.public_id,
            "agent_name": live.agent_name,
            "business_label": business_names.get(live.business_code, live.business_code),
            "since": live.since,
        }
        for live in (calls_live_for_supervisor(supervisor=supervisor) if supervisor is not None else [])
    ]
    context = {
        **admin.site.each_context(request),
        "title": _("Supervisor live view"),
        "live_calls": live_calls,
        "may_enter_calls": supervisor is not None and supervisor.role == Role.SUPERVISOR,
        "figures": queue_figures(now=now),
        "agent_counts": [(states[state], count) for state, count in agent_state_counts(agents).items()],
        "waiting": console_waiting_entries(now=now),
        "agents": agents,
        "settable_states": [AgentState.AVAILABLE, AgentState.AWAY, AgentState.OFFLINE],
        "queues": queues,
        "charts": charts,
        "config": config,
    }
    return render(request, "console/supervisor.html", context)


@require_safe
@staff_with_permission(SUPERVISE)
def supervisor_call(request: HttpRequest, public_id: str) -> HttpResponse:
    """A supervisor in a live call of their team: listening silently or joined (issue 21).

    The page only reads: it enters the call through the calls API (POST
    ``supervise/``, the service checks team and state) with the mode chosen
    on the wallboard, and leaves through it.
    """
    try:
        call: Call = call_get(public_id=public_id)
    except NotFound as missing:
        raise Http404 from missing
    mode = request.GET.get("mode", "listen")
    if mode not in ("listen", "join"):
        mode = "listen"
    config = {
        "mode": mode,
        "urls": {
            "seat": reverse("calls:supervise", args=[call.public_id]),
            "leave": reverse("calls:supervise-leave", args=[call.public_id]),
            "wallboard": reverse("console:supervisor"),
        },
        "messages": _common_messages()
        | {
            "customer": _("Customer"),
            "agent": _("Agent"),
            "expert": _("Expert"),
            "assisting_agent": _("Second agent"),
            "supervisor": _("Supervisor"),
            "entering": _("Entering the call…"),
            "listening": _("Listening silently: the customer and the agent do not see or hear you."),
            "joined": _("You have joined the call: the customer and the agent see and hear you."),
            "call_ended": _("The call has ended."),
            "left": _("You have left the call."),
            "camera_refused": _("Camera or microphone access was refused. Allow it in the browser to continue."),
            "camera_missing": _("No camera or microphone was found."),
            "server_unreachable": _("The video connection dropped."),
        },
    }
    context = {
        **admin.site.each_context(request),
        "title": _("Supervising a call"),
        "call": call,
        "business": business_labels().get(call.visit.business_code, call.visit.business_code),
        "config": config,
    }
    return render(request, "console/supervisor_call.html", context)


def _recording_state_labels() -> dict[str, Any]:
    return {state.value: state.label for state in RecordingState}


def _recording_messages() -> dict[str, Any]:
    return _common_messages() | {
        "refreshing": _("Post-processing under way: progress refreshes every %(seconds)s s."),
        "settled": _("Nothing is being processed."),
        "stale": _("Progress unavailable: %(message)s Retrying every %(seconds)s s."),
        "reprocess_queued": _("Post-processing queued again."),
    }


@require_safe
@staff_with_permission(VIEW_RECORDINGS)
def recordings_list(request: HttpRequest) -> HttpResponse:
    """Search the recordings of the services this user may see (R3.3); progress refreshes while processing."""
    assert isinstance(request.user, User)  # the decorator let only a logged-in staff user through
    form = RecordingSearchForm(request.GET or None)
    search = form.search()
    paginator = Paginator(recordings_search(user=request.user, search=search), RECORDINGS_PER_PAGE)
    page = paginator.get_page(request.GET.get("page"))
    may_reprocess = request.user.has_perm(REPROCESS_RECORDINGS)
    rows = [
        {
            "recording": recording,
            "agents": recording_agents(recording),
            "evidence": evidence_file(recording),
            "may_reprocess": may_reprocess and recording.state == RecordingState.FAILED,
        }
        for recording in page.object_list
    ]
    query = request.GET.copy()
    query.pop("page", None)
    api_query = query.copy()
    api_query["limit"] = str(RECORDINGS_PER_PAGE)
    api_query["offset"] = str((page.number - 1) * RECORDINGS_PER_PAGE)
    if "call_from" in api_query:
        api_query["from"] = api_query.pop("call_from")[-1]
    if "call_until" in api_query:
        api_query["until"] = api_query.pop("call_until")[-1]
    config = {
        "urls": {"status": f"{reverse('recordings:search')}?{api_query.urlencode()}"},
        "states": _recording_state_labels(),
        "refresh_seconds": RECORDINGS_REFRESH_SECONDS,
        "messages": _recording_messages(),
    }
    context = {
        **admin.site.each_context(request),
        "title": _("Recordings"),
        "form": form,
        "page": page,
        "rows": rows,
        "query": query.urlencode(),
        "active_states": [RecordingState.PENDING, RecordingState.PROCESSING],
        "config": config,
    }
    return render(request, "console/recordings.html", context)


@require_safe
@staff_with_permission(PLAY_RECORDINGS)
def recording_player(request: HttpRequest, recording_id: int) -> HttpResponse:
    """Play a call's evidence file in the browser (range requests, so seeking works); files and snapshots."""
    assert isinstance(request.user, User)
    recording = recording_visible_to(user=request.user, recording_id=recording_id)
    if recording is None:
        # Not "forbidden": whether a service the user may not see exists is not theirs to learn.
        raise Http404
    files = [item for item in recording.files.all() if item.kind != RecordingFileKind.ORIGINAL_MJR]
    config = {
        "urls": {"status": reverse("recordings:call-recording", args=[recording.call.public_id])},
        "states": _recording_state_labels(),
        "refresh_seconds": RECORDINGS_REFRESH_SECONDS,
        "messages": _recording_messages(),
    }
    context = {
        **admin.site.each_context(request),
        "title": _("Recording of service %(service)s") % {"service": recording.call.visit.public_id},
        "recording": recording,
        "call": recording.call,
        "visit": recording.call.visit,
        "agents": recording_agents(recording),
        "evidence": evidence_file(recording),
        "files": files,
        "snapshots": list(snapshots_for_call(call=recording.call)),
        "may_reprocess": request.user.has_perm(REPROCESS_RECORDINGS) and recording.state == RecordingState.FAILED,
        "config": config,
    }
    return render(request, "console/recording_player.html", context)


# The gate whose failure caused a block (the reason's prefix, apps.visits.services.BLOCKING_GATES).
_BLOCK_GATES = {"identity": _("Networked identity check"), "face": _("Face verification")}


@require_safe
@staff_with_permission(SUPERVISE)
def visit_blocks(request: HttpRequest) -> HttpResponse:
    """The remote-service blocks in force after a failed Gate 2 or 3, each with a form to lift it (issue 14)."""
    rows = [
        {
            "block": block,
            "customer": mask_name(block.customer.name) if block.customer is not None else "",
            "mobile": mask_mobile(block.visit.mobile),
            "gate": _BLOCK_GATES.get(block.reason.partition(":")[0], ""),
        }
        for block in visit_blocks_in_force()
    ]
    context = {
        **admin.site.each_context(request),
        "title": _("Remote service blocks"),
        "rows": rows,
        "block_hours": settings.VISIT_BLOCK_HOURS,
        "config": {"messages": _common_messages()},
    }
    return render(request, "console/blocks.html", context)


@require_POST
@staff_with_permission(SUPERVISE)
def visit_block_lift_form(request: HttpRequest, block_id: int) -> HttpResponse:
    """Lift one block with the supervisor's reason (the service audits who and why); back to the list."""
    user = request.user
    assert isinstance(user, User)  # staff_with_permission let only a logged-in user through
    try:
        block = visit_block_lift(actor=user, block_id=block_id, reason=request.POST.get("reason", ""))
    except ApplicationError as error:
        messages.error(request, str(error.message))
    else:
        messages.success(
            request,
            _("The block after service %(service)s is lifted; the customer may start remote visits again.")
            % {"service": block.visit.public_id},
        )
    return redirect("console:blocks")
