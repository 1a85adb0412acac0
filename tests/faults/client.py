"""A client that behaves as a careful user would under faults: the SDK's
``TicketingClient`` over the tests' shared channels, retrying Reserve with the
same idempotency key until it gets QUEUED (never giving up on a failure a
retry may mend, UNAVAILABLE above all, until its deadline), and reopening its
watch until the reservation is settled. ``RushLog`` keeps every Reserve
call's answer, as the SDK reports each attempt."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import asyncpg
import grpc

from ticketing.v1 import reservation_pb2 as pb
from ticketing_client import (
    PROXY_RESETS,
    Accepted,
    Attempt,
    Backoff,
    RetryPolicy,
    TicketingClient,
    WatchPolicy,
)
from ticketing_client import Outcome as Decision
from ticketing_common.codecs import decode_request
from ticketing_common.domain import Status
from ticketing_tools.ledger import Ledger, read_topic, reconcile
from ticketing_tools.stack import LocalStack

from ..helpers import authorized, queue_drained, token

# Without advice a retry waits 0.1 to 0.3 s, and never longer: a user in a
# rush keeps trying. With a RetryInfo it waits the advised delay, up to half
# of it more.
STEADY = Backoff(initial_s=0.2, max_s=0.2, multiplier=1, jitter=0.5)


def careful_retry(give_up_s: float) -> RetryPolicy:
    """Reserve as a careful user retries it: as often as ``give_up_s``
    allows, each call given 5 s, proxy resets included (every attempt
    carries the same key: a retry is the same request)."""
    return RetryPolicy(
        max_attempts=None,
        attempt_timeout_s=5,
        deadline_s=give_up_s,
        backoff=STEADY,
        also_retry=PROXY_RESETS,
    )


# Each stream lives 60 s; one that fails or ends unsettled is reopened for as
# long as the caller waits.
CAREFUL_WATCH = WatchPolicy(
    stream_timeout_s=60, max_failures=None, backoff=STEADY, also_retry=PROXY_RESETS
)


@dataclass(frozen=True)
class Answer:
    """One Reserve call as the client saw it."""

    started: float  # event-loop time of the call
    at: float  # event-loop time of the answer
    code: grpc.StatusCode
    elapsed_s: float
    retry_after_ms: int | None = None


@dataclass
class Outcome:
    reservation_id: str
    final: pb.Reservation
    reserve_attempts: int
    failed_attempt_codes: list[grpc.StatusCode] = field(default_factory=list)


class RushLog:
    """What a rush's users have been answered so far, so that a test can time
    a fault against the rush and check every answer against the fault."""

    def __init__(self) -> None:
        self.answers: list[Answer] = []
        # Reservation ids in the order their first QUEUED answer arrived.
        self.queued: list[str] = []
        self._queued_set: set[str] = set()
        self._changed = asyncio.Event()

    def record(self, answer: Answer, reservation_id: str | None = None) -> None:
        self.answers.append(answer)
        if reservation_id is not None and reservation_id not in self._queued_set:
            self._queued_set.add(reservation_id)
            self.queued.append(reservation_id)
        self._changed.set()

    async def wait_queued(self, count: int, timeout_s: float = 60) -> None:
        async with asyncio.timeout(timeout_s):
            while len(self.queued) < count:
                self._changed.clear()
                await self._changed.wait()


def _ms(delay: timedelta | None) -> int | None:
    return None if delay is None else round(delay.total_seconds() * 1000)


async def reserve_until_queued(
    channel: grpc.aio.Channel,
    event_id: str,
    user: str,
    key: str,
    *,
    give_up_s: float = 120,
    log: RushLog | None = None,
) -> tuple[str, int, list[grpc.StatusCode]]:
    """Reserve as ``user``, retried with the same key until QUEUED; a retry
    waits what the server's RetryInfo advises (jittered), else 0.1 to 0.3 s.
    Returns the reservation id, the calls made and the failed calls' codes."""
    loop = asyncio.get_running_loop()
    codes: list[grpc.StatusCode] = []
    answered: Answer | None = None

    def seen(attempt: Attempt) -> None:
        nonlocal answered
        at = loop.time()
        answer = Answer(
            at - attempt.elapsed_s,
            at,
            attempt.code,
            attempt.elapsed_s,
            _ms(attempt.retry_after),
        )
        if attempt.error is None:
            answered = answer  # logged below, with the reservation it queued
            return
        codes.append(attempt.code)
        if log is not None:
            log.record(answer)

    client = TicketingClient.over(
        channel, token(user), retry=careful_retry(give_up_s), on_attempt=seen
    )
    reply = await client.reserve(event_id, 1, idempotency_key=key)
    # The fault stack has no sold-out fast path: every request is queued.
    assert isinstance(reply, Accepted), reply
    if log is not None and answered is not None:
        log.record(answered, reply.reservation_id)
    return reply.reservation_id, len(codes) + 1, codes


async def watch_until_terminal(
    channel: grpc.aio.Channel,
    reservation_id: str,
    *,
    give_up_s: float = 120,
    on_message: Callable[[pb.Reservation], None] | None = None,
) -> pb.Reservation:
    """Watches, the stream reopened after a failure, until the reservation
    is settled; ``on_message`` gets each state the streams tell, once (a
    place in line again when it moved). The channel's own token is used."""
    client = TicketingClient.over(channel, watch=CAREFUL_WATCH)
    async with (
        asyncio.timeout(give_up_s),
        contextlib.aclosing(client.watch(reservation_id)) as updates,
    ):
        async for update in updates:
            if on_message is not None and update.reservation is not None:
                on_message(update.reservation)
            if isinstance(update, Decision) and update.settled and update.reservation is not None:
                return update.reservation
    raise AssertionError(f"the watch of {reservation_id} ended unsettled")


