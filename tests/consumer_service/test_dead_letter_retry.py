"""A record is never passed before its dead letter and its buyer's rejection
are stored: the consume loop and the batch processor, with a store and a
broker that fail on cue (pure logic: no broker, no database)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from aiokafka.errors import KafkaConnectionError, TopicAuthorizationFailedError
from aiokafka.structs import ConsumerRecord
from prometheus_client import REGISTRY

from consumer_service import worker
from consumer_service.loop import ConsumeLoop, DependencyBreaker
from consumer_service.worker import BatchProcessor
from ticketing_common import deadletters
from ticketing_common.codecs import encode_request
from ticketing_common.deadletters import DeadLetter, Kind
from ticketing_common.decisions import Request
from ticketing_common.domain import RejectReason, Reservation, Status
from ticketing_common.record_keys import RecordKeys

from .test_consume_loop import TP, FakeConsumer, Log

KEYS = RecordKeys.single("k1", b"a record key of thirty-two bytes!")
EVENT = str(uuid.uuid4())
MAX_ATTEMPTS = 3


def signed_record(
    offset: int, user: str, *, quantity: int = 0
) -> tuple[ConsumerRecord[bytes, bytes], str]:
    """A record a gateway signed, by default with quantity 0: undecodable,
    but it names its buyer's reservation, so the buyer is told
    REJECTED/INVALID."""
    rid = KEYS.reservation_id(user, "key", EVENT)
    request = Request(
        reservation_id=rid,
        event_id=EVENT,
        user_id=user,
        quantity=quantity,
        idempotency_key="key",
        accepted_at=datetime.now(UTC),
        partition=TP.partition,
        offset=offset,
    )
    value = encode_request(request, KEYS)
    return ConsumerRecord(
        topic=TP.topic,
        partition=TP.partition,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=EVENT.encode(),
        value=value,
        checksum=None,
        serialized_key_size=len(EVENT),
        serialized_value_size=len(value),
        headers=(),
    ), rid


@dataclass
class Faults:
    """Fails the next ``remaining`` calls of what it guards with ``error``,
    noting what had been committed at each."""

    error: BaseException | None = None
    remaining: int = 0
    hits: int = 0
    committed_at_hits: list[list[int]] = field(default_factory=list)
    # Instead of failing, never answer (a broker that keeps refusing for a
    # retriable reason, to a producer that never gives up).
    hang: bool = False

    async def maybe_fail(self, log: Log) -> None:
        if (self.error is not None or self.hang) and self.remaining > 0:
            self.remaining -= 1
            self.hits += 1
            self.committed_at_hits.append(list(log.committed))
            if self.hang:
                await asyncio.Event().wait()
            assert self.error is not None
            raise self.error


class FakeApplier:
    """``Applier.reject`` over a dict: an outcome once stored is kept."""

    def __init__(self, log: Log, faults: Faults) -> None:
        self.log = log
        self.faults = faults
        self.stored: dict[str, Reservation] = {}
        self.stores = 0

    async def reject(self, requests: Sequence[Request], reason: RejectReason) -> list[Reservation]:
        await self.faults.maybe_fail(self.log)
        for r in requests:
            if r.reservation_id not in self.stored:
                self.stores += 1
                self.stored[r.reservation_id] = Reservation(
                    reservation_id=r.reservation_id,
                    event_id=r.event_id,
                    user_id=r.user_id,
                    quantity=r.quantity,
                    status=Status.REJECTED,
                    reject_reason=reason,
                    accepted_at=r.accepted_at,
                    decided_at=datetime.now(UTC),
                )
        return [self.stored[r.reservation_id] for r in requests]


class FakeProducer:
    """The dead-letter topic (``send_and_wait``) and the results topic (``send``)."""

    def __init__(self, log: Log, faults: Faults) -> None:
        self.log = log
        self.faults = faults
        self.dead_letters: list[DeadLetter] = []
        self.results: list[bytes] = []

    async def send_and_wait(
        self, topic: str, value: bytes | None, *, key: bytes | None, headers: Any
    ) -> None:
        await self.faults.maybe_fail(self.log)
        self.dead_letters.append(
            DeadLetter.from_record(
                ConsumerRecord(
                    topic=topic,
                    partition=0,
                    offset=len(self.dead_letters),
                    timestamp=0,
                    timestamp_type=0,
                    key=key,
                    value=value,
                    checksum=None,
                    serialized_key_size=0,
                    serialized_value_size=0,
                    headers=tuple(headers),
                )
            )
        )

    async def send(
        self, topic: str, value: bytes, *, key: bytes, headers: Any = None
    ) -> asyncio.Future[None]:
        self.results.append(key)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


@dataclass
class Run:
    log: Log
    applier: FakeApplier
    producer: FakeProducer


async def run_loop(log: Log, *, store: Faults, broker: Faults, within_s: float = 30) -> Run:
    applier, producer = FakeApplier(log, store), FakeProducer(log, broker)
    processor = BatchProcessor(
        applier=applier,  # type: ignore[arg-type]
        locks=None,  # type: ignore[arg-type]
        producer=producer,
        results_topic="results",
        dead_letter_topic="dead-letters",
        lock_wait_s=1.0,
        concurrency=1,
        record_keys=KEYS,
    )

    async def probe() -> None:
        pass

    async def set_serving(serving: bool) -> None:
        log.serving.append(serving)

    loop = ConsumeLoop(
        None,  # replaced below
        processor,
        breaker=DependencyBreaker(threshold=3, reset_s=0.01, probe=probe),
        limiter=None,
        set_serving=set_serving,
        max_batch=10,
        poll_timeout_ms=1,
        retry_backoff_s=0.001,
        max_attempts=MAX_ATTEMPTS,
    )
    loop._consumer = FakeConsumer(log, loop)
    await asyncio.wait_for(loop.run(), within_s)
    return Run(log, applier, producer)


# What fails storing a rejection: outages (the ones once taken for the
# record's fault among them) and defects, none the record's fault.
STORE_FAULTS = [
    pytest.param(asyncpg.InvalidPasswordError("password authentication failed"), 5, id="28P01"),
    pytest.param(asyncpg.InvalidCatalogNameError('database "x" does not exist'), 5, id="3D000"),
    pytest.param(asyncpg.UndefinedColumnError('column "x" does not exist'), 5, id="42703"),
    pytest.param(asyncpg.InternalServerError("internal error"), 5, id="XX000"),
    pytest.param(ConnectionRefusedError("database down"), 5, id="connection"),
    # A bug in storing rejections: the record waits for the fix (here, the
    # second try), never goes out with its buyer untold.
    pytest.param(asyncpg.PostgresSyntaxError("syntax error"), 1, id="42601-defect"),
    pytest.param(RuntimeError("bug"), 1, id="defect"),
]


@pytest.mark.parametrize(("error", "times"), STORE_FAULTS)
async def test_a_rejection_that_cannot_be_stored_holds_the_offset_until_it_is(
    error: BaseException, times: int
) -> None:
    log = Log()
    (first, first_id), (second, second_id) = signed_record(0, "ada"), signed_record(1, "bob")
    log.records = [first, second]
    store = Faults(error, times)

    run = await run_loop(log, store=store, broker=Faults())

    # The fault hit the window: every try of the rejection failed while it
    # lasted, and nothing was committed meanwhile.
    assert store.hits == times
    assert store.committed_at_hits == [[]] * times
    # Then each buyer's rejection was stored once, and told once; each
    # record dead-lettered once as what it is, naming its buyer; the offset
    # committed past both only after (one record at a time when a defect
    # had the batch re-read record by record).
    assert run.applier.stores == 2
    assert {rid: (r.status, r.reject_reason) for rid, r in run.applier.stored.items()} == {
        first_id: (Status.REJECTED, RejectReason.INVALID),
        second_id: (Status.REJECTED, RejectReason.INVALID),
    }
    assert sorted(run.producer.results) == sorted([first_id.encode(), second_id.encode()])
    assert [(d.original_offset, d.kind, d.reservation_id) for d in run.producer.dead_letters] == [
        (0, Kind.UNDECODABLE, first_id),
        (1, Kind.UNDECODABLE, second_id),
    ]
    assert log.committed in ([2], [1, 2])


BROKER_FAULTS = [
    pytest.param(KafkaConnectionError("broker down"), 5, id="connection"),
    pytest.param(TopicAuthorizationFailedError(), 8, id="acl"),
]


@pytest.mark.parametrize(("error", "times"), BROKER_FAULTS)
async def test_a_dead_letter_the_broker_does_not_take_holds_the_offset_until_it_does(
    error: BaseException, times: int
) -> None:
    log = Log()
    record, rid = signed_record(0, "cy")
    log.records = [record]
    broker = Faults(error, times)

    run = await run_loop(log, store=Faults(), broker=broker)

    assert broker.hits == times
    assert broker.committed_at_hits == [[]] * times
    assert run.applier.stores == 1  # the outcome stored on the first try is kept
    assert [(d.original_offset, d.kind, d.reservation_id) for d in run.producer.dead_letters] == [
        (0, Kind.UNDECODABLE, rid)
    ]
    assert run.producer.results == [rid.encode()]
    assert log.committed == [1]


async def test_a_dead_letter_the_broker_never_answers_for_is_given_up_on_and_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each try is bounded: a send that never completes ends in a timeout,
    and the record is tried again instead of holding the loop for ever."""
    monkeypatch.setattr(deadletters, "SEND_TIMEOUT_S", 0.05)
    log = Log()
    record, rid = signed_record(0, "hal")
    log.records = [record]
    broker = Faults(remaining=2, hang=True)

    run = await run_loop(log, store=Faults(), broker=broker, within_s=10)

    assert broker.hits == 2
    assert broker.committed_at_hits == [[], []]
    assert [(d.original_offset, d.kind, d.reservation_id) for d in run.producer.dead_letters] == [
        (0, Kind.UNDECODABLE, rid)
    ]
    assert log.committed == [1]


