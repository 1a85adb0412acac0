"""The client SDK's own logic, without a network: retries and their waits,
errors read from ``google.rpc`` details, the version filter across
reconnects, and protobuf states mapped to typed outcomes. The services are
small fakes that answer from a script."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import cast

import grpc
import pytest
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2

from ticketing.v1 import gateway_service_pb2 as gw
from ticketing.v1 import notifier_service_pb2 as ns
from ticketing.v1 import reservation_pb2 as pb
from ticketing_client import (
    PROXY_RESETS,
    SERVICE_CONFIG,
    Accepted,
    ApiError,
    Attempt,
    Backoff,
    Cancelled,
    Confirmed,
    Expired,
    ExpiredInQueue,
    Held,
    IdempotencyKeyReused,
    InvalidArgument,
    LimitExceeded,
    Money,
    NoSeatsTogether,
    NotFound,
    PaymentStatus,
    QueueUpdate,
    Rejected,
    RejectReason,
    ResourceExhausted,
    RetryPolicy,
    SaleClosed,
    SaleNotOpen,
    Seat,
    SeatTaken,
    SoldOut,
    TicketingClient,
    Unauthenticated,
    Unavailable,
    Unsettled,
    Update,
    VersionFilter,
    WatchPolicy,
)
from ticketing_client._errors import error_from_rpc
from ticketing_client._outcomes import outcome_of
from ticketing_client._retry import with_retries

RID = "0190c0de-0000-8000-8000-000000000001"
EVENT = "0190c0de-0000-4000-8000-0000000000ee"

# --- fakes ------------------------------------------------------------------


def rpc_error(
    code: grpc.StatusCode, message: str = "refused", *details: Message, shown: str | None = None
) -> grpc.aio.AioRpcError:
    """A failed call as grpc.aio raises it, with ``google.rpc`` details; the
    call's own message is ``shown`` when a proxy rewrote it."""
    packed = []
    for detail in details:
        wrapper = any_pb2.Any()
        wrapper.Pack(detail)
        packed.append(wrapper)
    status = status_pb2.Status(code=code.value[0], message=message, details=packed)
    trailers = grpc.aio.Metadata(("grpc-status-details-bin", status.SerializeToString()))
    return grpc.aio.AioRpcError(
        code, grpc.aio.Metadata(), trailers, message if shown is None else shown, None
    )


def retry_info(seconds: float) -> error_details_pb2.RetryInfo:
    delay = duration_pb2.Duration()
    delay.FromMilliseconds(round(seconds * 1000))
    return error_details_pb2.RetryInfo(retry_delay=delay)


def error_info(reason: str, **metadata: str) -> error_details_pb2.ErrorInfo:
    return error_details_pb2.ErrorInfo(reason=reason, domain="ticketing.v1", metadata=metadata)


def unavailable(after_s: float | None = None) -> grpc.aio.AioRpcError:
    details: list[Message] = [error_info("BROKER_UNAVAILABLE")]
    if after_s is not None:
        details.append(retry_info(after_s))
    return rpc_error(grpc.StatusCode.UNAVAILABLE, "broker did not acknowledge", *details)


def queued(position: int = 0) -> gw.ReserveResponse:
    return gw.ReserveResponse(
        reservation_id=RID,
        status=pb.RESERVATION_STATUS_QUEUED,
        queue_position=pb.QueuePosition(position=position),
    )


def message(
    status: int,
    version: int,
    *,
    settled: bool = False,
    position: int | None = None,
    wait_s: float | None = None,
    reason: int = pb.REJECT_REASON_UNSPECIFIED,
    payment: int = pb.PAYMENT_STATUS_UNSPECIFIED,
) -> ns.WatchReservationResponse:
    reservation = pb.Reservation(
        reservation_id=RID,
        event_id=EVENT,
        quantity=2,
        status=status,  # type: ignore[arg-type]
        reject_reason=reason,  # type: ignore[arg-type]
        version=version,
        settled=settled,
        payment_status=payment,  # type: ignore[arg-type]
    )
    reply = ns.WatchReservationResponse(reservation=reservation)
    if position is not None:
        reply.queue_position.position = position
        if wait_s is not None:
            reply.queue_position.estimated_wait.FromMilliseconds(round(wait_s * 1000))
    return reply


def waiting(
    version: int, position: int, wait_s: float | None = None
) -> ns.WatchReservationResponse:
    return message(pb.RESERVATION_STATUS_QUEUED, version, position=position, wait_s=wait_s)


