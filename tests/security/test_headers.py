from __future__ import annotations

import re

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_every_response_carries_the_content_security_policy(client: Client) -> None:
    response = client.get("/console/login/")
    policy = response["Content-Security-Policy"]
    assert "default-src 'self'" in policy
    assert re.search(r"script-src 'self' 'nonce-[\w-]+'", policy)
    assert "connect-src 'self' ws: wss:" in policy
    assert "img-src 'self' data: blob:" in policy
    assert "media-src 'self' blob:" in policy
    assert "style-src 'self' 'unsafe-inline'" in policy
    assert "frame-ancestors 'none'" in policy
    assert response["Permissions-Policy"].startswith("camera=(self), microphone=(self)")
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"


def test_the_nonce_changes_per_request_and_the_visit_page_script_carries_it(client: Client) -> None:
    first = client.get("/")
    second = client.get("/")
    nonces = [re.search(r"'nonce-([\w-]+)'", r["Content-Security-Policy"]).group(1) for r in (first, second)]  # type: ignore[union-attr]
    assert nonces[0] != nonces[1]
    html = second.content.decode()
    inline_scripts = re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>", html)
    assert inline_scripts, "the visit page has an inline script to protect"
    for attributes in inline_scripts:
        if "json" in attributes:
            continue  # json_script data blocks are not executed
        assert f'nonce="{nonces[1]}"' in attributes
