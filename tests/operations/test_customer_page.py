"""The customer's own page in a real Chromium: Gate 4's questions and the PIN pad (R6.4, R7.1, R7.2).

The service runs on Django's live server with the real Janus of the calls
tests; the agent's side goes through the API. The customer's page is the real
mobile page, driven by clicks: it shows the drawn questions, then the PIN pad
with shuffled digits, and never echoes the PIN anywhere in the page.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.urls import reverse

from apps.customers.integrations.pin_block import pin_verification_matches
from apps.customers.models import Account, AccountStatus
from apps.gates.models import GateProgress, GateState
from tests.operations.conftest import KIT, InCall, pass_gates

pytestmark = pytest.mark.django_db(transaction=True)

CI = os.environ.get("CI", "").lower() == "true"
CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--use-fake-device-for-media-stream",
         "--use-fake-ui-for-media-stream", "--disable-background-networking", "--no-first-run"]  # fmt: skip
PIN = "739215"


def _require_browser() -> None:
    missing = None
    if not CHROMIUM.exists():
        missing = "Debian's chromium is not installed"
    elif importlib.util.find_spec("playwright") is None:
        missing = "playwright is not installed (requirements/browser.txt)"
    if missing:
        if CI:
            pytest.fail(f"CI=true requires the customer-page browser test, but {missing}", pytrace=False)
        pytest.skip(missing)


def test_the_customer_answers_the_questions_and_sets_the_pin_on_their_own_page(
    make_in_call: Callable[..., InCall],
    on_commit: Callable[..., Any],
    core: Any,
    live_server: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _require_browser()
    # Playwright's sync API keeps an event loop in this thread between calls;
    # the ORM and test-client calls made between two browser steps run while
    # no coroutine does, which is what Django's async-safety check cannot see.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import expect, sync_playwright

    in_call = make_in_call(person=KIT, business="activation")
    pass_gates(in_call, on_commit, upto="face")
    session_cookie = settings.SESSION_COOKIE_NAME
    customer_cookie = in_call.customer_client.cookies[session_cookie].value
    agent_cookie = in_call.staff_client.cookies[session_cookie].value

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS, headless=True)
        try:
            agent_context = browser.new_context(locale="zh-CN")
            agent_context.add_cookies([{"name": session_cookie, "value": agent_cookie, "url": live_server.url}])
            agent = agent_context.new_page()
            agent.goto(f"{live_server.url}{reverse('console:agent')}")
            customer_context = browser.new_context(locale="zh-CN")
            customer_context.add_cookies([{"name": session_cookie, "value": customer_cookie, "url": live_server.url}])
            page = customer_context.new_page()
            page.goto(f"{live_server.url}/")

            # The agent's console walks the gates: Gate 4 is next.
            expect(agent.locator("#gates-list li[data-gate=face]")).to_have_attribute(
                "data-status", "passed", timeout=20000
            )
            agent.locator("#gates-actions button").click()
            # The questions appear on the customer's page, not the agent's.
            questions = page.locator("#questions-form fieldset")
            expect(questions).to_have_count(settings.GATE_QUESTIONS_COUNT, timeout=20000)
            # Said so, and brought into view on the phone (they appear below the video).
            expect(page.locator("#questions-notice")).to_be_visible()
            page.wait_for_function(
                "() => { const r = document.getElementById('questions').getBoundingClientRect();"
                " return r.top < window.innerHeight && r.bottom > 0; }",
                timeout=5000,
            )
            right = GateProgress.objects.get(visit=in_call.visit).attempts.get(gate="questions").question_draw.correct
            assert agent.locator("#questions-form").count() == 0
            for index, choice in enumerate(right):
                page.locator(f'#questions-form input[name="q{index}"][value="{choice}"]').check()
            page.click("#questions-submit")
            page.wait_for_function("() => document.getElementById('questions').hidden", timeout=15000)
            expect(page.locator("#questions-received")).to_be_visible()  # the answers were received

            # All gates passed: the agent starts the activation from the console.
            start = agent.locator("#operation-start button")
            expect(start).to_be_visible(timeout=20000)
            start.click()
            pad = page.locator("#pin-pad")
            expect(pad).to_be_visible(timeout=20000)
            layout = page.locator("#pin-keys button").all_inner_texts()
            # A phone's pad: nine digits in three rows, then Clear, the tenth digit, Delete.
            assert len(layout) == 12 and layout[9] == "清除" and layout[11] == "⌫", layout
            assert sorted([*layout[:9], layout[10]]) == [str(digit) for digit in range(10)]
            assert page.locator("#pin-dots").inner_text().replace("\n", "") == "○" * 6  # six empty places
            for digit in PIN:
                page.click(f"#pin-keys button:text-is('{digit}')")
            assert "●" not in page.locator("#pin-dots").inner_text()  # cleared for the second entry
            for digit in PIN:
                page.click(f"#pin-keys button:text-is('{digit}')")
                assert PIN not in page.content()
            expect(page.locator("#service-result")).to_be_visible(timeout=20000)
            expect(agent.locator("#operation-body .operation[data-state=succeeded]")).to_have_count(1, timeout=20000)
            # Never in either page: no input holds it, no text shows it.
            assert PIN not in page.content() and PIN not in agent.content()
            assert page.locator("input[type=password], input[name=pin]").count() == 0
        finally:
            browser.close()

    assert GateProgress.objects.get(visit=in_call.visit).state == GateState.PASSED
    account = Account.objects.get(pk=in_call.account.pk)
    assert account.status == AccountStatus.NORMAL
    assert pin_verification_matches(account.pin_hash, PIN, account_number=account.number)