def confirmed(version: int = 2) -> ns.WatchReservationResponse:
    return message(pb.RESERVATION_STATUS_CONFIRMED, version, settled=True, position=0)


@dataclass
class FakeGateway:
    """Answers Reserve from a script: a response, or an error to raise."""

    script: list[gw.ReserveResponse | grpc.aio.AioRpcError]
    requests: list[gw.ReserveRequest] = field(default_factory=list)
    timeouts: list[float] = field(default_factory=list)
    tokens: list[str | None] = field(default_factory=list)

    async def Reserve(
        self,
        request: gw.ReserveRequest,
        *,
        timeout: float,
        metadata: Sequence[tuple[str, str]],
    ) -> gw.ReserveResponse:
        self.requests.append(request)
        self.timeouts.append(timeout)
        self.tokens.append(dict(metadata).get("authorization"))
        answer = self.script.pop(0)
        if isinstance(answer, grpc.aio.AioRpcError):
            raise answer
        return answer


class FakeStream:
    """One WatchReservation call: some messages, then an error or the end."""

    def __init__(
        self,
        messages: Iterable[ns.WatchReservationResponse],
        error: grpc.aio.AioRpcError | None = None,
    ) -> None:
        self.messages = list(messages)
        self.error = error
        self.cancelled = False

    async def _read(self) -> AsyncIterator[ns.WatchReservationResponse]:
        for item in self.messages:
            yield item
        if self.error is not None:
            raise self.error

    def __aiter__(self) -> AsyncIterator[ns.WatchReservationResponse]:
        return self._read()

    def cancel(self) -> bool:
        self.cancelled = True
        return True


@dataclass
class FakeNotifier:
    streams: list[FakeStream]
    opened: list[FakeStream] = field(default_factory=list)
    tokens: list[str | None] = field(default_factory=list)

    def WatchReservation(
        self,
        request: ns.WatchReservationRequest,
        *,
        timeout: float,
        metadata: Sequence[tuple[str, str]],
    ) -> FakeStream:
        assert request.reservation_id == RID
        self.tokens.append(dict(metadata).get("authorization"))
        stream = self.streams.pop(0)
        self.opened.append(stream)
        return stream


class HalfRandom(random.Random):
    """Jitter at the middle of its range: waits are exact to check."""

    def random(self) -> float:
        return 0.5


@dataclass
class Harness:
    client: TicketingClient
    gateway: FakeGateway
    notifier: FakeNotifier
    sleeps: list[float]


@pytest.fixture
async def harness(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Harness]:
    """A client whose stubs are fakes and whose sleeps are only recorded."""
    client = TicketingClient(
        "127.0.0.1:9",
        token="t0k",
        retry=RetryPolicy(max_attempts=4, attempt_timeout_s=5, deadline_s=20),
        watch=WatchPolicy(stream_timeout_s=30, max_failures=3),
        rng=HalfRandom(),
    )
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    gateway, notifier = FakeGateway([]), FakeNotifier([])
    monkeypatch.setattr(client, "_gateway", gateway)
    monkeypatch.setattr(client, "_notifier", notifier)
    monkeypatch.setattr(client, "_sleep", sleep)
    async with client:
        yield Harness(client, gateway, notifier, sleeps)


# --- backoff and Reserve's retries -------------------------------------------


def test_backoff_grows_to_its_cap_and_jitters_both_ways_without_advice() -> None:
    backoff = Backoff(initial_s=0.2, max_s=1.0, multiplier=2, jitter=0.2)
    middle = [backoff.delay_s(n, None, lambda: 0.5) for n in range(1, 6)]
    assert middle == pytest.approx([0.2, 0.4, 0.8, 1.0, 1.0])
    assert backoff.delay_s(10_000, None, lambda: 0.5) == pytest.approx(1.0)
    assert backoff.delay_s(3, None, lambda: 0.0) == pytest.approx(0.8 * 0.8)
    assert backoff.delay_s(3, None, lambda: 0.999999) == pytest.approx(0.8 * 1.2)


def test_backoff_waits_at_least_what_the_server_advised() -> None:
    backoff = Backoff(jitter=0.2)
    advised = timedelta(seconds=3)
    # Whatever the attempt, the advice wins; jitter only adds to it.
    assert backoff.delay_s(1, advised, lambda: 0.0) == pytest.approx(3.0)
    assert backoff.delay_s(9, advised, lambda: 0.999999) == pytest.approx(3.6)