async def test_a_record_given_up_on_is_passed_only_once_its_rejection_is_stored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A record whose processing keeps failing is dead-lettered after its
    attempts; when storing its buyer's REJECTED/INTERNAL fails too, it is
    retried, not passed untold."""
    log = Log()
    record, rid = signed_record(0, "dee", quantity=1)  # decoded; its decision fails
    log.records = [record]
    decisions = 0

    async def failing_decision(*args: object, **kwargs: object) -> list[Reservation]:
        nonlocal decisions
        decisions += 1
        raise RuntimeError("cannot decide")

    monkeypatch.setattr(worker, "decide_fenced", failing_decision)
    store = Faults(RuntimeError("cannot store either"), 2)

    run = await run_loop(log, store=store, broker=Faults())

    assert store.hits == 2
    assert store.committed_at_hits == [[], []]
    assert decisions >= MAX_ATTEMPTS + store.hits
    assert {r: (s.status, s.reject_reason) for r, s in run.applier.stored.items()} == {
        rid: (Status.REJECTED, RejectReason.INTERNAL)
    }
    assert [(d.original_offset, d.kind, d.reservation_id) for d in run.producer.dead_letters] == [
        (0, Kind.PERSISTENT, rid)
    ]
    assert run.producer.results == [rid.encode()]
    assert log.committed == [1]


async def test_a_rejection_the_records_own_data_cannot_be_stored_as_is_dead_lettered_untold() -> (
    None
):
    """The one failure that passes a record without its buyer's outcome:
    the record's own values cannot be stored. It is dead-lettered all the
    same (the ledger counts it), with nobody to tell."""
    log = Log()
    record, _ = signed_record(0, "eve")
    log.records = [record]
    store = Faults(asyncpg.StringDataRightTruncationError("value too long"), 10)

    run = await run_loop(log, store=store, broker=Faults())

    assert store.hits == 1
    assert run.applier.stored == {}
    assert [(d.original_offset, d.kind, d.reservation_id) for d in run.producer.dead_letters] == [
        (0, Kind.UNDECODABLE, None)
    ]
    assert log.committed == [1]


async def test_a_forged_record_is_counted_once_however_often_its_dead_letter_is_retried() -> None:
    """The forged-records metric (and its alert) counts records, not tries:
    a dead letter the broker refuses a while has its batch read again."""
    log = Log()
    other = RecordKeys.single("elsewhere", b"a key no consumer here holds, 32+")
    request = Request(
        reservation_id=other.reservation_id("eve", "key", EVENT),
        event_id=EVENT,
        user_id="eve",
        quantity=1,
        idempotency_key="key",
        accepted_at=datetime.now(UTC),
    )
    value = encode_request(request, other)
    log.records = [
        ConsumerRecord(
            topic=TP.topic,
            partition=TP.partition,
            offset=0,
            timestamp=0,
            timestamp_type=0,
            key=EVENT.encode(),
            value=value,
            checksum=None,
            serialized_key_size=len(EVENT),
            serialized_value_size=len(value),
            headers=(),
        )
    ]
    broker = Faults(KafkaConnectionError("broker down"), 4)
    before = forged_count("unknown_key")

    run = await run_loop(log, store=Faults(), broker=broker)

    assert broker.hits == 4
    assert [(d.original_offset, d.kind) for d in run.producer.dead_letters] == [(0, Kind.FORGED)]
    assert run.applier.stores == 0  # nobody's: no consumer key derives its id
    assert forged_count("unknown_key") - before == 1
    assert log.committed == [1]


def forged_count(reason: str) -> float:
    return REGISTRY.get_sample_value("ticketing_forged_records_total", {"reason": reason}) or 0.0