async def user(
    channel: grpc.aio.Channel,
    event_id: str,
    name: str,
    *,
    retries: bool = False,
    log: RushLog | None = None,
    arrive_after_s: float = 0.0,
    not_before: asyncio.Event | None = None,
) -> Outcome:
    """One buyer: Reserve until QUEUED, then watch to the outcome. A user
    who ``retries`` sends the same Reserve once more after the answer (as a
    client does that lost it) and must get the same reservation id. With
    ``not_before``, they also wait for it to be set before arriving."""
    await asyncio.sleep(arrive_after_s)
    if not_before is not None:
        await not_before.wait()
    key = uuid.uuid4().hex
    rid, attempts, codes = await reserve_until_queued(channel, event_id, name, key, log=log)
    if retries:
        again, more, more_codes = await reserve_until_queued(channel, event_id, name, key, log=log)
        assert again == rid
        attempts, codes = attempts + more, codes + more_codes
    return Outcome(rid, await watch_until_terminal(channel, rid), attempts, codes)


async def rush(
    stack: LocalStack,
    event_id: str,
    users: int,
    *,
    channels: int = 0,
    retry_every: int = 0,
    log: RushLog | None = None,
    prefix: str = "user-",
    spread_s: float = 0.0,
    latecomers: asyncio.Event | None = None,
) -> list[Outcome]:
    """``users`` buyers over ``channels`` channels (0: one a hundred buyers,
    at least 4), all at once or arriving evenly over ``spread_s`` (so
    that the rush lasts at least that long); every ``retry_every``-th one
    retries its Reserve with the same key (0: nobody does). With
    ``latecomers``, the last quarter of them also wait until it is set, so
    that whatever a test does before setting it happens mid-rush however
    slow the machine is."""
    # nginx takes 128 concurrent streams per connection, and every waiting
    # buyer holds one (its watch): at most 100 buyers a channel, as that
    # many clients would have connections of their own.
    channels = channels or max(4, -(-users // 100))
    opened = [authorized(stack.endpoint) for _ in range(channels)]
    try:
        return await asyncio.gather(
            *(
                user(
                    opened[n % channels],
                    event_id,
                    f"{prefix}{n}",
                    retries=bool(retry_every) and n % retry_every == 0,
                    log=log,
                    arrive_after_s=spread_s * n / users,
                    not_before=latecomers if n >= users * 3 // 4 else None,
                )
                for n in range(users)
            )
        )
    finally:
        for ch in opened:
            await ch.close(None)


def finals_of(outcomes: list[Outcome]) -> dict[str, pb.Reservation]:
    finals = {o.reservation_id: o.final for o in outcomes}
    assert len(finals) == len(outcomes)  # one reservation per user
    return finals


async def assert_exact_outcome(
    stack: LocalStack,
    pool: asyncpg.Pool,
    event_id: str,
    finals: dict[str, pb.Reservation],
    seats: int,
) -> None:
    """Exactly the seats sold, every user one terminal outcome, one row per
    reservation, the ledger balanced and the seat invariant true."""
    users = len(finals)
    counts = Counter((f.status, f.reject_reason) for f in finals.values())
    assert counts == {
        (pb.RESERVATION_STATUS_CONFIRMED, pb.REJECT_REASON_UNSPECIFIED): seats,
        (pb.RESERVATION_STATUS_REJECTED, pb.REJECT_REASON_SOLD_OUT): users - seats,
    }
    await queue_drained(stack, timeout_s=60)
    row = await pool.fetchrow(
        "SELECT capacity, available, confirmed, held FROM events WHERE event_id = $1",
        uuid.UUID(event_id),
    )
    assert row is not None
    assert tuple(row) == (seats, 0, seats, 0)
    stored = {
        str(r["reservation_id"]): Status(r["status"]).to_proto()
        for r in await pool.fetch(
            "SELECT reservation_id, status FROM reservations WHERE event_id = $1",
            uuid.UUID(event_id),
        )
    }
    # One row per user, and each user was told on the stream what was stored.
    assert stored == {rid: final.status for rid, final in finals.items()}
    ledger = await assert_balanced(stack, pool, event_id)
    assert ledger.unique_reservations == users


async def assert_balanced(stack: LocalStack, pool: asyncpg.Pool, event_id: str) -> Ledger:
    """Once the queue is drained: the ledger balances and the seats add up."""
    await queue_drained(stack, timeout_s=60)
    ledger = await reconcile(stack.kafka, pool, event_id=event_id)
    assert ledger.balanced, ledger.missing
    assert ledger.seats_ok
    return ledger


async def assert_all_in_queue(stack: LocalStack, reservation_ids: Sequence[str]) -> None:
    """Every one of these acknowledged requests is in the requests topic."""
    topic = stack.kafka.requests_topic
    stored = {
        decode_request(r.value, partition=r.partition, offset=r.offset).reservation_id
        for r in await read_topic(stack.kafka, topic)
    }
    lost = set(reservation_ids) - stored
    assert not lost, f"{len(lost)} acknowledged requests are not in {topic}"


SEATS_RUSH = 100
USERS_RUSH = 2_000
# Every tenth user retries its Reserve with the same key.
RETRY_EVERY = 10