def test_invalid_policies_are_refused() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="attempt_timeout_s"):
        RetryPolicy(attempt_timeout_s=30, deadline_s=10)
    with pytest.raises(ValueError, match="jitter"):
        Backoff(jitter=2)
    with pytest.raises(ValueError, match="also_retry"):
        RetryPolicy(also_retry=frozenset({grpc.StatusCode.OK}))
    with pytest.raises(ValueError, match="max_failures"):
        WatchPolicy(max_failures=-1)


async def test_reserve_retries_unavailable_with_the_same_key_after_the_advised_delay(
    harness: Harness,
) -> None:
    harness.gateway.script = [unavailable(1.5), unavailable(None), queued(position=7)]
    answer = await harness.client.reserve(EVENT, 2)
    assert isinstance(answer, Accepted)
    assert (answer.reservation_id, answer.position, answer.quantity) == (RID, 7, 2)
    keys = {r.idempotency_key for r in harness.gateway.requests}
    assert len(harness.gateway.requests) == 3 and keys == {answer.idempotency_key}
    # RetryInfo first (1.5 s plus half the jitter), then the plain backoff.
    assert harness.sleeps == pytest.approx([1.5 * 1.1, 0.4])
    assert all(t <= 5 for t in harness.gateway.timeouts)


async def test_reserve_retries_a_rate_limit_only_when_told_when(harness: Harness) -> None:
    limited = rpc_error(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "too many calls",
        error_info("RATE_LIMITED", limit="subject"),
        retry_info(0.25),
    )
    harness.gateway.script = [limited, queued()]
    assert isinstance(await harness.client.reserve(EVENT, 1, idempotency_key="k1"), Accepted)
    assert harness.sleeps == pytest.approx([0.25 * 1.1])

    # Too big a message says nothing of later: no retry.
    harness.gateway.script = [rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED, "too large")]
    with pytest.raises(ResourceExhausted) as raised:
        await harness.client.reserve(EVENT, 1, idempotency_key="k2")
    assert (raised.value.retriable, raised.value.attempts) == (False, 1)


async def test_reserve_gives_up_after_its_attempts_with_the_last_error(
    harness: Harness,
) -> None:
    harness.gateway.script = [unavailable(0.1) for _ in range(4)]
    with pytest.raises(Unavailable) as raised:
        await harness.client.reserve(EVENT, 1)
    assert raised.value.attempts == 4 and raised.value.reason == "BROKER_UNAVAILABLE"
    assert len(harness.sleeps) == 3


async def test_reserve_gives_up_at_once_when_the_advised_wait_passes_its_deadline(
    harness: Harness,
) -> None:
    harness.gateway.script = [unavailable(60)]  # the deadline is 20 s
    with pytest.raises(Unavailable) as raised:
        await harness.client.reserve(EVENT, 1)
    assert raised.value.retry_after == timedelta(seconds=60)
    assert harness.sleeps == [] and len(harness.gateway.requests) == 1


async def test_reserve_does_not_retry_a_refusal(harness: Harness) -> None:
    harness.gateway.script = [
        rpc_error(
            grpc.StatusCode.FAILED_PRECONDITION,
            "key reused",
            error_info("IDEMPOTENCY_KEY_REUSED", reservation_id=RID, quantity="3"),
        )
    ]
    with pytest.raises(IdempotencyKeyReused) as raised:
        await harness.client.reserve(EVENT, 1, idempotency_key="reused")
    assert (raised.value.reservation_id, raised.value.first_quantity) == (RID, 3)
    assert harness.sleeps == []


async def test_reserve_sends_the_seats_asked_for(harness: Harness) -> None:
    harness.gateway.script = [queued(), queued(), queued()]
    await harness.client.reserve(EVENT, 2)
    await harness.client.reserve(EVENT, 2, section_id="B", accessible=True)
    chosen = await harness.client.reserve(EVENT, 0, seat_ids=("A-1-1", "A-1-2"))
    sent = [
        (r.quantity, r.section_id, list(r.seat_ids), r.accessible) for r in harness.gateway.requests
    ]
    assert sent == [
        (2, "", [], False),
        (2, "B", [], True),
        (0, "", ["A-1-1", "A-1-2"], False),
    ]
    # Chosen seats with quantity 0 ask for as many seats as they name.
    assert isinstance(chosen, Accepted) and chosen.quantity == 2


