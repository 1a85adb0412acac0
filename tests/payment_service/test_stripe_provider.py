"""The Stripe provider through its own code and the stripe library, over
real HTTP, against Stripe-shaped answers (``fake_stripe``): what it sends
for each step (parameters, idempotency keys, the key), and how it reads
each answer: approved, undecided, declined, transient, or an operator's
problem."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from payment_service.provider import Authorization, Charge, Outcome, ProviderError
from payment_service.stripe_provider import StripeProvider

from .fake_stripe import (
    FakeStripe,
    Reply,
    error_body,
    listing,
    payment_error,
    payment_intent,
    redirect_to_url,
    refund,
    use_stripe_sdk,
)

KEY = "sk_test_x"
PAYMENT_ID = "0b6f3f8e-2c53-4f0e-9a57-5d1c1c0e7a11"
CHARGE = Charge(
    payment_id=PAYMENT_ID,
    reservation_id="7d8e61a4-4d0b-4a8e-b2b8-0a3f6a0c5e22",
    event_id="concert-2026",
    method="pm_card_visa",
    amount_minor=2500,
    currency="EUR",
)
PI = "pi_test_1"
# A request as ``sent`` lists it.
Sent = tuple[str, str, dict[str, str], str | None]
INTENTS = "/v1/payment_intents"
# What an authorization of CHARGE sends, as Stripe's form encoding writes it.
AUTHORIZE_FORM = {
    "amount": "2500",
    "currency": "eur",
    "capture_method": "manual",
    "confirm": "true",
    "payment_method": "pm_card_visa",
    "payment_method_types[0]": "card",
    "metadata[payment_id]": PAYMENT_ID,
    "metadata[reservation_id]": CHARGE.reservation_id,
    "metadata[event_id]": "concert-2026",
}
CREATE: Sent = ("POST", INTENTS, AUTHORIZE_FORM, PAYMENT_ID)
# Stripe asks to be asked again: a client with its own retries on would.
RETRY = {"Stripe-Should-Retry": "true"}


@pytest.fixture
async def fake() -> AsyncIterator[FakeStripe]:
    server = FakeStripe()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def provider(fake: FakeStripe) -> AsyncIterator[StripeProvider]:
    stripe = StripeProvider(KEY, api_base=fake.url, timeout_s=2)
    yield stripe
    await stripe.close()


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port bound on 127.0.0.1 and never listened on: connections to it
    are refused, and no other process can take it meanwhile."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


def sent(fake: FakeStripe) -> list[Sent]:
    """Each request's method, path, parameters (query or form) and
    idempotency key; every one carries the API key."""
    assert all(r.authorization == f"Bearer {KEY}" for r in fake.requests)
    return [(r.method, r.path, {**r.query, **r.form}, r.idempotency_key) for r in fake.requests]


def charge_of(currency: str, amount_minor: int) -> Charge:
    return Charge(
        payment_id=PAYMENT_ID,
        reservation_id=CHARGE.reservation_id,
        event_id=CHARGE.event_id,
        method=CHARGE.method,
        amount_minor=amount_minor,
        currency=currency,
    )


# -- authorize: what it sends ------------------------------------------------


async def test_an_authorization_is_one_confirmed_manual_capture_payment_intent_keyed_by_payment(
    fake: FakeStripe, provider: StripeProvider
) -> None:
    fake.answer("POST", INTENTS, 200, payment_intent(PI, latest_charge="ch_test_1"))

    answer = await provider.authorize(CHARGE)

    assert answer == Authorization(Outcome.APPROVED, reference=PI)
    assert sent(fake) == [CREATE]
    (request,) = fake.requests
    assert request.idempotency_key == PAYMENT_ID
    assert request.authorization == "Bearer sk_test_x"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"


@pytest.mark.parametrize(
    ("currency", "amount_minor", "stripe_amount"),
    [
        ("EUR", 2500, "2500"),
        # The yen has no minor unit, at ISO and at Stripe.
        ("JPY", 500, "500"),
        # ISO gives the krona no decimals; Stripe counts it in hundredths.
        ("ISK", 100, "10000"),
        # ISO gives the ariary two decimals; Stripe counts whole ariary.
        ("MGA", 12300, "123"),
        ("KWD", 5120, "5120"),
    ],
)
async def test_the_amount_goes_out_in_stripes_units_and_the_currency_in_lower_case(
    fake: FakeStripe,
    provider: StripeProvider,
    currency: str,
    amount_minor: int,
    stripe_amount: str,
) -> None:
    fake.answer("POST", INTENTS, 200, payment_intent(PI, currency=currency.lower()))

    answer = await provider.authorize(charge_of(currency, amount_minor))

    assert answer.approved
    ((_, _, form, _),) = sent(fake)
    assert (form["amount"], form["currency"]) == (stripe_amount, currency.lower())


def test_an_amount_stripe_cannot_say_exactly_is_refused_before_any_call(
    provider: StripeProvider,
) -> None:
    assert provider.check_amount("MGA", 12345) == (
        "MGA 12345 (ISO minor units) cannot be charged exactly: Stripe takes MGA with 0 decimals"
    )
    assert "ending in 0" in (provider.check_amount("KWD", 5125) or "")
    assert provider.check_amount("KWD", 5120) is None
    assert provider.check_amount("MGA", 12300) is None
    assert provider.check_amount("EUR", 1) is None


async def test_an_unpayable_amount_reaching_authorize_is_an_operators_problem_sent_nowhere(
    fake: FakeStripe, provider: StripeProvider
) -> None:
    with pytest.raises(ProviderError) as raised:
        await provider.authorize(charge_of("MGA", 12345))
    assert raised.value.retriable is False
    assert fake.requests == []


def test_a_method_is_a_stripe_payment_method_id(provider: StripeProvider) -> None:
    assert provider.check_method("pm_card_visa") is None
    assert provider.check_method("pm_1PgafyB7WZ01zgkWSjxsAJo3") is None
    for method in ("test-ok", "pm_", "card_visa", "pm_card visa", "pm_" + "a" * 97):
        assert provider.check_method(method) is not None, method


# -- authorize: how it reads the answer --------------------------------------


async def test_3d_secure_through_stripe_js_is_action_required_with_the_client_secret(
    fake: FakeStripe, provider: StripeProvider
) -> None:
    fake.answer(
        "POST",
        INTENTS,
        200,
        payment_intent(PI, status="requires_action", next_action=use_stripe_sdk()),
    )

    answer = await provider.authorize(CHARGE)

    assert answer.outcome is Outcome.ACTION_REQUIRED
    assert answer.undecided
    assert answer.reference == PI
    assert answer.action is not None
    assert answer.action.type == "use_stripe_sdk"
    assert answer.action.client_secret == f"{PI}_secret_test"
    assert answer.action.redirect_url == ""
    assert sent(fake) == [CREATE]


async def test_a_redirect_action_carries_where_to_send_the_buyer(
    fake: FakeStripe, provider: StripeProvider
) -> None:
    url = "https://hooks.stripe.test/3d_secure_2/hosted?merchant=acct_1&payment_intent=pi_test_1"
    fake.answer(
        "POST",
        INTENTS,
        200,
        payment_intent(PI, status="requires_action", next_action=redirect_to_url(url)),
    )

    answer = await provider.authorize(CHARGE)

    assert answer.outcome is Outcome.ACTION_REQUIRED
    assert answer.action is not None
    assert (answer.action.type, answer.action.redirect_url) == ("redirect_to_url", url)
    assert answer.action.client_secret == f"{PI}_secret_test"


async def test_processing_is_undecided(fake: FakeStripe, provider: StripeProvider) -> None:
    fake.answer("POST", INTENTS, 200, payment_intent(PI, status="processing"))

    answer = await provider.authorize(CHARGE)

    assert answer == Authorization(Outcome.PROCESSING, reference=PI)
    assert sent(fake) == [CREATE]


async def test_a_card_error_is_a_decline_with_the_issuers_code_and_the_payment_intent(
    fake: FakeStripe, provider: StripeProvider
) -> None:
    declined = payment_intent(
        PI, status="requires_payment_method", last_payment_error=payment_error()
    )
    fake.answer(
        "POST",
        INTENTS,
        402,
        error_body(
            "card_error",
            code="card_declined",
            decline_code="insufficient_funds",
            message="Your card has insufficient funds.",
            payment_intent=declined,
        ),
    )

    answer = await provider.authorize(CHARGE)

    assert answer == Authorization(
        Outcome.DECLINED,
        reference=PI,
        reason="Your card has insufficient funds.",
        decline_code="insufficient_funds",
    )
    assert sent(fake) == [CREATE]


async def test_a_card_error_without_an_issuers_code_or_payment_intent_is_a_decline_by_its_code(
    fake: FakeStripe, provider: StripeProvider
) -> None:
    fake.answer(
        "POST",
        INTENTS,
        402,
        error_body(
            "card_error",
            code="expired_card",
            param="exp_month",
            message="Your card has expired.",
        ),
    )

    answer = await provider.authorize(CHARGE)

    assert answer == Authorization(
        Outcome.DECLINED, reason="Your card has expired.", decline_code="expired_card"
    )


async def test_a_payment_method_stripe_does_not_know_is_the_buyers_input_so_a_decline(
    fake: FakeStripe, provider: StripeProvider
) -> None:
    fake.answer(
        "POST",
        INTENTS,
        400,
        error_body(
            "invalid_request_error",
            code="resource_missing",
            param="payment_method",
            message="No such PaymentMethod: 'pm_card_visa'",
        ),
    )

    answer = await provider.authorize(CHARGE)

    assert answer.outcome is Outcome.DECLINED
    assert answer.reference == ""
    assert answer.decline_code == "resource_missing"
    assert "No such PaymentMethod" in answer.reason
    assert sent(fake) == [CREATE]


@pytest.mark.parametrize(
    ("status", "body"),
    [
        pytest.param(
            429,
            error_body("invalid_request_error", code="rate_limit", message="Too many requests"),
            id="rate-limited",
        ),
        pytest.param(500, error_body("api_error", message="Something went wrong"), id="500"),
        # A proxy's page, not Stripe's JSON.
        pytest.param(503, "<html><body>503 Service Unavailable</body></html>", id="503-html"),
        pytest.param(503, error_body("api_error", message="Service unavailable"), id="503-stripe"),
        pytest.param(
            409,
            error_body(
                "idempotency_error",
                message="There is currently another in-progress request using this key",
            ),
            id="same-key-in-flight",
        ),
    ],
)
async def test_a_transient_failure_is_retriable_and_asked_once(
    fake: FakeStripe, provider: StripeProvider, status: int, body: dict[str, Any] | str
) -> None:
    fake.answer("POST", INTENTS, status, body, headers=RETRY)

    with pytest.raises(ProviderError) as raised:
        await provider.authorize(CHARGE)

    assert raised.value.retriable is True
    # Stripe said "retry" and the client did not: the saga owns retrying.
    assert sent(fake) == [CREATE]


async def test_nothing_listening_is_retriable(closed_port: int) -> None:
    stripe = StripeProvider(KEY, api_base=f"http://127.0.0.1:{closed_port}", timeout_s=2)
    try:
        with pytest.raises(ProviderError) as raised:
            await stripe.authorize(CHARGE)
    finally:
        await stripe.close()
    assert raised.value.retriable is True
    assert "APIConnectionError" in str(raised.value)


async def test_no_answer_within_the_timeout_is_retriable_and_asked_once(fake: FakeStripe) -> None:
    fake.answer_each("POST", INTENTS, Reply(200, payment_intent(PI), hang=True))
    stripe = StripeProvider(KEY, api_base=fake.url, timeout_s=0.3)
    try:
        with pytest.raises(ProviderError) as raised:
            await stripe.authorize(CHARGE)
    finally:
        await stripe.close()
    assert raised.value.retriable is True
    assert sent(fake) == [CREATE]


async def test_a_refused_api_key_needs_an_operator_and_says_which_setting(
    fake: FakeStripe, provider: StripeProvider
) -> None:
    fake.answer(
        "POST",
        INTENTS,
        401,
        error_body("invalid_request_error", message="Invalid API Key provided: sk_test_x"),
    )

    with pytest.raises(ProviderError) as raised:
        await provider.authorize(CHARGE)

    assert raised.value.retriable is False
    assert "TICKETING_STRIPE_API_KEY" in str(raised.value)
    assert "req_fake_1" in str(raised.value)
    assert sent(fake) == [CREATE]


@pytest.mark.parametrize(
    ("status", "body"),
    [
        pytest.param(
            403,
            error_body(
                "invalid_request_error",
                message="The provided key does not have the required permissions",
            ),
            id="permission",
        ),
        pytest.param(
            400,
            error_body(
                "invalid_request_error",
                code="amount_too_small",
                param="amount",
                message="Amount must be at least 0.50 eur",
            ),
            id="amount",
        ),
        pytest.param(
            400,
            error_body(
                "idempotency_error",
                message="Keys for idempotent requests can only be used with the same parameters",
            ),
            id="key-reused",
        ),
    ],
)
async def test_a_request_stripe_refuses_is_an_operators_problem_never_a_decline(
    fake: FakeStripe, provider: StripeProvider, status: int, body: dict[str, Any]
) -> None:
    fake.answer("POST", INTENTS, status, body, headers=RETRY)

    with pytest.raises(ProviderError) as raised:
        await provider.authorize(CHARGE)

    assert raised.value.retriable is False
    assert sent(fake) == [CREATE]


# -- capture -----------------------------------------------------------------

CAPTURE: Sent = (
    "POST",
    f"{INTENTS}/{PI}/capture",
    {"amount_to_capture": "2500"},
    f"{PAYMENT_ID}:capture",
)
READ: Sent = ("GET", f"{INTENTS}/{PI}", {}, None)
UNEXPECTED_STATE = error_body(
    "invalid_request_error",
    code="payment_intent_unexpected_state",
    message="This PaymentIntent could not be captured because it has a status of succeeded.",
)


async def test_a_capture_takes_the_amount_under_its_own_key(
    fake: FakeStripe, provider: StripeProvider
) -> None:
    fake.answer("POST", f"{INTENTS}/{PI}/capture", 200, payment_intent(PI, status="succeeded"))

    await provider.capture(CHARGE, PI)

    assert sent(fake) == [CAPTURE]


async def test_a_capture_refused_because_it_is_done_already_succeeds(
    fake: FakeStripe, provider: StripeProvider
) -> None:
    fake.answer("POST", f"{INTENTS}/{PI}/capture", 400, UNEXPECTED_STATE)
    fake.answer("GET", f"{INTENTS}/{PI}", 200, payment_intent(PI, status="succeeded"))

    await provider.capture(CHARGE, PI)

    assert sent(fake) == [CAPTURE, READ]


async def test_a_capture_refused_for_a_payment_intent_not_captured_needs_an_operator(
    fake: FakeStripe, provider: StripeProvider
) -> None:
    fake.answer("POST", f"{INTENTS}/{PI}/capture", 400, UNEXPECTED_STATE)
    fake.answer("GET", f"{INTENTS}/{PI}", 200, payment_intent(PI, status="requires_payment_method"))

    with pytest.raises(ProviderError) as raised:
        await provider.capture(CHARGE, PI)

    assert raised.value.retriable is False
    assert sent(fake) == [CAPTURE, READ]


async def test_a_capture_stripe_failed_is_retried_without_a_second_look(
    fake: FakeStripe, provider: StripeProvider
) -> None:
    fake.answer("POST", f"{INTENTS}/{PI}/capture", 500, error_body("api_error"), headers=RETRY)

    with pytest.raises(ProviderError) as raised:
        await provider.capture(CHARGE, PI)

    assert raised.value.retriable is True
    assert sent(fake) == [CAPTURE]


# -- void --------------------------------------------------------------------

CANCEL: Sent = ("POST", f"{INTENTS}/{PI}/cancel", {}, f"{PAYMENT_ID}:void")


async def test_a_void_cancels_the_payment_intent_under_its_own_key(
    fake: FakeStripe, provider: StripeProvider
) -> None:
    fake.answer(
        "POST",
        f"{INTENTS}/{PI}/cancel",
        200,
        payment_intent(PI, status="canceled", cancellation_reason="requested_by_customer"),
    )

    await provider.void(CHARGE, PI)

    assert sent(fake) == [CANCEL]


async def test_a_void_of_a_payment_intent_canceled_already_succeeds(
    fake: FakeStripe, provider: StripeProvider
) -> None:
    fake.answer(
        "POST",
        f"{INTENTS}/{PI}/cancel",
        400,
        error_body(
            "invalid_request_error",
            code="payment_intent_unexpected_state",
            message="This PaymentIntent could not be canceled because it has a status of canceled.",
        ),
    )
    fake.answer(
        "GET",
        f"{INTENTS}/{PI}",
        200,
        payment_intent(PI, status="canceled", cancellation_reason="automatic"),
    )

    await provider.void(CHARGE, PI)

    assert sent(fake) == [CANCEL, READ]


async def test_a_void_of_a_captured_payment_intent_needs_an_operator(
    fake: FakeStripe, provider: StripeProvider
) -> None:
    fake.answer(
        "POST",
        f"{INTENTS}/{PI}/cancel",
        400,
        error_body("invalid_request_error", code="payment_intent_unexpected_state"),
    )
    fake.answer("GET", f"{INTENTS}/{PI}", 200, payment_intent(PI, status="succeeded"))

    with pytest.raises(ProviderError) as raised:
        await provider.void(CHARGE, PI)

    assert raised.value.retriable is False
    assert sent(fake) == [CANCEL, READ]


async def test_a_void_without_a_reference_replays_the_authorization_and_cancels_what_it_made(
    fake: FakeStripe, provider: StripeProvider
) -> None:
    # The authorization's answer was lost (a 500 here); Stripe, asked again
    # under the same key, answers with the PaymentIntent the first made.
    fake.answer_each(
        "POST",
        INTENTS,
        Reply(500, error_body("api_error")),
        Reply(200, payment_intent(PI)),
    )
    fake.answer("POST", f"{INTENTS}/{PI}/cancel", 200, payment_intent(PI, status="canceled"))
    with pytest.raises(ProviderError):
        await provider.authorize(CHARGE)

    await provider.void(CHARGE, None)

    # The same request both times: same parameters, same key.
    assert sent(fake) == [CREATE, CREATE, CANCEL]


async def test_a_void_without_a_reference_whose_replay_is_a_decline_cancels_nothing(
    fake: FakeStripe, provider: StripeProvider
) -> None:
    fake.answer(
        "POST",
        INTENTS,
        402,
        error_body("card_error", code="card_declined", decline_code="generic_decline"),
    )

    await provider.void(CHARGE, None)

    assert sent(fake) == [CREATE]


# -- refund ------------------------------------------------------------------

REFUND: Sent = (
    "POST",
    "/v1/refunds",
    {"payment_intent": PI, "amount": "2500", "metadata[payment_id]": PAYMENT_ID},
    f"{PAYMENT_ID}:refund",
)
LIST_REFUNDS: Sent = ("GET", "/v1/refunds", {"payment_intent": PI, "limit": "100"}, None)


async def test_a_refund_pays_the_amount_back_under_its_own_key_and_returns_its_id(
    fake: FakeStripe, provider: StripeProvider
) -> None:
    fake.answer("POST", "/v1/refunds", 200, refund("re_test_1", payment_intent=PI))

    assert await provider.refund(CHARGE, PI) == "re_test_1"
    assert sent(fake) == [REFUND]


async def test_a_pending_refund_is_a_refund(fake: FakeStripe, provider: StripeProvider) -> None:
    fake.answer("POST", "/v1/refunds", 200, refund("re_test_1", status="pending"))

    assert await provider.refund(CHARGE, PI) == "re_test_1"


@pytest.mark.parametrize(
    ("status", "failure_reason"),
    [
        ("failed", "expired_or_canceled_card"),
        # Stripe sends failure_reason only for a failed refund.
        ("canceled", None),
    ],
)
async def test_a_refund_stripe_failed_needs_an_operator(
    fake: FakeStripe, provider: StripeProvider, status: str, failure_reason: str | None
) -> None:
    fake.answer(
        "POST",
        "/v1/refunds",
        200,
        refund("re_test_1", status=status, failure_reason=failure_reason),
    )

    with pytest.raises(ProviderError) as raised:
        await provider.refund(CHARGE, PI)

    assert raised.value.retriable is False
    assert "re_test_1" in str(raised.value)
    assert (failure_reason or "no reason given") in str(raised.value)
    assert sent(fake) == [REFUND]


async def test_a_payment_refunded_already_answers_with_the_refund_stripe_lists(
    fake: FakeStripe, provider: StripeProvider
) -> None:
    fake.answer(
        "POST",
        "/v1/refunds",
        400,
        error_body(
            "invalid_request_error",
            code="charge_already_refunded",
            message="Charge ch_test_1 has already been refunded.",
        ),
    )
    fake.answer(
        "GET",
        "/v1/refunds",
        200,
        listing(
            "/v1/refunds",
            [
                refund("re_failed", status="failed", failure_reason="unknown"),
                refund("re_dashboard", status="succeeded"),
            ],
        ),
    )

    assert await provider.refund(CHARGE, PI) == "re_dashboard"
    assert sent(fake) == [REFUND, LIST_REFUNDS]


async def test_a_payment_refunded_already_with_no_refund_listed_needs_an_operator(
    fake: FakeStripe, provider: StripeProvider
) -> None:
    fake.answer(
        "POST",
        "/v1/refunds",
        400,
        error_body("invalid_request_error", code="charge_already_refunded"),
    )
    fake.answer("GET", "/v1/refunds", 200, listing("/v1/refunds", []))

    with pytest.raises(ProviderError) as raised:
        await provider.refund(CHARGE, PI)

    assert raised.value.retriable is False
    assert sent(fake) == [REFUND, LIST_REFUNDS]


async def test_a_refund_stripe_did_not_answer_is_retriable(
    fake: FakeStripe, provider: StripeProvider
) -> None:
    fake.answer("POST", "/v1/refunds", 503, error_body("api_error"), headers=RETRY)

    with pytest.raises(ProviderError) as raised:
        await provider.refund(CHARGE, PI)

    assert raised.value.retriable is True
    assert sent(fake) == [REFUND]


# -- status ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("intent", "expected"),
    [
        (payment_intent(PI), Authorization(Outcome.APPROVED, reference=PI)),
        (payment_intent(PI, status="succeeded"), Authorization(Outcome.APPROVED, reference=PI)),
        (payment_intent(PI, status="processing"), Authorization(Outcome.PROCESSING, reference=PI)),
        (
            payment_intent(
                PI,
                status="requires_payment_method",
                last_payment_error=payment_error(
                    code="card_declined",
                    decline_code="authentication_required",
                    message="Your card was declined. This transaction requires authentication.",
                ),
            ),
            Authorization(
                Outcome.DECLINED,
                reference=PI,
                reason="Your card was declined. This transaction requires authentication.",
                decline_code="authentication_required",
            ),
        ),
        (
            payment_intent(PI, status="canceled", cancellation_reason="abandoned"),
            Authorization(
                Outcome.DECLINED,
                reference=PI,
                reason="the payment was canceled at Stripe (abandoned)",
                decline_code="canceled",
            ),
        ),
    ],
    ids=["requires_capture", "succeeded", "processing", "requires_payment_method", "canceled"],
)
async def test_status_reads_the_payment_intent_as_authorize_does(
    fake: FakeStripe,
    provider: StripeProvider,
    intent: dict[str, Any],
    expected: Authorization,
) -> None:
    fake.answer("GET", f"{INTENTS}/{PI}", 200, intent)

    assert await provider.status(CHARGE, PI) == expected
    assert sent(fake) == [READ]


async def test_status_of_a_buyer_still_in_3d_secure_is_action_required(
    fake: FakeStripe, provider: StripeProvider
) -> None:
    fake.answer(
        "GET",
        f"{INTENTS}/{PI}",
        200,
        payment_intent(PI, status="requires_action", next_action=use_stripe_sdk()),
    )

    answer = await provider.status(CHARGE, PI)

    assert answer.outcome is Outcome.ACTION_REQUIRED
    assert answer.action is not None
    assert (answer.action.type, answer.action.client_secret) == (
        "use_stripe_sdk",
        f"{PI}_secret_test",
    )
    assert sent(fake) == [READ]


@pytest.mark.parametrize(("status", "retriable"), [(500, True), (429, True), (404, False)])
async def test_status_stripe_cannot_give_is_a_provider_error(
    fake: FakeStripe, provider: StripeProvider, status: int, retriable: bool
) -> None:
    fake.answer(
        "GET",
        f"{INTENTS}/{PI}",
        status,
        error_body("invalid_request_error" if status == 404 else "api_error"),
        headers=RETRY,
    )

    with pytest.raises(ProviderError) as raised:
        await provider.status(CHARGE, PI)

    assert raised.value.retriable is retriable
    assert sent(fake) == [READ]
