"""``ticketing-admin payments reconcile``: our payments against the
provider's books.

The pure core (``differences``) on built rows, one test per kind of
difference with the exact difference expected; then the command itself
against a database of its own on the test stack's server (its exit codes,
the local provider's books), and Stripe's books read from stripe-mock, whose
canned PaymentIntent and refund name none of our payments."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from pydantic import SecretStr

from payment_service.settings import StripeSettings
from ticketing.v1 import reservation_pb2 as pb
from ticketing.v1 import reservation_service_pb2 as rs
from ticketing_common.config import PostgresClient, variable
from ticketing_tools import stripe_mock
from ticketing_tools.ledger import money_checks
from ticketing_tools.provider_books import stripe_client, stripe_listing
from ticketing_tools.reconcile import (
    AMOUNT,
    CURRENCY,
    LOCAL,
    MISSING,
    REFERENCE,
    REFUND_AMOUNT,
    REFUND_MISSING,
    REFUND_UNKNOWN,
    STATUS,
    STRIPE,
    UNKNOWN,
    Difference,
    OurPayment,
    ProviderBooks,
    ProviderPayment,
    ProviderRefund,
    differences,
    local_books,
)
from ticketing_tools.stack import LocalStack
from ticketing_tools.stack.processes import Child, free_port, port_open, wait_until

from ..helpers import (
    Gateway,
    Notifier,
    Payments,
    Reservations,
    as_user,
    create_priced_event,
    hold_for,
    own_database,
    pay,
    watch_until,
)

P1 = "11111111-1111-4111-8111-111111111111"
P2 = "22222222-2222-4222-8222-222222222222"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CAPTURED = pb.PAYMENT_STATUS_CAPTURED
DECLINED = pb.PAYMENT_STATUS_DECLINED
VOIDED = pb.PAYMENT_STATUS_VOIDED
REFUNDED = pb.PAYMENT_STATUS_REFUNDED


def ours(
    status: str,
    *,
    payment_id: str = P1,
    amount: int = 2_500,
    currency: str = "EUR",
    ref: str | None = "pi_1",
    refund_ref: str | None = None,
    provider: str = STRIPE,
) -> OurPayment:
    return OurPayment(payment_id, status, amount, currency, provider, ref, refund_ref, T0)


def intent(
    status: str,
    *,
    ref: str | None = "pi_1",
    payment_id: str | None = P1,
    amount: int | None = 2_500,
    received: int | None = None,
    currency: str | None = "EUR",
) -> ProviderPayment:
    if received is None:
        received = (amount or 0) if status == "succeeded" else 0
    return ProviderPayment(ref, payment_id, status, amount, received, currency)


def refund(
    ref: str | None = "re_1",
    *,
    status: str = "succeeded",
    amount: int = 2_500,
    payment_id: str | None = P1,
    currency: str | None = "EUR",
) -> ProviderRefund:
    return ProviderRefund(ref, "pi_1", payment_id, status, amount, currency)


def stripe(*payments: ProviderPayment, refunds: tuple[ProviderRefund, ...] = ()) -> ProviderBooks:
    return ProviderBooks(STRIPE, payments, refunds)


# -- agreeing books -------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "theirs"),
    [
        ("CAPTURED", [intent("succeeded")]),
        ("AUTHORIZED", [intent("requires_capture")]),
        ("CAPTURING", [intent("requires_capture")]),
        ("CAPTURING", [intent("succeeded")]),
        ("VOIDED", [intent("canceled")]),
        ("VOIDED", []),
        ("DECLINED", [intent("requires_payment_method")]),
        ("DECLINED", [intent("canceled")]),
        ("DECLINED", []),
        ("PENDING", []),
        ("PENDING", [intent("requires_action")]),
        ("PENDING", [intent("processing")]),
        ("PENDING", [intent("requires_confirmation")]),
        ("VOIDING", [intent("requires_capture")]),
        ("VOIDING", [intent("canceled")]),
        ("VOIDING", [intent("requires_action")]),
        ("REFUNDING", [intent("succeeded")]),
    ],
)
def test_a_payment_whose_provider_shows_what_its_status_expects_is_no_difference(
    status: str, theirs: list[ProviderPayment]
) -> None:
    assert differences([ours(status)], stripe(*theirs)) == []


def test_a_refund_is_expected_of_a_refunded_payment_and_allowed_for_a_refunding_one() -> None:
    books = stripe(intent("succeeded"), refunds=(refund(),))
    assert differences([ours("REFUNDED", refund_ref="re_1")], books) == []
    assert differences([ours("REFUNDING", refund_ref="re_1")], books) == []
    assert differences([ours("REFUNDING")], books) == []
    pending = stripe(intent("succeeded"), refunds=(refund(status="pending"),))
    assert differences([ours("REFUNDED", refund_ref="re_1")], pending) == []


@pytest.mark.parametrize(
    ("currency", "amount_minor", "stripe_amount"),
    [
        ("EUR", 2_500, 2_500),
        # Zero-decimal at ISO and at Stripe: 1:1.
        ("JPY", 3_000, 3_000),
        ("KRW", 15_000, 15_000),
        # ISK: no decimals at ISO, two at Stripe.
        ("ISK", 500, 50_000),
        # MGA: two decimals at ISO, none at Stripe.
        ("MGA", 250_000, 2_500),
    ],
)
def test_amounts_are_compared_in_stripes_units(
    currency: str, amount_minor: int, stripe_amount: int
) -> None:
    payment = ours("CAPTURED", currency=currency, amount=amount_minor)
    books = stripe(intent("succeeded", currency=currency, amount=stripe_amount))
    assert differences([payment], books) == []
    wrong = stripe(intent("succeeded", currency=currency, amount=amount_minor + 1))
    assert [d.kind for d in differences([payment], wrong)] == [AMOUNT]


# -- one kind at a time -----------------------------------------------------------


def test_a_captured_payment_the_provider_does_not_have_is_missing_at_the_provider() -> None:
    assert differences([ours("CAPTURED")], stripe()) == [
        Difference(
            MISSING,
            P1,
            "pi_1",
            "CAPTURED 2500 EUR",
            None,
            f"payment {P1} is CAPTURED (2500 EUR) here; Stripe has no payment pi_1",
        )
    ]


def test_a_payment_intent_naming_no_payment_of_ours_is_unknown_to_us() -> None:
    books = stripe(
        intent("succeeded", ref="pi_9", payment_id=None),
        intent("requires_capture", ref="pi_8", payment_id=P2),
    )
    assert differences([], books) == [
        Difference(
            UNKNOWN,
            None,
            "pi_9",
            None,
            "succeeded 2500 EUR",
            "pi_9 (succeeded, 2500 EUR) at Stripe names none of our payments",
        ),
        Difference(
            UNKNOWN,
            P2,
            "pi_8",
            None,
            "requires_capture 2500 EUR",
            f"pi_8 (requires_capture, 2500 EUR) at Stripe is for payment {P2}, which we do "
            "not have",
        ),
    ]


def test_a_second_payment_intent_for_one_of_our_payments_is_unknown_to_us() -> None:
    books = stripe(intent("succeeded"), intent("requires_capture", ref="pi_2"))
    assert differences([ours("CAPTURED")], books) == [
        Difference(
            UNKNOWN,
            P1,
            "pi_2",
            "CAPTURED",
            "requires_capture 2500 EUR",
            f"pi_2 (requires_capture, 2500 EUR) at Stripe is a second payment for payment "
            f"{P1} (ours is pi_1)",
        )
    ]


def test_a_captured_payment_received_for_another_amount_is_an_amount_difference() -> None:
    books = stripe(intent("succeeded", received=2_000))
    assert differences([ours("CAPTURED")], books) == [
        Difference(
            AMOUNT,
            P1,
            "pi_1",
            "2500 EUR",
            "2000 received",
            f"payment {P1} is CAPTURED 2500 EUR here; pi_1 at Stripe received 2000 "
            "(expected 2500 in its units)",
        )
    ]


def test_an_authorization_for_another_amount_is_an_amount_difference() -> None:
    books = stripe(intent("requires_capture", amount=2_600))
    assert differences([ours("AUTHORIZED")], books) == [
        Difference(
            AMOUNT,
            P1,
            "pi_1",
            "2500 EUR",
            "2600 asked for",
            f"payment {P1} is AUTHORIZED 2500 EUR here; pi_1 at Stripe asked for 2600 "
            "(expected 2500 in its units)",
        )
    ]


def test_a_payment_in_another_currency_is_a_currency_difference() -> None:
    books = stripe(intent("succeeded", currency="USD"))
    assert differences([ours("CAPTURED")], books) == [
        Difference(
            CURRENCY,
            P1,
            "pi_1",
            "EUR",
            "USD",
            f"payment {P1} is in EUR here, pi_1 in USD at Stripe",
        )
    ]


@pytest.mark.parametrize(
    ("status", "theirs", "expected"),
    [
        ("DECLINED", "succeeded", "canceled or requires_payment_method or none"),
        ("DECLINED", "requires_capture", "canceled or requires_payment_method or none"),
        ("AUTHORIZED", "canceled", "requires_capture"),
        ("CAPTURED", "requires_capture", "succeeded"),
        ("VOIDED", "requires_capture", "canceled or none"),
        (
            "PENDING",
            "succeeded",
            "processing or requires_action or requires_capture or requires_confirmation or "
            "requires_payment_method or none",
        ),
        ("REFUNDING", "canceled", "succeeded"),
    ],
)
def test_a_provider_status_the_payments_status_does_not_allow_is_a_status_difference(
    status: str, theirs: str, expected: str
) -> None:
    assert differences([ours(status)], stripe(intent(theirs))) == [
        Difference(
            STATUS,
            P1,
            "pi_1",
            status,
            theirs,
            f"payment {P1} is {status} here, pi_1 is {theirs} at Stripe (expected {expected})",
        )
    ]


def test_a_payment_intent_other_than_the_one_we_recorded_is_a_reference_difference() -> None:
    books = stripe(intent("succeeded", ref="pi_2"))
    assert differences([ours("CAPTURED")], books) == [
        Difference(
            REFERENCE,
            P1,
            "pi_2",
            "pi_1",
            "pi_2",
            f"payment {P1} names pi_1 here; Stripe's payment for it is pi_2",
        )
    ]


def test_a_refunded_payment_without_its_refund_at_the_provider_is_a_refund_missing() -> None:
    assert differences([ours("REFUNDED", refund_ref="re_1")], stripe(intent("succeeded"))) == [
        Difference(
            REFUND_MISSING,
            P1,
            "re_1",
            "REFUNDED 2500 EUR",
            None,
            f"payment {P1} is REFUNDED (2500 EUR) here; Stripe has no refund re_1",
        )
    ]
    failed = stripe(intent("succeeded"), refunds=(refund(status="failed"),))
    assert differences([ours("REFUNDED", refund_ref="re_1")], failed) == [
        Difference(
            REFUND_MISSING,
            P1,
            "re_1",
            "REFUNDED 2500 EUR",
            "failed",
            f"payment {P1} is REFUNDED (2500 EUR) here; Stripe has its refund re_1 failed",
        )
    ]


def test_a_refund_of_a_payment_we_did_not_refund_is_a_refund_unknown_to_us() -> None:
    books = stripe(intent("succeeded"), refunds=(refund(),))
    assert differences([ours("CAPTURED")], books) == [
        Difference(
            REFUND_UNKNOWN,
            P1,
            "re_1",
            "CAPTURED",
            "2500 EUR succeeded",
            f"refund re_1 (2500 EUR succeeded) at Stripe, but payment {P1} is CAPTURED here",
        )
    ]


def test_a_refund_other_than_ours_is_unknown_and_ours_missing() -> None:
    books = stripe(intent("succeeded"), refunds=(refund("re_2"),))
    assert [d.kind for d in differences([ours("REFUNDED", refund_ref="re_1")], books)] == [
        REFUND_MISSING,
        REFUND_UNKNOWN,
    ]


def test_a_refund_naming_no_payment_of_ours_is_a_refund_unknown_to_us() -> None:
    stray = ProviderRefund("re_9", None, None, "succeeded", 100, "USD")
    assert differences([], stripe(refunds=(stray,))) == [
        Difference(
            REFUND_UNKNOWN,
            None,
            "re_9",
            None,
            "100 USD succeeded",
            "refund re_9 (100 USD succeeded) at Stripe is of no payment we have "
            "(payment -, PaymentIntent -)",
        )
    ]
    # One that failed took nothing back.
    failed = ProviderRefund("re_9", None, None, "failed", 100, "USD")
    assert differences([], stripe(refunds=(failed,))) == []


def test_a_refund_of_another_amount_is_a_refund_amount_difference() -> None:
    books = stripe(intent("succeeded"), refunds=(refund(amount=1_000),))
    assert differences([ours("REFUNDED", refund_ref="re_1")], books) == [
        Difference(
            REFUND_AMOUNT,
            P1,
            "re_1",
            "2500 EUR",
            "1000 EUR succeeded",
            f"payment {P1} was refunded 2500 EUR here; refund re_1 at Stripe is 1000 EUR "
            "succeeded (expected 2500 in its units)",
        )
    ]


# -- the local provider's records ---------------------------------------------------


def test_the_local_providers_records_read_as_stripes_statuses() -> None:
    books = local_books(
        {
            P1: {"authorized": 2_500, "captured": 2_500, "refunded": 2_500},
            P2: {"voided": 0},
        }
    )
    assert books.payments == (
        ProviderPayment(None, P1, "succeeded", 2_500, 2_500, None),
        # A void of an authorization that timed out: no amount recorded.
        ProviderPayment(None, P2, "canceled", None, 0, None),
    )
    assert books.refunds == (ProviderRefund(None, None, P1, "succeeded", 2_500, None),)
    agreeing = [
        ours("REFUNDED", ref=f"local-{P1}", refund_ref=f"local-refund-{P1}", provider=LOCAL),
        ours("VOIDED", payment_id=P2, ref=None, provider=LOCAL),
    ]
    assert differences(agreeing, books) == []
    captured_elsewhere = local_books({P1: {"authorized": 2_500}})
    assert differences(
        [ours("CAPTURED", ref=f"local-{P1}", provider=LOCAL)], captured_elsewhere
    ) == [
        Difference(
            STATUS,
            P1,
            None,
            "CAPTURED",
            "requires_capture",
            f"payment {P1} is CAPTURED here, the record of payment {P1} is requires_capture "
            "at the local provider (expected succeeded)",
        )
    ]


# -- the command --------------------------------------------------------------------


@pytest.fixture(scope="module")
async def dsn(stack: LocalStack) -> AsyncIterator[str]:
    """A database of its own on the stack's server (the stack's payments
    stay out of it)."""
    async with own_database(stack, "reconcile") as created:
        yield created


async def add_payment(
    dsn: str,
    status: str,
    at: datetime,
    *,
    provider: str = LOCAL,
    ref: str | None = None,
    refund_ref: str | None = None,
    operations: dict[str, int] | None = None,
) -> str:
    """A payment of 2500 EUR made at ``at`` (with an event and a reservation
    of its own), and the local provider's ``operations`` on it, at ``at``."""
    event_id, reservation_id, payment_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute(
                """INSERT INTO events (event_id, name, capacity, available, held, confirmed,
                                       per_user_limit, price_minor, currency, hold_ttl_ms)
                   VALUES ($1, 'reconcile', 1, 0, 0, 1, 1, 2500, 'EUR', 600000)""",
                event_id,
            )
            await conn.execute(
                """INSERT INTO reservations (reservation_id, event_id, user_id, quantity,
                       status, idempotency_key, accepted_at, decided_at, source_partition,
                       source_offset, fence_token, amount_minor, currency)
                   VALUES ($1, $2, 'buyer', 1, 'CONFIRMED', 'k', $3, $3, 0, 0, 1, 2500, 'EUR')""",
                reservation_id,
                event_id,
                at,
            )
            await conn.execute(
                """INSERT INTO payments (payment_id, reservation_id, event_id, user_id,
                       idempotency_key, method, amount_minor, currency, status, created_at,
                       updated_at, deadline, provider, provider_ref, refund_ref)
                   VALUES ($1, $2, $3, 'buyer', 'pay', 'test-ok', 2500, 'EUR', $4, $5, $5, $5,
                           $6, $7, $8)""",
                payment_id,
                reservation_id,
                event_id,
                status,
                at,
                provider,
                ref,
                refund_ref,
            )
            for operation, amount in (operations or {}).items():
                await conn.execute(
                    """INSERT INTO provider_operations (payment_id, operation, amount_minor, at)
                       VALUES ($1, $2, $3, $4)""",
                    payment_id,
                    operation,
                    amount,
                    at,
                )
    finally:
        await conn.close()
    return str(payment_id)