async def test_reserve_and_wait_returns_the_seats_or_why_there_were_none(
    harness: Harness,
) -> None:
    sold = confirmed(3)
    sold.reservation.seats.add(section_id="B", row_id="B-2", seat_id="B-2-3")
    sold.reservation.seats.add(section_id="B", row_id="B-2", seat_id="B-2-4")
    taken = message(
        pb.RESERVATION_STATUS_REJECTED, 2, settled=True, reason=pb.REJECT_REASON_SEAT_TAKEN
    )
    harness.notifier.streams = [FakeStream([waiting(1, 0), sold]), FakeStream([taken])]
    harness.gateway.script = [queued(), queued()]

    pair = await harness.client.reserve_and_wait(EVENT, 2, section_id="B")
    assert isinstance(pair, Confirmed)
    assert pair.seats == (Seat("B", "B-2", "B-2-3"), Seat("B", "B-2", "B-2-4"))
    refused = await harness.client.reserve_and_wait(EVENT, 0, seat_ids=["B-2-3"], accessible=True)
    assert isinstance(refused, SeatTaken) and refused.reason == RejectReason.SEAT_TAKEN
    first, second = harness.gateway.requests
    assert (first.section_id, list(first.seat_ids), first.accessible) == ("B", [], False)
    assert (second.section_id, list(second.seat_ids), second.accessible) == ("", ["B-2-3"], True)


async def test_a_token_function_is_asked_before_every_attempt(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    issued = iter(["first", "second"])

    async def current() -> str:
        return next(issued)

    monkeypatch.setattr(harness.client, "_token", current)
    harness.gateway.script = [unavailable(0.1), queued()]
    await harness.client.reserve(EVENT, 1)
    assert harness.gateway.tokens == ["Bearer first", "Bearer second"]


def proxy_reset(code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    """What nginx answers when its upstream resets mid-call: no details."""
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), "reset", None)


