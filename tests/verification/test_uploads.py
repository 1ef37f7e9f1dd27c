"""Every oversized or hostile upload class gets its own clear answer, and nothing is left on disk (issue #15 item 4)."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.urls import reverse
from PIL import Image

from apps.common.images import ImageRejected, load_untrusted_image
from apps.common.uploads import request_body_limit
from apps.verification.messages import message_for
from tests.verification.test_gate1_flow import Visitor, _file

pytestmark = pytest.mark.django_db


def _photo_jpeg(width: int, height: int, quality: int = 70) -> bytes:
    """A photo-like JPEG (smooth noise enlarged), as a phone camera would produce."""
    small = np.random.default_rng(7).integers(0, 255, (height // 40, width // 40, 3), dtype=np.uint8)
    image = Image.fromarray(small).resize((width, height), Image.Resampling.BILINEAR)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def _files_under(root: Path) -> set[Path]:
    return {path for path in root.rglob("*") if path.is_file()} if root.exists() else set()


@pytest.fixture
def visitor(client: Client, django_capture_on_commit_callbacks: Any, settings: Any, tmp_path: Path) -> Visitor:
    settings.GATE1_UPLOAD_COOLDOWN_SECONDS = 0
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path / "upload-tmp")
    (tmp_path / "upload-tmp").mkdir()
    visitor = Visitor(client, django_capture_on_commit_callbacks)
    visitor.start()
    return visitor


def test_a_108_megapixel_phone_photo_is_decoded_small_not_refused() -> None:
    data = _photo_jpeg(12000, 9000)
    image = load_untrusted_image(data, max_bytes=len(data) + 1, max_side=1600)
    assert max(image.size) == 1600
    assert image.size == (1600, 1200)


@pytest.mark.parametrize(
    ("make", "code", "status"),
    [
        (lambda: b"", "empty", 400),
        (lambda: b"%PDF-1.4 not a photo", "not_an_image", 400),
        (lambda: _gif(), "unsupported_format", 400),  # noqa: PLW0108 - defined below
        (lambda: _photo_jpeg(800, 600)[:5000], "truncated", 400),
        (lambda: _detailed_png(8000, 6250), "too_many_pixels", 400),
        (lambda: _flat_png(30000, 30000), "decompression_bomb", 400),
        (lambda: _flat_jpeg_declaring(60000, 60000), "decompression_bomb", 400),
        (lambda: b"\xff\xd8\xff" + b"\0" * (26 * 1024 * 1024), "too_large_bytes", 413),
    ],
    ids=["empty", "not-an-image", "gif", "truncated", "50mp-png", "png-bomb", "jpeg-bomb", "26mb-body"],
)
def test_each_bad_upload_class_has_its_own_message_and_leaves_nothing_on_disk(
    visitor: Visitor, tmp_path: Path, make: Any, code: str, status: int
) -> None:
    response = visitor.client.post(reverse("verification:visit-id-card"), {"photo": _file(make(), "card.jpg")})
    body = response.json()
    assert response.status_code == status, body
    if code == "empty" and body["code"] == "photo_missing":
        return  # Django drops an empty file part: "attach a photo"
    assert body["code"] == code
    assert body["message"] == message_for(code)
    assert _files_under(tmp_path) == set()


def test_every_class_message_is_distinct() -> None:
    codes = [
        "empty",
        "not_an_image",
        "unsupported_format",
        "truncated",
        "too_many_pixels",
        "decompression_bomb",
        "too_large_bytes",
    ]
    assert len({message_for(code) for code in codes}) == len(codes)


def _run_asgi(app: Any, headers: list[tuple[bytes, bytes]], chunks: list[bytes]) -> tuple[int, dict[str, Any], int]:
    """(status, JSON body, body bytes the app pulled) for one request through ``app``."""
    sent: list[dict[str, Any]] = []
    pulled = 0
    queue = [
        {"type": "http.request", "body": chunk, "more_body": index < len(chunks) - 1}
        for index, chunk in enumerate(chunks)
    ]

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        if not queue:
            return {"type": "http.disconnect"}
        message = queue.pop(0)
        pulled += len(message["body"])
        return message

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/api/visits/current/id-card/", "headers": headers}
    asyncio.run(app(scope, receive, send))
    start = next(message for message in sent if message["type"] == "http.response.start")
    body = b"".join(message.get("body", b"") for message in sent if message["type"] == "http.response.body")
    return start["status"], json.loads(body), pulled


def test_daphne_refuses_a_declared_oversized_body_before_reading_any_of_it() -> None:
    async def never_called(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("the application must not see the request")

    limit = django_settings.REQUEST_MAX_BODY_BYTES
    status, body, pulled = _run_asgi(
        request_body_limit(never_called),
        [(b"content-length", str(50 * 1024 * 1024).encode()), (b"accept-language", b"zh-CN")],
        [b"x" * 1024],
    )
    assert (status, body["code"], pulled) == (413, "too_large_bytes", 0)
    assert "MB" in body["message"] and str(limit // (1024 * 1024)) in body["message"]


def test_daphne_stops_a_chunked_body_at_the_limit() -> None:
    received: list[int] = []

    async def reader(scope: Any, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # what Django's handler does: RequestAborted, no response
            received.append(len(message["body"]))

    chunk = b"x" * (1024 * 1024)
    status, body, pulled = _run_asgi(request_body_limit(reader, limit=3 * 1024 * 1024), [], [chunk] * 10)
    assert (status, body["code"]) == (413, "too_large_bytes")
    assert pulled <= 4 * 1024 * 1024  # stopped right after the limit, not after 10 MB


def _gif() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 64)).save(out, format="GIF")
    return out.getvalue()


def _flat_png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("1", (width, height)).save(out, format="PNG", optimize=True)
    return out.getvalue()


def _detailed_png(width: int, height: int) -> bytes:
    image = Image.new("L", (width, height))
    image.paste(Image.effect_noise((700, 700), 64), (0, 0))
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def _flat_jpeg_declaring(width: int, height: int) -> bytes:
    """A small real JPEG whose header is edited to declare ``width`` × ``height`` (SOF0 patch)."""
    out = io.BytesIO()
    Image.new("L", (64, 64), 128).save(out, format="JPEG")
    data = bytearray(out.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 7] = height.to_bytes(2, "big")
    data[sof + 7 : sof + 9] = width.to_bytes(2, "big")
    return bytes(data)


def test_the_draft_path_never_accepts_a_bomb_in_jpeg_clothing() -> None:
    with pytest.raises(ImageRejected) as caught:
        load_untrusted_image(_flat_jpeg_declaring(60000, 60000), max_side=1600)
    assert caught.value.code == "decompression_bomb"
