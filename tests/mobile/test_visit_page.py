from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_the_customer_page_is_chinese_first_and_sets_the_csrf_cookie(client: Client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "拍摄身份证人像面" in html
    assert "解挂" in html  # businesses listed in the customer's language
    assert "csrftoken" in response.cookies


def test_the_customer_page_speaks_english_on_request(client: Client) -> None:
    html = client.get("/", headers={"accept-language": "en"}).content.decode()
    assert "Photograph the front of your ID card" in html
    assert "Lost-report release" in html


def test_the_page_carries_the_csrf_token_its_script_sends() -> None:
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    html = strict.get("/").content.decode()
    token = html.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
    response = strict.post(
        "/api/visits/",
        {"business": "activation", "mobile": "13800000000"},
        content_type="application/json",
        headers={"x-csrftoken": token},
    )
    assert response.status_code == 201