async def test_reserve_retries_a_proxys_reset_only_when_the_policy_says_so(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness.gateway.script = [proxy_reset(grpc.StatusCode.INTERNAL)]
    with pytest.raises(ApiError) as raised:
        await harness.client.reserve(EVENT, 1)
    assert (raised.value.code, raised.value.attempts) == (grpc.StatusCode.INTERNAL, 1)

    lenient = RetryPolicy(
        max_attempts=4, attempt_timeout_s=5, deadline_s=20, also_retry=PROXY_RESETS
    )
    monkeypatch.setattr(harness.client, "_retry", lenient)
    harness.gateway.script = [
        proxy_reset(grpc.StatusCode.INTERNAL),
        proxy_reset(grpc.StatusCode.UNKNOWN),
        proxy_reset(grpc.StatusCode.CANCELLED),
        queued(),
    ]
    answer = await harness.client.reserve(EVENT, 1, idempotency_key="same")
    assert isinstance(answer, Accepted)
    assert [r.idempotency_key for r in harness.gateway.requests[1:]] == ["same"] * 4
    # A refusal is still a refusal.
    harness.gateway.script = [rpc_error(grpc.StatusCode.NOT_FOUND, "no")]
    with pytest.raises(NotFound):
        await harness.client.reserve(EVENT, 1)


async def test_reserve_without_an_attempt_limit_retries_until_its_deadline() -> None:
    """A clock that only the calls and the waits move: 1 s per call, 1 s per wait."""
    now = 0.0
    timeouts: list[float] = []

    async def sleep(seconds: float) -> None:
        nonlocal now
        now += seconds

    async def attempt(timeout_s: float) -> gw.ReserveResponse:
        nonlocal now
        timeouts.append(timeout_s)
        now += 1
        raise unavailable(None)

    steady = Backoff(initial_s=1, max_s=1, multiplier=1, jitter=0)
    policy = RetryPolicy(max_attempts=None, attempt_timeout_s=3, deadline_s=10, backoff=steady)
    with pytest.raises(Unavailable) as raised:
        await with_retries(attempt, policy, sleep=sleep, rng=lambda: 0.5, clock=lambda: now)
    # Calls end at 1, 3, 5, 7, 9 s; after the fifth a wait would reach the deadline.
    assert raised.value.attempts == 5
    assert timeouts == [3, 3, 3, 3, 2]  # the last call gets what is left

    script: list[gw.ReserveResponse | grpc.aio.AioRpcError] = [unavailable(None)] * 20
    answers = iter([*script, queued()])

    async def flaky(timeout_s: float) -> gw.ReserveResponse:
        answer = next(answers)
        if isinstance(answer, grpc.aio.AioRpcError):
            raise answer
        return answer

    patient = RetryPolicy(max_attempts=None, deadline_s=3600)
    reply = await with_retries(flaky, patient, sleep=sleep, rng=lambda: 0.5)
    assert reply.reservation_id == RID  # 21 calls, well past the default limit of 6


async def test_on_attempt_is_told_every_call_with_its_code_advice_and_wait(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    told: list[Attempt] = []
    monkeypatch.setattr(harness.client, "_on_attempt", told.append)
    harness.gateway.script = [unavailable(1.5), unavailable(None), queued()]
    await harness.client.reserve(EVENT, 1)
    assert [(a.number, a.code, a.retry_after) for a in told] == [
        (1, grpc.StatusCode.UNAVAILABLE, timedelta(seconds=1.5)),
        (2, grpc.StatusCode.UNAVAILABLE, None),
        (3, grpc.StatusCode.OK, None),
    ]
    # The wait that followed each failure; none after the answer.
    assert [a.retry_in_s for a in told] == [pytest.approx(1.65), pytest.approx(0.4), None]
    assert told[2].error is None and all(a.elapsed_s >= 0 for a in told)
    assert [a.retry_in_s for a in told[:2]] == pytest.approx(harness.sleeps)

    # The call the client gives up after is told too, with no wait to follow.
    told.clear()
    harness.gateway.script = [unavailable(60)]  # past the 20 s deadline
    with pytest.raises(Unavailable) as raised:
        await harness.client.reserve(EVENT, 1)
    (last,) = told
    assert (last.code, last.retry_in_s, last.error) == (
        grpc.StatusCode.UNAVAILABLE,
        None,
        raised.value,
    )


class SharedChannel:
    """Stands in for a grpc.aio.Channel that several clients share: its
    calls go to the fakes, and it remembers being closed."""

    def __init__(self, gateway: FakeGateway, notifier: FakeNotifier) -> None:
        self.gateway = gateway
        self.notifier = notifier
        self.closed = False

    def unary_unary(self, method: str, **_: object) -> object:
        return self.gateway.Reserve if method.endswith("/Reserve") else None

    def unary_stream(self, method: str, **_: object) -> object:
        return self.notifier.WatchReservation

    async def close(self, grace: float | None = None) -> None:
        self.closed = True


async def test_clients_over_one_channel_send_their_own_tokens_and_leave_it_open() -> None:
    gateway = FakeGateway([queued(), queued(), queued()])
    notifier = FakeNotifier([FakeStream([confirmed()])])
    channel = SharedChannel(gateway, notifier)
    shared = cast(grpc.aio.Channel, channel)
    async with (
        TicketingClient.over(shared, token="alice") as alice,
        TicketingClient.over(shared, token=lambda: "bob") as bob,
    ):
        assert isinstance(await alice.reserve(EVENT, 1), Accepted)
        assert isinstance(await bob.reserve(EVENT, 1), Accepted)
    # Without a token the channel authenticates the calls itself.
    async with TicketingClient.over(shared) as anonymous:
        await anonymous.reserve(EVENT, 1)
        updates = [u async for u in anonymous.watch(RID)]
    assert gateway.tokens == ["Bearer alice", "Bearer bob", None]
    assert notifier.tokens == [None] and isinstance(updates[-1], Confirmed)
    assert not channel.closed

    # A client that opened its channel closes it.
    own = TicketingClient("127.0.0.1:9", token="t")
    opened, mine = own._channel, SharedChannel(gateway, notifier)
    own._channel = cast(grpc.aio.Channel, mine)
    await own.close()
    await opened.close(None)
    assert mine.closed


def test_the_channel_retries_only_unavailable_and_is_throttled() -> None:
    (config,) = SERVICE_CONFIG["methodConfig"]
    names = {(n["service"], n["method"]) for n in config["name"]}
    assert ("ticketing.v1.GatewayService", "Reserve") in names
    assert ("ticketing.v1.GatewayService", "ReserveSync") not in names
    assert config["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]
    assert SERVICE_CONFIG["retryThrottling"]["maxTokens"] > 0


# --- errors -----------------------------------------------------------------


def test_errors_carry_their_reason_metadata_and_field_violations() -> None:
    bad = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field="event_id", description="not a UUID"),
            error_details_pb2.BadRequest.FieldViolation(field="quantity", description="below 1"),
        ]
    )
    invalid = error_from_rpc(
        rpc_error(grpc.StatusCode.INVALID_ARGUMENT, "bad", error_info("INVALID_REQUEST"), bad)
    )
    assert isinstance(invalid, InvalidArgument) and invalid.reason == "INVALID_REQUEST"
    assert [v.field for v in invalid.field_violations] == ["event_id", "quantity"]
    assert not invalid.retriable

    early = error_from_rpc(
        rpc_error(
            grpc.StatusCode.FAILED_PRECONDITION,
            "not yet",
            error_info("SALE_NOT_STARTED", event_id=EVENT, sale_start_time="2030-01-01T10:00:00Z"),
        )
    )
    assert isinstance(early, SaleNotOpen)
    assert early.metadata["sale_start_time"] == "2030-01-01T10:00:00Z"

    expired = error_from_rpc(
        rpc_error(grpc.StatusCode.UNAUTHENTICATED, "expired", error_info("TOKEN_EXPIRED"))
    )
    assert isinstance(expired, Unauthenticated) and expired.reason == "TOKEN_EXPIRED"

    missing = error_from_rpc(
        rpc_error(grpc.StatusCode.NOT_FOUND, "no", error_info("EVENT_NOT_FOUND", event_id=EVENT))
    )
    assert isinstance(missing, NotFound) and missing.metadata == {"event_id": EVENT}


