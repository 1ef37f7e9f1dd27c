"""Unmatched URLs: the API's error shape under /api/ (found by tests/test_api_fuzzing.py), the page elsewhere."""

from __future__ import annotations

import pytest
from django.test import Client


@pytest.mark.django_db
def test_an_api_path_with_a_malformed_id_answers_in_the_api_error_shape() -> None:
    response = Client().get("/api/customers/not-a-number/")
    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "message": "此地址没有内容。"}  # Chinese first
    english = Client().get("/api/customers/not-a-number/", headers={"accept-language": "en"})
    assert english.json() == {"code": "not_found", "message": "There is nothing at this address."}


@pytest.mark.django_db
def test_a_page_that_does_not_exist_still_gets_the_html_page() -> None:
    response = Client().get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
