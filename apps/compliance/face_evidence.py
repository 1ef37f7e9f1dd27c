"""Reads for Gate 3's evidence: the three faces an attempt compared, and its distances in words.

A compliance officer judging a face failure needs what the agent saw: the
live frame the server took, the portrait cut from the customer's ID card and
the registry's photo on file, side by side with the distances and the
thresholds. The images are personal data: only the compliance role receives
them (``face_images_visible_to``), one by one through an audited view
(``services.service_face_image_open``); other roles see the scores only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models.fields.files import FieldFile
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from apps.common.errors import NotFound, PermissionDenied
from apps.compliance.labels import SCORE_LABELS
from apps.gates.models import Gate, GateAttempt
from apps.staff.roles import Role

# The three images of a Gate 3 attempt, in the order the page shows them (the agent page's words).
FACE_IMAGE_LABELS: dict[str, Promise] = {
    "live": gettext_lazy("Live image (server capture)"),
    "id_portrait": gettext_lazy("ID-card portrait"),
    "registry": gettext_lazy("Registry photo"),
}
# The three distances the face engine measures (apps.gates.integrations.face.COMPARISONS).
COMPARISONS = ("live_vs_id", "live_vs_registry", "id_vs_registry")


@dataclass(frozen=True)
class FaceImage:
    kind: str
    label: str
    # False when there is nothing to show: never taken, or removed by retention.
    available: bool


@dataclass(frozen=True)
class FaceComparison:
    label: str
    # "0.412 (threshold 0.450): same person" — one line a person reads.
    text: str
    within: bool


@dataclass(frozen=True)
class FaceEvidence:
    images: list[FaceImage]
    comparisons: list[FaceComparison]
    liveness: str


def face_images_visible_to(*, user: Any) -> bool:
    """Only the compliance role sees the faces on the evidence page (agents and supervisors see the scores)."""
    profile = getattr(user, "staff_profile", None) if user.is_authenticated else None
    return bool(user.is_active and profile is not None and profile.role == Role.COMPLIANCE_OFFICER)


def _image_file(attempt: GateAttempt, kind: str) -> tuple[FieldFile | None, str]:
    """The stored file of one of an attempt's three images and its recorded SHA-256 ("" when absent)."""
    if kind == "live":
        snapshot = attempt.snapshot
        if snapshot is None or snapshot.purged_at is not None or not snapshot.image:
            return None, ""
        return snapshot.image, snapshot.sha256
    visit = attempt.progress.visit
    if kind == "id_portrait":
        verification = getattr(visit, "verification", None)
        if verification is None or verification.photos_purged_at is not None or not verification.id_card_portrait:
            return None, ""
        return verification.id_card_portrait, verification.id_card_portrait_sha256
    if kind == "registry":
        photo = attempt.progress.registry_photo
        return (photo, "") if photo else (None, "")
    raise NotFound(_("This image does not exist."), code="face_image_not_found")


def _comparisons(scores: dict[str, Any]) -> list[FaceComparison]:
    given = scores.get("thresholds")
    thresholds: dict[str, Any] = given if isinstance(given, dict) else {}
    comparisons = []
    for name in COMPARISONS:
        label = SCORE_LABELS[name]
        distance = scores.get(name)
        if not isinstance(distance, int | float):
            continue
        threshold = thresholds.get(name, scores.get("threshold"))
        if isinstance(threshold, int | float):
            within = distance <= threshold
            verdict = _("same person") if within else _("not the same person")
            text = _("distance %(distance).3f (threshold %(threshold).3f): %(verdict)s") % {
                "distance": distance,
                "threshold": threshold,
                "verdict": verdict,
            }
        else:
            within, text = False, _("distance %(distance).3f") % {"distance": distance}
        comparisons.append(FaceComparison(label=str(label), text=text, within=within))
    return comparisons


def _liveness(scores: dict[str, Any]) -> str:
    liveness = scores.get("liveness")
    if not isinstance(liveness, dict) or "passed" not in liveness:
        return ""
    return _("Liveness passed") if liveness["passed"] else _("Liveness failed")


def face_evidence_for(*, attempt: GateAttempt, images_shown: bool) -> FaceEvidence | None:
    """A Gate 3 attempt's evidence for the page (None for the other gates); images only if ``images_shown``."""
    if attempt.gate != Gate.FACE:
        return None
    images = (
        [
            FaceImage(kind=kind, label=str(label), available=_image_file(attempt, kind)[0] is not None)
            for kind, label in FACE_IMAGE_LABELS.items()
        ]
        if images_shown
        else []
    )
    scores = attempt.scores if isinstance(attempt.scores, dict) else {}
    return FaceEvidence(images=images, comparisons=_comparisons(scores), liveness=_liveness(scores))


def face_image_get_visible(*, user: Any, visit: Any, attempt_id: int, kind: str) -> tuple[GateAttempt, FieldFile, str]:
    """One image of one Gate 3 attempt of ``visit`` for ``user`` (compliance role only): attempt, file, SHA-256."""
    if not face_images_visible_to(user=user):
        raise PermissionDenied(_("Only the compliance role may see the faces of a service."), code="faces_not_visible")
    attempt = (
        GateAttempt.objects.select_related("progress__visit__verification", "snapshot")
        .filter(pk=attempt_id, progress__visit=visit, gate=Gate.FACE)
        .first()
    )
    if attempt is None or kind not in FACE_IMAGE_LABELS:
        raise NotFound(_("This image does not exist."), code="face_image_not_found")
    stored, sha256 = _image_file(attempt, kind)
    if stored is None:
        raise NotFound(
            _("This image is not stored (never taken, or removed after the retention period)."),
            code="face_image_missing",
        )
    return attempt, stored, sha256