def test_a_proxys_error_without_details_is_still_typed() -> None:
    bare = grpc.aio.AioRpcError(
        grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "502", None
    )
    error = error_from_rpc(bare)
    assert isinstance(error, Unavailable) and error.retriable
    assert (error.reason, error.retry_after, dict(error.metadata)) == (None, None, {})
    # Details that do not match the call's status (rewritten on the way) are ignored.
    rewritten = rpc_error(
        grpc.StatusCode.UNAVAILABLE, "one", error_info("X"), retry_info(9), shown="another"
    )
    assert error_from_rpc(rewritten).retry_after is None


# --- outcomes ---------------------------------------------------------------


def test_every_status_and_reason_maps_to_its_outcome() -> None:
    def outcome(status: int, reason: int = pb.REJECT_REASON_UNSPECIFIED) -> object:
        return outcome_of(message(status, 2, settled=True, reason=reason).reservation)

    assert isinstance(outcome(pb.RESERVATION_STATUS_CONFIRMED), Confirmed)
    assert isinstance(outcome(pb.RESERVATION_STATUS_EXPIRED), Expired)
    assert isinstance(outcome(pb.RESERVATION_STATUS_CANCELLED), Cancelled)
    assert outcome(pb.RESERVATION_STATUS_QUEUED) is None
    rejected = pb.RESERVATION_STATUS_REJECTED
    kinds = {
        pb.REJECT_REASON_SOLD_OUT: SoldOut,
        pb.REJECT_REASON_LIMIT_EXCEEDED: LimitExceeded,
        pb.REJECT_REASON_SALE_CLOSED: SaleClosed,
        pb.REJECT_REASON_EXPIRED_IN_QUEUE: ExpiredInQueue,
        pb.REJECT_REASON_SEAT_TAKEN: SeatTaken,
        pb.REJECT_REASON_NO_SEATS_TOGETHER: NoSeatsTogether,
    }
    for reason, kind in kinds.items():
        found = outcome(rejected, reason)
        assert type(found) is kind and isinstance(found, Rejected)
        assert found.reason == RejectReason(reason)
    internal = outcome(rejected, pb.REJECT_REASON_INTERNAL)
    assert type(internal) is Rejected and internal.reason == RejectReason.INTERNAL
    newer = outcome(rejected, 99)  # a reason this package does not know yet
    assert type(newer) is Rejected and newer.reason == RejectReason.UNSPECIFIED


def test_a_hold_says_until_when_and_for_how_much() -> None:
    reservation = message(
        pb.RESERVATION_STATUS_HELD, 2, payment=pb.PAYMENT_STATUS_PENDING
    ).reservation
    reservation.hold_expire_time.FromDatetime(datetime(2030, 5, 1, 12, 0, tzinfo=UTC))
    reservation.amount.CopyFrom(pb.Money(currency_code="EUR", amount_minor=9_800))
    held = outcome_of(reservation)
    assert isinstance(held, Held)
    assert held.deadline == datetime(2030, 5, 1, 12, 0, tzinfo=UTC)
    assert held.amount == Money("EUR", 9_800)
    assert (held.settled, held.payment_status) == (False, PaymentStatus.PENDING)
    assert held.reservation is reservation


