"""Words for the codes the audit trail and the evidence carry: no code reaches a compliance officer's screen.

Codes stay in the records (they are the evidence); these labels are only how
the workspace shows them and what its filters offer to choose from.
"""

from __future__ import annotations

from django.apps import apps as django_apps
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from apps.audit.actions import AuditAction
from apps.calls.models import CallEndReason
from apps.gates.models import Gate
from apps.operations.selectors import RESULT_LABELS
from apps.queueing.models import EndReason
from apps.verification.models import RefusalCode
from apps.visits.models import VisitOutcome

# Face and identity results as the gates record them (apps.gates), in words.
GATE_RESULT_LABELS: dict[str, Promise] = {
    "match": _("Matched"),
    "mismatch": _("Did not match"),
    "not_found": _("Not in the registry"),
    "registry_timeout": _("Registry did not answer in time"),
    "registry_unavailable": _("Registry unavailable"),
    "answers_right": _("Answers right"),
    "wrong_answers": _("Answers wrong"),
    "answers_incomplete": _("Answers incomplete"),
    "attempts_exhausted": _("No attempts left"),
    "check_timed_out": _("The check timed out"),
    "below_threshold": _("The faces differ more than the threshold allows"),
    "replayed_known_image": _("A known photo was shown to the camera instead of a live face"),
    "capture_failed": _("The live image could not be captured"),
    "liveness": _("Liveness failed"),
}
SCORE_LABELS: dict[str, Promise] = {
    "live_vs_id": _("Live image vs ID card photo"),
    "live_vs_registry": _("Live image vs registry photo"),
    "id_vs_registry": _("ID card photo vs registry photo"),
    "threshold": _("Threshold"),
    "distance": _("Distance"),
    "asked": _("Questions asked"),
    "wrong": _("Wrong answers"),
    "allowed_wrong": _("Wrong answers allowed"),
}


def reason_labels() -> dict[str, str | Promise]:
    labels: dict[str, str | Promise] = {}
    for choices in (RefusalCode, EndReason, CallEndReason, VisitOutcome):
        labels.update({choice.value: choice.label for choice in choices})
    labels.update(RESULT_LABELS)
    labels.update(GATE_RESULT_LABELS)
    labels["idle_timeout"] = _("Closed after a long silence")
    return labels


def reason_label(code: str) -> str:
    """A reason in words; ``gate:reason`` (a failed gate) as "Gate …: reason"; an unknown code says so."""
    if not code:
        return ""
    labels = reason_labels()
    if code in labels:
        return str(labels[code])
    gate, _sep, rest = code.partition(":")
    if gate in Gate.values:
        return f"{Gate(gate).label}：{reason_label(rest) if rest else ''}".rstrip("：")
    if gate in labels:  # a family with its detail ("liveness:no_face", "capture_failed:…"): the family in words
        return str(labels[gate])
    return str(_("Other reason"))


def action_choices() -> list[tuple[str, str]]:
    return [(str(action.value), str(action.label)) for action in AuditAction]


def target_type_choices() -> list[tuple[str, str]]:
    """The record types our apps audit, by their names."""
    return sorted(
        (
            (model._meta.label_lower, str(model._meta.verbose_name))
            for model in django_apps.get_models()
            if model.__module__.startswith("apps.")
        ),
        key=lambda item: item[1],
    )


def target_type_label(code: str) -> str:
    return dict(target_type_choices()).get(code, code and str(_("Other record")))


def outcome_reason_choices() -> list[tuple[str, str]]:
    return sorted(((code, str(label)) for code, label in reason_labels().items()), key=lambda item: item[1])
