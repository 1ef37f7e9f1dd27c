"""recordings_verify re-hashes snapshots and ID-card images too: a swapped file is named (issue #17 item 7)."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse
from PIL import Image, ImageOps

from apps.calls.models import Call
from apps.verification.models import Verification
from tests.fixtures.cardgen import generate_non_id_image
from tests.recordings.test_snapshots import _store

pytestmark = pytest.mark.django_db


def _mirror_in_place(name: str, *, raw: bool = False) -> None:
    """Replace a stored image by its mirror image: same size and kind, another picture.

    ``raw``: the stored bytes are not an image (an encrypted photo): write any other picture in their place.
    """
    if raw:
        image = Image.effect_noise((320, 240), 60).convert("RGB")
    else:
        with default_storage.open(name, "rb") as handle:
            image = Image.open(io.BytesIO(handle.read())).convert("RGB")
    buffer = io.BytesIO()
    ImageOps.mirror(image).save(buffer, format="JPEG")
    default_storage.delete(name)
    assert default_storage.save(name, ContentFile(buffer.getvalue())) == name


def test_a_mirrored_snapshot_is_detected(make_live_call: Callable[..., Call], agent: User, capsys: Any) -> None:
    call = make_live_call()
    # A frame as the capture service takes it from the customer's feed (tests/recordings/test_snapshots.py).
    snapshot = _store(call, agent)
    call_command("recordings_verify", "--call", str(call.public_id))
    assert "1 snapshots and ID-card images match" in capsys.readouterr().out

    _mirror_in_place(snapshot.image.name)
    with pytest.raises(CommandError, match="1 of 1 snapshots"):
        call_command("recordings_verify", "--call", str(call.public_id))
    assert f"MISMATCH snapshot {snapshot.image.name}" in capsys.readouterr().err


def test_a_swapped_id_card_photo_is_detected(
    client: Client, django_capture_on_commit_callbacks: Callable[..., Any], settings: Any, capsys: Any
) -> None:
    settings.GATE1_UPLOAD_COOLDOWN_SECONDS = 0
    response = client.post(
        reverse("verification:visit-start"), {"business": "activation", "mobile": "13912345678"}, "application/json"
    )
    assert response.status_code == 201
    photo = io.BytesIO(generate_non_id_image())
    photo.name = "card.jpg"
    # The OCR task is not run: only the stored photo and its hash matter here.
    with django_capture_on_commit_callbacks(execute=False):
        assert client.post(reverse("verification:visit-id-card"), {"photo": photo}).status_code == 202
    verification = Verification.objects.get()
    assert len(verification.id_card_photo_sha256) == 64
    call_command("recordings_verify")
    assert "1 snapshots and ID-card images match" in capsys.readouterr().out

    # Swapped by someone who holds the key (the picture changes, still sealed)...
    name = verification.id_card_photo.name
    mirrored = io.BytesIO()
    ImageOps.mirror(Image.open(verification.id_card_photo.open()).convert("RGB")).save(mirrored, format="JPEG")
    default_storage.delete(name)
    verification.id_card_photo.save(Path(name).name, ContentFile(mirrored.getvalue()), save=False)
    assert verification.id_card_photo.name == name
    with pytest.raises(CommandError):
        call_command("recordings_verify")
    assert f"MISMATCH id_card_photo {name}" in capsys.readouterr().err
    # ...or by someone who does not (the ciphertext no longer decrypts).
    _mirror_in_place(name, raw=True)
    with pytest.raises(CommandError):
        call_command("recordings_verify")
    assert f"MISMATCH id_card_photo {verification.id_card_photo.name}" in capsys.readouterr().err