def test_held_and_confirmed_seats_are_the_reservations_seats_in_order() -> None:
    reservation = message(pb.RESERVATION_STATUS_HELD, 2).reservation
    reservation.hold_expire_time.FromDatetime(datetime(2030, 5, 1, 12, 0, tzinfo=UTC))
    reservation.seats.add(section_id="B", row_id="B-1", seat_id="B-1-6")
    reservation.seats.add(section_id="B", row_id="B-1", seat_id="B-1-5")
    held = outcome_of(reservation)
    assert isinstance(held, Held)
    assert held.seats == (Seat("B", "B-1", "B-1-6"), Seat("B", "B-1", "B-1-5"))

    standing = message(pb.RESERVATION_STATUS_CONFIRMED, 3, settled=True).reservation
    standing.seats.add(section_id="floor")
    standing.seats.add(section_id="floor")
    sold = outcome_of(standing)
    assert isinstance(sold, Confirmed)
    assert sold.seats == (Seat("floor"), Seat("floor")) == (Seat("floor", "", ""),) * 2
    # The SDK's own frozen value, not the protobuf message.
    assert not isinstance(sold.seats[0], pb.Seat) and hash(sold.seats[0])

    general = outcome_of(message(pb.RESERVATION_STATUS_CONFIRMED, 2, settled=True).reservation)
    assert isinstance(general, Confirmed) and general.seats == ()


# --- the watch ----------------------------------------------------------------


def test_the_filter_tells_each_version_once_and_places_only_when_they_move() -> None:
    seen = VersionFilter()
    told = [
        seen.admit(m)
        for m in (
            waiting(1, position=3),
            waiting(1, position=3),  # a new stream's first message: a repeat
            waiting(1, position=2, wait_s=4.0),  # moved up, with an estimate
            waiting(1, position=2, wait_s=4.0),
            waiting(2, position=2, wait_s=4.0),  # waitlisted: a new version
            confirmed(version=3),
            waiting(2, position=1),  # a notifier behind the first: stale
            confirmed(version=3),  # told already
        )
    ]
    assert told == [
        QueueUpdate(3, None, RID, 1),
        None,
        QueueUpdate(2, timedelta(seconds=4), RID, 1),
        None,
        QueueUpdate(2, timedelta(seconds=4), RID, 2),
        told[5],
        None,
        None,
    ]
    assert isinstance(told[5], Confirmed) and told[5].version == 3
    assert seen.version == 3
    # Each update carries the message it was read from.
    first = told[0]
    assert isinstance(first, QueueUpdate) and first.reservation is not None
    assert first.reservation.status == pb.RESERVATION_STATUS_QUEUED


async def collect(updates: AsyncIterator[Update]) -> list[Update]:
    return [update async for update in updates]


async def test_the_watch_reconnects_after_the_advised_delay_without_repeats(
    harness: Harness,
) -> None:
    catching_up = rpc_error(
        grpc.StatusCode.UNAVAILABLE,
        "catching up",
        error_info("NOTIFIER_CATCHING_UP"),
        retry_info(0.5),
    )
    first = FakeStream([waiting(1, position=4)], catching_up)
    second = FakeStream([waiting(1, position=4), waiting(1, position=1), confirmed()])
    harness.notifier.streams = [first, second]
    updates = await collect(harness.client.watch(RID))
    assert updates[:2] == [QueueUpdate(4, None, RID, 1), QueueUpdate(1, None, RID, 1)]
    assert isinstance(updates[2], Confirmed) and len(updates) == 3
    assert harness.sleeps == pytest.approx([0.5 * 1.1])
    assert first.cancelled and second.cancelled


async def test_a_stream_that_ran_out_its_time_is_reopened_at_once(harness: Harness) -> None:
    timed_out = grpc.aio.AioRpcError(
        grpc.StatusCode.DEADLINE_EXCEEDED, grpc.aio.Metadata(), grpc.aio.Metadata(), "", None
    )
    # A long wait in line: the stream is renewed, without a pause or a failure.
    harness.notifier.streams = [
        *(FakeStream([waiting(2, position=3)], timed_out) for _ in range(5)),
        FakeStream([waiting(2, position=3), confirmed(version=3)]),
    ]
    updates = await collect(harness.client.watch(RID))
    assert updates[0] == QueueUpdate(3, None, RID, 2)
    assert isinstance(updates[1], Confirmed) and len(updates) == 2
    assert harness.sleeps == []