async def run_admin(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """``ticketing-admin`` with ``args``, in an environment of ``env`` and no
    other TICKETING_* variable."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TICKETING_")}
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ticketing_tools.admin",
        *args,
        env={**clean, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(child.communicate(), timeout=60)
    assert child.returncode is not None
    return child.returncode, out.decode(), err.decode()


def window(day: int) -> tuple[datetime, list[str]]:
    """A range of one hour of its own in the past (one per test, so that
    their payments stay apart), and the command line arguments naming it."""
    since = datetime(2021, 1, 1, tzinfo=UTC) + timedelta(days=day)
    return since, [
        "--since",
        since.isoformat(),
        "--until",
        (since + timedelta(hours=1)).isoformat(),
    ]


async def test_the_command_exits_0_when_the_books_agree_and_1_on_a_difference(dsn: str) -> None:
    since, bounds = window(1)
    env = {variable(PostgresClient, "postgres_dsn"): dsn}
    captured = {"authorized": 2_500, "captured": 2_500}
    await add_payment(dsn, "CAPTURED", since + timedelta(minutes=1), operations=captured)
    await add_payment(dsn, "VOIDED", since + timedelta(minutes=2))
    code, out, err = await run_admin(
        "payments", "reconcile", *bounds, "--provider", "local", env=env
    )
    assert (code, err) == (0, "")
    assert out.splitlines()[-1].startswith(
        "local: 0 differences between our 2 payments and its 1 payments and 0 refunds"
    )

    lost = await add_payment(dsn, "CAPTURED", since + timedelta(minutes=3))
    code, out, _ = await run_admin("payments", "reconcile", *bounds, "--provider", "local", env=env)
    assert code == 1
    assert out.splitlines()[0] == (
        f"local  missing at provider: payment {lost} is CAPTURED (2500 EUR) here; the local "
        "provider has no payment for it"
    )
    code, out, _ = await run_admin(
        "payments", "reconcile", *bounds, "--provider", "local", "--json", env=env
    )
    (result,) = json.loads(out)
    assert code == 1
    assert [(d["kind"], d["payment_id"]) for d in result["differences"]] == [(MISSING, lost)]


async def test_a_payment_of_ours_outside_the_range_is_looked_up_not_called_unknown(
    dsn: str,
) -> None:
    since, bounds = window(2)
    # Our clock stamped it just before the range; the provider's record is in it.
    early = await add_payment(dsn, "AUTHORIZED", since - timedelta(seconds=1))
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "INSERT INTO provider_operations VALUES ($1, 'authorized', 2500, $2)",
            uuid.UUID(early),
            since + timedelta(seconds=1),
        )
    finally:
        await conn.close()
    env = {variable(PostgresClient, "postgres_dsn"): dsn}
    code, out, _ = await run_admin("payments", "reconcile", *bounds, "--provider", "local", env=env)
    assert code == 0, out


async def test_stripe_payments_without_a_stripe_key_stop_the_command(dsn: str) -> None:
    since, bounds = window(3)
    await add_payment(dsn, "CAPTURED", since, provider=STRIPE, ref="pi_x")
    env = {variable(PostgresClient, "postgres_dsn"): dsn}
    code, _, err = await run_admin("payments", "reconcile", *bounds, env=env)
    assert code == 2
    assert variable(StripeSettings, "api_key") in err
    code, _, err = await run_admin(
        "payments", "reconcile", *bounds, "--provider", "stripe", env=env
    )
    assert code == 2
    assert variable(StripeSettings, "api_key") in err


async def test_a_stripe_that_does_not_answer_stops_the_command(dsn: str) -> None:
    _, bounds = window(5)
    env = {
        variable(PostgresClient, "postgres_dsn"): dsn,
        variable(StripeSettings, "api_key"): "sk_test_reconcile",
        # Nothing listens there.
        variable(StripeSettings, "api_base"): f"http://127.0.0.1:{free_port()}",
    }
    code, out, err = await run_admin(
        "payments", "reconcile", *bounds, "--provider", "stripe", env=env
    )
    assert (code, out) == (2, "")
    assert err.startswith("Stripe refused or failed to answer:"), err


async def test_a_range_that_ends_before_it_begins_is_refused() -> None:
    code, _, err = await run_admin(
        "payments",
        "reconcile",
        "--since",
        "2026-03-02T00:00:00Z",
        "--until",
        "2026-03-01T00:00:00Z",
        env={},
    )
    assert code == 2
    assert "is not before --until" in err
    code, _, err = await run_admin("payments", "reconcile", "--since", "yesterday", env={})
    assert code == 2
    assert "not an ISO 8601 time: 'yesterday'" in err


async def test_the_local_providers_books_of_the_stacks_own_payments_agree(
    stack: LocalStack,
    gateway: Gateway,
    notifier: Notifier,
    payments: Payments,
    reservations: Reservations,
) -> None:
    """Payments the saga took through the stack (declined, voided when the
    provider never answered, captured, refunded) are what the local
    provider's books say, and the ledger names each one's reference."""
    since = datetime.now(UTC) - timedelta(seconds=1)
    event = await create_priced_event(reservations, capacity=2, hold_s=60)
    first = await hold_for(gateway, notifier, event.event_id, "rhea")
    await pay(payments, first.reservation_id, "rhea", "test-declined", key="card-1")
    await watch_until(notifier, first.reservation_id, lambda r: r.payment_status == DECLINED)
    refunded = await pay(payments, first.reservation_id, "rhea", "test-ok", key="card-2")
    await watch_until(notifier, first.reservation_id, lambda r: r.payment_status == CAPTURED)
    second = await hold_for(gateway, notifier, event.event_id, "saul")
    await pay(payments, second.reservation_id, "saul", "test-timeout", key="t-1")
    await watch_until(notifier, second.reservation_id, lambda r: r.payment_status == VOIDED)
    captured = await pay(payments, second.reservation_id, "saul", "test-ok", key="t-2")
    await watch_until(notifier, second.reservation_id, lambda r: r.payment_status == CAPTURED)
    await reservations.CancelReservation(
        rs.CancelReservationRequest(reservation_id=first.reservation_id),
        timeout=10,
        metadata=as_user("rhea"),
    )
    await watch_until(notifier, first.reservation_id, lambda r: r.payment_status == REFUNDED)

    env = {variable(PostgresClient, "postgres_dsn"): stack.postgres_dsn}
    code, out, err = await run_admin(
        "payments", "reconcile", "--since", since.isoformat(), "--provider", "local", env=env
    )
    assert (code, err) == (0, ""), out
    assert out.startswith("local: 0 differences between our 4 payments"), out

    pool = await asyncpg.create_pool(stack.postgres_dsn, min_size=1, max_size=2)
    try:
        (money,) = await money_checks(pool, event.event_id)
    finally:
        await pool.close()
    assert money.ok, money
    assert [(r.payment_id, r.status, r.provider, r.reference) for r in money.references] == [
        (refunded.payment_id, "REFUNDED", LOCAL, f"local-refund-{refunded.payment_id}"),
        (captured.payment_id, "CAPTURED", LOCAL, f"local-{captured.payment_id}"),
    ]


# -- Stripe's books, from stripe-mock ---------------------------------------------


@pytest.fixture(scope="module")
def built(pytestconfig: pytest.Config) -> stripe_mock.StripeMock:
    try:
        return stripe_mock.ensure(pytestconfig.rootpath)
    except stripe_mock.BuildError as exc:
        pytest.fail(str(exc))


@pytest.fixture
def mock(built: stripe_mock.StripeMock, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """stripe-mock's address and its log (every request and its parameters)."""
    port = free_port()
    log = tmp_path / "stripe-mock.log"
    child = Child("stripe-mock", built.command(f"127.0.0.1:{port}"), log)
    child.start()
    try:
        wait_until(lambda: port_open(port), timeout_s=30, what="stripe-mock", alive=child.alive)
        yield f"http://127.0.0.1:{port}", log
    finally:
        child.stop()


def canned(built: stripe_mock.StripeMock, resource: str) -> dict[str, Any]:
    fixtures = json.loads(built.fixtures.read_text())
    found: dict[str, Any] = fixtures["resources"][resource]
    return found


async def test_stripes_listing_is_accepted_and_its_canned_payment_is_unknown_to_us(
    built: stripe_mock.StripeMock, mock: tuple[str, Path]
) -> None:
    api_base, log = mock
    settings = StripeSettings(api_key=SecretStr("sk_test_reconcile"), api_base=api_base)
    async with stripe_client(settings) as client:
        books = await stripe_listing(client, T0, T0 + timedelta(days=1))
    pi, re = canned(built, "payment_intent"), canned(built, "refund")
    assert pi["metadata"] == {} and re["metadata"] == {}
    amount, currency = pi["amount"], pi["currency"].upper()
    assert differences([], books) == [
        Difference(
            UNKNOWN,
            None,
            pi["id"],
            None,
            f"{pi['status']} {amount} {currency}",
            f"{pi['id']} ({pi['status']}, {amount} {currency}) at Stripe names none of our "
            "payments",
        ),
        Difference(
            REFUND_UNKNOWN,
            None,
            re["id"],
            None,
            f"{re['amount']} {re['currency'].upper()} {re['status']}",
            f"refund {re['id']} ({re['amount']} {re['currency'].upper()} {re['status']}) at "
            "Stripe is of no payment we have (payment -, PaymentIntent -)",
        ),
    ]
    # Both lists were asked for by creation time, a full page at a time.
    requests = log.read_text()
    gte, lt = int(T0.timestamp()), int((T0 + timedelta(days=1)).timestamp())
    for path in ("/v1/payment_intents", "/v1/refunds"):
        assert f"Request: GET {path}" in requests
    asked = f"Request data: map[created:map[gte:{gte} lt:{lt}] limit:100]"
    assert requests.count(asked) == 2, requests[-3000:]
    assert "status=200" in requests
    assert "status=4" not in requests


async def test_the_command_reads_stripes_books_and_asks_for_our_payments_it_did_not_list(
    built: stripe_mock.StripeMock, mock: tuple[str, Path], dsn: str
) -> None:
    api_base, log = mock
    since, bounds = window(4)
    ours_id = await add_payment(dsn, "CAPTURED", since, provider=STRIPE, ref="pi_ours")
    env = {
        variable(PostgresClient, "postgres_dsn"): dsn,
        variable(StripeSettings, "api_key"): "sk_test_reconcile",
        variable(StripeSettings, "api_base"): api_base,
    }
    code, out, err = await run_admin("payments", "reconcile", *bounds, "--json", env=env)
    assert code == 1, err
    local, at_stripe = json.loads(out)
    assert (local["provider"], local["differences"]) == (LOCAL, [])
    found = {(d["kind"], d["payment_id"], d["provider_ref"]) for d in at_stripe["differences"]}
    pi, re = canned(built, "payment_intent"), canned(built, "refund")
    assert (UNKNOWN, None, pi["id"]) in found
    assert (REFUND_UNKNOWN, None, re["id"]) in found
    # Stripe did not list pi_ours: it was asked for by its id, and stripe-mock's
    # answer (the canned PaymentIntent under that id) is not a captured one.
    assert "Request: GET /v1/payment_intents/pi_ours" in log.read_text()
    assert (STATUS, ours_id, "pi_ours") in found
    assert not [k for k, p, _ in found if p == ours_id and k == MISSING]
