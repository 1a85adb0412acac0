"""The pinned stripe-mock, built as ``make stripe-mock`` builds it, answers
an authorization as Stripe answers one whose card authorized, and refuses a
request Stripe would refuse."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from ticketing_tools import stripe_mock
from ticketing_tools.stack.processes import Child, free_port, port_open, wait_until


@pytest.fixture(scope="module")
def built(pytestconfig: pytest.Config) -> stripe_mock.StripeMock:
    try:
        return stripe_mock.ensure(pytestconfig.rootpath)
    except stripe_mock.BuildError as exc:
        pytest.fail(str(exc))


@pytest.fixture
def api_base(built: stripe_mock.StripeMock, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    child = Child("stripe-mock", built.command(f"127.0.0.1:{port}"), tmp_path / "stripe-mock.log")
    child.start()
    try:
        wait_until(lambda: port_open(port), timeout_s=30, what="stripe-mock", alive=child.alive)
        yield f"http://127.0.0.1:{port}"
    finally:
        child.stop()


def post(api_base: str, path: str, form: dict[str, str]) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(
        f"{api_base}{path}",
        data=urllib.parse.urlencode(form).encode(),
        headers={"Authorization": "Bearer sk_test_stack", "Idempotency-Key": "pay-1"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


def test_the_fixtures_are_the_bundled_ones_with_an_authorized_payment_intent(
    built: stripe_mock.StripeMock,
) -> None:
    bundled = json.loads((built.fixtures.parent / "fixtures3.json").read_text())
    fixtures = json.loads(built.fixtures.read_text())
    assert bundled["resources"]["payment_intent"]["status"] == "requires_payment_method"
    intent = fixtures["resources"].pop("payment_intent")
    assert {k: intent[k] for k in stripe_mock.AUTHORIZED_PAYMENT_INTENT} == dict(
        stripe_mock.AUTHORIZED_PAYMENT_INTENT
    )
    del bundled["resources"]["payment_intent"]
    assert fixtures == bundled


def test_a_manual_capture_payment_intent_is_authorized(api_base: str) -> None:
    status, intent = post(
        api_base,
        "/v1/payment_intents",
        {
            "amount": "2500",
            "currency": "eur",
            "capture_method": "manual",
            "confirm": "true",
            "payment_method": "pm_card_visa",
            "metadata[payment_id]": "7f0c1e1e-0000-4000-8000-000000000001",
        },
    )
    assert status == 200, intent
    assert intent["status"] == "requires_capture"
    assert (intent["amount"], intent["currency"]) == (2500, "eur")
    assert intent["last_payment_error"] is None
    assert intent["next_action"] is None
    assert str(intent["id"]).startswith("pi_")


def test_an_invalid_request_is_refused(api_base: str) -> None:
    status, answer = post(
        api_base, "/v1/payment_intents", {"amount": "a lot", "currency": "eur", "confirm": "true"}
    )
    assert status == 400
    error = answer["error"]
    assert isinstance(error, dict)
    assert error["type"] == "invalid_request_error"