async def test_the_watch_raises_a_refusal_and_gives_up_on_streams_that_keep_ending(
    harness: Harness,
) -> None:
    gone = rpc_error(grpc.StatusCode.NOT_FOUND, "no", error_info("RESERVATION_NOT_FOUND"))
    harness.notifier.streams = [FakeStream([], gone)]
    with pytest.raises(NotFound):
        await collect(harness.client.watch(RID))

    # Streams that end before the reservation settles are reopened, but not forever.
    harness.notifier.streams = [FakeStream([]) for _ in range(4)]
    with pytest.raises(Unsettled):
        await collect(harness.client.watch(RID))
    assert len(harness.notifier.opened) == 5 and harness.notifier.streams == []


async def test_a_watch_policy_can_reopen_after_proxy_resets_for_as_long_as_it_takes(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness.notifier.streams = [FakeStream([waiting(1, 3)], proxy_reset(grpc.StatusCode.INTERNAL))]
    with pytest.raises(ApiError) as raised:
        await collect(harness.client.watch(RID))
    assert raised.value.code == grpc.StatusCode.INTERNAL

    patient = WatchPolicy(stream_timeout_s=30, max_failures=None, also_retry=PROXY_RESETS)
    monkeypatch.setattr(harness.client, "_watch", patient)
    harness.sleeps.clear()
    resets = [FakeStream([], proxy_reset(code)) for code in sorted(PROXY_RESETS, key=str)]
    harness.notifier.streams = [
        FakeStream([waiting(1, 3)], proxy_reset(grpc.StatusCode.UNKNOWN)),
        *resets,
        *(FakeStream([]) for _ in range(20)),  # far more than the default 8
        FakeStream([waiting(1, 3), confirmed()]),
    ]
    updates = await collect(harness.client.watch(RID))
    assert updates[0] == QueueUpdate(3, None, RID, 1) and isinstance(updates[1], Confirmed)
    assert len(updates) == 2 and len(harness.sleeps) == 24


async def test_reserve_and_wait_returns_the_fast_sold_out_without_watching(
    harness: Harness,
) -> None:
    harness.gateway.script = [
        gw.ReserveResponse(
            reservation_id=RID,
            status=pb.RESERVATION_STATUS_REJECTED,
            reject_reason=pb.REJECT_REASON_SOLD_OUT,
        )
    ]
    outcome = await harness.client.reserve_and_wait(EVENT, 2)
    assert isinstance(outcome, SoldOut)
    assert (outcome.reservation_id, outcome.version, outcome.settled) == (RID, 0, True)
    assert harness.notifier.opened == []


async def test_reserve_and_wait_stops_at_a_hold_and_tells_the_line_on_the_way(
    harness: Harness,
) -> None:
    held = message(pb.RESERVATION_STATUS_HELD, 3, position=0)
    held.reservation.hold_expire_time.FromDatetime(datetime(2030, 1, 1, tzinfo=UTC))
    held.reservation.amount.CopyFrom(pb.Money(currency_code="EUR", amount_minor=4_900))
    stream = FakeStream([waiting(1, 5), waiting(2, 2, wait_s=1.5), held, confirmed(4)])
    harness.notifier.streams = [stream]
    harness.gateway.script = [queued(position=6)]
    seen: list[Update] = []
    outcome = await harness.client.reserve_and_wait(EVENT, 2, on_update=seen.append)
    assert isinstance(outcome, Held) and outcome.amount == Money("EUR", 4_900)
    assert seen == [
        QueueUpdate(6, None, RID, 0),  # Reserve's figure
        QueueUpdate(5, None, RID, 1),
        QueueUpdate(2, timedelta(seconds=1.5), RID, 2),
    ]
    assert stream.cancelled  # the stream is not left open behind the caller


async def test_reserve_and_wait_waits_past_a_confirmation_still_capturing(
    harness: Harness,
) -> None:
    capturing = message(
        pb.RESERVATION_STATUS_CONFIRMED, 4, payment=pb.PAYMENT_STATUS_CAPTURING, position=0
    )
    captured = message(
        pb.RESERVATION_STATUS_CONFIRMED,
        5,
        settled=True,
        payment=pb.PAYMENT_STATUS_CAPTURED,
        position=0,
    )
    harness.notifier.streams = [FakeStream([capturing, captured])]
    harness.gateway.script = [queued()]
    seen: list[Update] = []
    outcome = await harness.client.reserve_and_wait(EVENT, 2, on_update=seen.append)
    assert isinstance(outcome, Confirmed) and outcome.settled
    assert outcome.payment_status == PaymentStatus.CAPTURED
    assert [type(u) for u in seen] == [QueueUpdate, Confirmed]
