"""Who may do what, checked from outside through nginx: every RPC without a
token, with an expired, forged or foreign one, as another user and without the
admin role is refused with the right status, and changes nothing."""

from __future__ import annotations

import asyncio
import os
import stat
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import grpc
import jwt
import pytest
import redis.asyncio as redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaConnectionError, TopicAuthorizationFailedError
from google.rpc import error_details_pb2
from redis.exceptions import AuthenticationError

from ticketing.v1 import gateway_service_pb2 as gw
from ticketing.v1 import notifier_service_pb2 as ns
from ticketing.v1 import payment_service_pb2 as ps
from ticketing.v1 import reservation_service_pb2 as rs
from ticketing_common.status import detail, reason
from ticketing_tools.ledger import end_offsets
from ticketing_tools.stack import LocalStack
from ticketing_tools.tokens import SigningKey, bearer

from ..helpers import (
    CONFIRMED,
    QUEUED,
    TEST_KEY,
    Gateway,
    Notifier,
    Reservations,
    as_user,
    consumers_paused,
    create_event,
    gateway_stub,
    get_event,
    notifier_stub,
    payments_stub,
    reservations_stub,
    reserve,
    token,
    watch,
)

# The notifier's default cap (TICKETING_NOTIFIER_MAX_WATCHES_PER_SUBJECT).
WATCH_CAP = 20

Call = Callable[[tuple[tuple[str, str], ...]], Awaitable[Any]]


def calls(channel: grpc.aio.Channel, event_id: str) -> dict[str, Call]:
    """Every RPC of the API, each a valid request, given only its metadata
    (``channel`` adds none of its own)."""
    gateway = gateway_stub(channel)
    notifier = notifier_stub(channel)
    reservations = reservations_stub(channel)
    payments = payments_stub(channel)

    async def watch_first(metadata: tuple[tuple[str, str], ...]) -> Any:
        stream = notifier.WatchReservation(
            ns.WatchReservationRequest(reservation_id=str(uuid.uuid4())),
            metadata=metadata,
            timeout=10,
        )
        async for message in stream:
            return message
        return None

    return {
        "Reserve": lambda md: gateway.Reserve(
            gw.ReserveRequest(event_id=event_id, quantity=1, idempotency_key="k"),
            metadata=md,
            timeout=10,
        ),
        "ReserveSync": lambda md: gateway.ReserveSync(
            gw.ReserveSyncRequest(event_id=event_id, quantity=1, idempotency_key="k"),
            metadata=md,
            timeout=10,
        ),
        "CreateEvent": lambda md: reservations.CreateEvent(
            rs.CreateEventRequest(name="x", capacity=1, per_user_limit=1), metadata=md, timeout=10
        ),
        "GetEvent": lambda md: reservations.GetEvent(
            rs.GetEventRequest(event_id=event_id), metadata=md, timeout=10
        ),
        "GetReservation": lambda md: reservations.GetReservation(
            rs.GetReservationRequest(reservation_id=str(uuid.uuid4())), metadata=md, timeout=10
        ),
        "WatchReservation": watch_first,
        "CancelReservation": lambda md: reservations.CancelReservation(
            rs.CancelReservationRequest(reservation_id=str(uuid.uuid4())), metadata=md, timeout=10
        ),
        "Pay": lambda md: payments.Pay(
            ps.PayRequest(
                reservation_id=str(uuid.uuid4()), payment_method="test-ok", idempotency_key="k"
            ),
            metadata=md,
            timeout=10,
        ),
        "GetPayment": lambda md: payments.GetPayment(
            ps.GetPaymentRequest(payment_id=str(uuid.uuid4())), metadata=md, timeout=10
        ),
    }


def bad_credentials() -> dict[str, tuple[tuple[tuple[str, str], ...], str]]:
    """Metadata that must not pass, with the reason each gets."""
    now = time.time()
    stranger = SigningKey.generate()
    return {
        "no token": ((), "TOKEN_MISSING"),
        "not a bearer": ((("authorization", "Basic dXNlcjpwdw=="),), "TOKEN_MISSING"),
        "garbage": (bearer("not.a.jwt"), "TOKEN_INVALID"),
        "expired": (bearer(TEST_KEY.mint("eve", ttl_s=60, now=now - 3600)), "TOKEN_EXPIRED"),
        "not yet valid": (bearer(TEST_KEY.mint("eve", now=now + 3600)), "TOKEN_INVALID"),
        "wrong signature": (
            # Our kid, someone else's key: the signature does not verify.
            bearer(SigningKey(TEST_KEY.kid, stranger.private_pem).mint("eve")),
            "TOKEN_INVALID",
        ),
        "unknown key": (bearer(stranger.mint("eve")), "TOKEN_INVALID"),
        "wrong audience": (bearer(TEST_KEY.mint("eve", audience="other")), "TOKEN_INVALID"),
        "wrong issuer": (bearer(TEST_KEY.mint("eve", issuer="other")), "TOKEN_INVALID"),
    }


async def test_every_rpc_refuses_a_missing_or_bad_token_and_changes_nothing(
    stack: LocalStack, gateway: Gateway, notifier: Notifier, reservations: Reservations
) -> None:
    event = await create_event(reservations, capacity=5, per_user_limit=5)
    before = await end_offsets(stack.kafka, stack.kafka.requests_topic)
    async with grpc.aio.insecure_channel(stack.endpoint) as bare:
        for name, call in calls(bare, event.event_id).items():
            for case, (metadata, expected) in bad_credentials().items():
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await call(metadata)
                assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED, (name, case)
                assert reason(refused.value) == expected, (name, case)
    assert await end_offsets(stack.kafka, stack.kafka.requests_topic) == before
    assert (await get_event(reservations, event.event_id)).available == 5


def _signed(**claims: Any) -> tuple[tuple[str, str]]:
    """A token of the stack's key with the usual claims, ``claims`` replacing
    them (``...`` leaves one out)."""
    now = int(time.time())
    payload: dict[str, Any] = {
        "sub": "claimant",
        "iss": "ticketing",
        "aud": "ticketing",
        "iat": now,
        "exp": now + 3600,
        "roles": ["customer"],
    } | claims
    payload = {name: value for name, value in payload.items() if value is not ...}
    return bearer(
        jwt.encode(payload, TEST_KEY.private_pem, algorithm="ES256", headers={"kid": TEST_KEY.kid})
    )


# Tokens of the right key whose claims are not what they must be: the claim
# ErrorInfo names, and what the message says.
MISSHAPEN = {
    "roles a number": (_signed(roles=5), "roles", "must be a list of roles"),
    "roles a string": (_signed(roles="admin"), "roles", "got 'admin'"),
    "roles of objects": (_signed(roles=[{"role": "admin"}]), "roles", "a list holding an object"),
    "an unknown role": (_signed(roles=["root"]), "roles", "a list naming 'root'"),
    "tier a number": (_signed(tier=7), "tier", "tier claim must be a string"),
    "tier too long": (_signed(tier="x" * 65), "tier", "at most 64 printable characters"),
    "living two days": (_signed(exp=int(time.time()) + 48 * 3600), "exp", "lifetime (exp - iat)"),
}


async def test_a_token_with_misshapen_claims_is_unauthenticated_with_its_reason_on_every_rpc(
    stack: LocalStack, reservations: Reservations
) -> None:
    event = await create_event(reservations, capacity=5, per_user_limit=5)
    before = await end_offsets(stack.kafka, stack.kafka.requests_topic)
    async with grpc.aio.insecure_channel(stack.endpoint) as bare:
        for name, call in calls(bare, event.event_id).items():
            for case, (metadata, claim, said) in MISSHAPEN.items():
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await call(metadata)
                assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED, (name, case)
                assert said in (refused.value.details() or ""), (name, case)
                info = detail(refused.value, error_details_pb2.ErrorInfo)
                assert info is not None, (name, case)
                assert (info.reason, dict(info.metadata)) == ("TOKEN_INVALID", {"claim": claim})
        # Missing claims are named by the verifier too.
        for missing in ("exp", "iat"):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await calls(bare, event.event_id)["GetEvent"](_signed(**{missing: ...}))
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert f'missing the "{missing}" claim' in (refused.value.details() or "")
    assert await end_offsets(stack.kafka, stack.kafka.requests_topic) == before
    assert (await get_event(reservations, event.event_id)).available == 5


async def test_a_tier_the_event_does_not_favour_is_permission_denied_at_reserve(
    stack: LocalStack, gateway: Gateway, notifier: Notifier, reservations: Reservations
) -> None:
    presale = (
        await reservations.CreateEvent(
            rs.CreateEventRequest(
                name="presale", capacity=5, per_user_limit=2, priority_tiers=["vip"]
            ),
            timeout=10,
        )
    ).event
    plain = await create_event(reservations, capacity=5, per_user_limit=2)
    before = await end_offsets(stack.kafka, stack.kafka.requests_topic)
    async with grpc.aio.insecure_channel(stack.endpoint) as bare:
        for event_id, tier in [(presale.event_id, "gold"), (plain.event_id, "vip")]:
            for method in ("Reserve", "ReserveSync"):
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await calls(bare, event_id)[method](_signed(tier=tier))
                assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED, (method, tier)
                assert refused.value.details() == (
                    f"the caller's tier {tier!r} is not one of the priority tiers of event "
                    f"{event_id}"
                )
                info = detail(refused.value, error_details_pb2.ErrorInfo)
                assert info is not None
                assert (info.reason, dict(info.metadata)) == (
                    "TIER_NOT_OFFERED",
                    {"event_id": event_id, "tier": tier},
                )
    assert await end_offsets(stack.kafka, stack.kafka.requests_topic) == before
    # The event's own tier, and the standard one (none, or empty), are taken.
    for event_id, metadata in [
        (presale.event_id, _signed(sub="vip-1", tier="vip")),
        (presale.event_id, _signed(sub="std-1", tier="")),
        (plain.event_id, _signed(sub="std-2")),
    ]:
        reply = await gateway.Reserve(
            gw.ReserveRequest(event_id=event_id, quantity=1, idempotency_key="k"),
            metadata=metadata,
            timeout=10,
        )
        assert reply.status == QUEUED
        assert (await watch(notifier, reply.reservation_id))[-1].status == CONFIRMED


async def test_a_customer_may_not_administer(stack: LocalStack, reservations: Reservations) -> None:
    event = await create_event(reservations)
    async with grpc.aio.insecure_channel(stack.endpoint) as bare:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await calls(bare, event.event_id)["CreateEvent"](as_user("mallory"))
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert reason(refused.value) == "ROLE_REQUIRED"
    assert refused.value.details() == "this call needs the admin role"


async def test_another_users_reservation_does_not_exist_for_a_customer(
    gateway: Gateway, notifier: Notifier, reservations: Reservations
) -> None:
    event = await create_event(reservations)
    mine = await reserve(gateway, event.event_id, "olga")
    outcome = (await watch(notifier, mine.reservation_id))[-1]
    # Its owner sees it, and so does an administrator (the default caller here).
    owned = await reservations.GetReservation(
        rs.GetReservationRequest(reservation_id=mine.reservation_id),
        metadata=as_user("olga"),
        timeout=10,
    )
    assert owned.reservation == outcome
    # Anyone else: NOT_FOUND, worded as for an id nobody has.
    with pytest.raises(grpc.aio.AioRpcError) as hidden:
        await reservations.GetReservation(
            rs.GetReservationRequest(reservation_id=mine.reservation_id),
            metadata=as_user("peeping-tom"),
            timeout=10,
        )
    assert hidden.value.code() == grpc.StatusCode.NOT_FOUND
    assert hidden.value.details() == f"reservation {mine.reservation_id} not found"
    with pytest.raises(grpc.aio.AioRpcError) as hidden_stream:
        async for _ in notifier.WatchReservation(
            ns.WatchReservationRequest(reservation_id=mine.reservation_id),
            metadata=as_user("peeping-tom"),
            timeout=10,
        ):
            pytest.fail("a stranger was streamed someone else's reservation")
    assert hidden_stream.value.code() == grpc.StatusCode.NOT_FOUND
    assert reason(hidden_stream.value) == "RESERVATION_NOT_FOUND"


async def test_the_same_key_from_another_subject_is_another_reservation(
    stack: LocalStack, gateway: Gateway, notifier: Notifier, reservations: Reservations
) -> None:
    """A key guessed (or shared) by someone else cannot squat the owner's
    reservation: the caller is part of the id, and only the server can
    derive it."""
    event = await create_event(reservations, capacity=4, per_user_limit=2)
    owner = await reserve(gateway, event.event_id, "ursula", quantity=2, key="order-1")
    squatter = await reserve(gateway, event.event_id, "victor", quantity=1, key="order-1")
    assert owner.reservation_id != squatter.reservation_id
    assert owner.reservation_id == stack.reservation_id("ursula", "order-1", event.event_id)
    outcomes = {
        r.user_id: (r.status, r.quantity)
        for r in [(await watch(notifier, x.reservation_id))[-1] for x in (owner, squatter)]
    }
    # Each got their own seats: 2 + 1 within capacity 4 and the limit of 2.
    assert outcomes == {"ursula": (CONFIRMED, 2), "victor": (CONFIRMED, 1)}
    after = await get_event(reservations, event.event_id)
    assert (after.available, after.confirmed) == (1, 3)


async def test_the_caller_is_the_tokens_subject_whatever_the_body_says(
    gateway: Gateway, notifier: Notifier, reservations: Reservations
) -> None:
    """``user_id`` is no longer a field: sending one (an old client, or one
    trying to act as someone else) changes nothing about who asks."""
    event = await create_event(reservations)
    request = gw.ReserveRequest(event_id=event.event_id, quantity=1, idempotency_key="k")
    # Field 2 was user_id: an unknown field now, which the server ignores.
    smuggled = request.SerializeToString() + b"\x12\x07someone"
    reply = await gateway.Reserve(
        gw.ReserveRequest.FromString(smuggled), metadata=as_user("wanda"), timeout=10
    )
    assert (await watch(notifier, reply.reservation_id))[-1].user_id == "wanda"


def test_a_token_minted_for_the_stack_names_its_subject_and_roles() -> None:
    claims: dict[str, Any] = jwt.decode(
        token("xena", admin=True), options={"verify_signature": False}
    )
    assert (claims["sub"], claims["roles"], claims["iss"], claims["aud"]) == (
        "xena",
        ["admin"],
        "ticketing",
        "ticketing",
    )


async def test_an_oversized_message_is_refused_before_it_is_read(
    stack: LocalStack, gateway: Gateway, reservations: Reservations
) -> None:
    event = await create_event(reservations)
    before = await end_offsets(stack.kafka, stack.kafka.requests_topic)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await gateway.Reserve(
            gw.ReserveRequest(event_id=event.event_id, quantity=1, idempotency_key="k" * 100_000),
            metadata=as_user("huge"),
            timeout=10,
        )
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert await end_offsets(stack.kafka, stack.kafka.requests_topic) == before


async def test_a_customer_holds_a_bounded_number_of_watch_streams(
    stack: LocalStack, gateway: Gateway, notifier: Notifier, reservations: Reservations
) -> None:
    event = await create_event(reservations)
    with consumers_paused(stack):  # the reservation stays QUEUED: its streams stay open
        reply = await reserve(gateway, event.event_id, "yara")
        streams = [
            notifier.WatchReservation(
                ns.WatchReservationRequest(reservation_id=reply.reservation_id),
                metadata=as_user("yara"),
                timeout=30,
            )
            for _ in range(WATCH_CAP)
        ]
        try:
            for stream in streams:
                first = await stream.read()
                assert isinstance(first, ns.WatchReservationResponse)
                assert first.reservation.reservation_id == reply.reservation_id
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                async for _ in notifier.WatchReservation(
                    ns.WatchReservationRequest(reservation_id=reply.reservation_id),
                    metadata=as_user("yara"),
                    timeout=10,
                ):
                    pytest.fail("a stream past the cap was opened")
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert reason(refused.value) == "TOO_MANY_STREAMS"
        finally:
            for stream in streams:
                stream.cancel()
    # Closing them frees the slots (as soon as the notifier hears of the
    # cancellations): the owner watches to the outcome again.
    async with asyncio.timeout(30):
        while True:
            try:
                async for message in notifier.WatchReservation(
                    ns.WatchReservationRequest(reservation_id=reply.reservation_id),
                    metadata=as_user("yara"),
                    timeout=30,
                ):
                    last = message.reservation
                break
            except grpc.aio.AioRpcError as exc:
                if reason(exc) != "TOO_MANY_STREAMS":
                    raise
                await asyncio.sleep(0.05)
    assert (last.user_id, last.status) == ("yara", CONFIRMED)


async def test_the_local_redis_refuses_a_client_without_its_password(stack: LocalStack) -> None:
    address = redis.Redis.from_url(stack.redis_url).connection_pool.connection_kwargs
    anonymous = redis.Redis(host=address["host"], port=address["port"])
    try:
        with pytest.raises(AuthenticationError):
            await anonymous.ping()
    finally:
        await anonymous.aclose()
    trusted = redis.Redis.from_url(stack.redis_url)
    try:
        assert await trusted.ping()
    finally:
        await trusted.aclose()


async def _append(stack: LocalStack, topic: str, **credentials: Any) -> None:
    """Appends one forged request record to ``topic`` as the given client."""
    producer = AIOKafkaProducer(
        bootstrap_servers=stack.kafka.bootstrap, acks="all", request_timeout_ms=5_000, **credentials
    )
    try:
        await producer.start()
        await producer.send_and_wait(topic, b"forged", key=b"forged")
    finally:
        await producer.stop()


def _as_kafka_user(stack: LocalStack, service: str, password: str | None = None) -> dict[str, str]:
    if not stack.kafka_credentials:
        pytest.skip("the stack uses a Kafka cluster it was given: its users are not ours")
    user, real = stack.kafka_credentials[service]
    return {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": user,
        "sasl_plain_password": password or real,
    }


async def test_the_broker_refuses_a_client_without_credentials(stack: LocalStack) -> None:
    gateway = _as_kafka_user(stack, "gateway", "guessed")
    topics = (stack.kafka.requests_topic, stack.kafka.results_topic)
    before = [await end_offsets(stack.kafka, topic) for topic in topics]
    # The listener speaks SASL only: a plain client gets no answer it can read.
    with pytest.raises(KafkaConnectionError):
        await _append(stack, stack.kafka.requests_topic)
    # A gateway's name with a guessed password.
    with pytest.raises(KafkaConnectionError):
        await _append(stack, stack.kafka.requests_topic, **gateway)
    # The services go on writing results meanwhile (holds of earlier tests
    # running out, say): what must not be there is a forged record.
    for topic, since in zip(topics, before, strict=True):
        assert b"forged" not in await _keys_since(stack, topic, since), topic


async def test_only_gateways_append_requests_and_only_consumers_append_results(
    stack: LocalStack,
) -> None:
    topics = (
        stack.kafka.requests_topic,
        stack.kafka.results_topic,
        stack.kafka.dead_letter_topic,
    )
    before = [await end_offsets(stack.kafka, topic) for topic in topics]
    # What each service may write is proven by the suite itself working;
    # here, everything else is refused.
    refused = {
        "consumer_service": (stack.kafka.requests_topic,),
        "notifier_service": topics,
        "gateway": (stack.kafka.results_topic, stack.kafka.dead_letter_topic),
        # The payment service only reads its commands; it writes through the outbox.
        "payment_service": topics,
    }
    for service, names in refused.items():
        for topic in names:
            with pytest.raises(TopicAuthorizationFailedError):
                await _append(stack, topic, **_as_kafka_user(stack, service))
    # The services go on writing results meanwhile (holds of earlier tests
    # running out, say): what must not be there is a forged record.
    for topic, since in zip(topics, before, strict=True):
        assert b"forged" not in await _keys_since(stack, topic, since), topic


async def _keys_since(stack: LocalStack, topic: str, since: dict[int, int]) -> set[bytes | None]:
    """The keys of every record appended to ``topic`` after ``since``, read
    by the stack's own client; a forged one would be among them."""
    consumer = AIOKafkaConsumer(**stack.kafka.client_options(), group_id=None)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in since]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        keys: set[bytes | None] = set()
        for tp in partitions:
            consumer.seek(tp, since[tp.partition])
        async with asyncio.timeout(30):
            while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    keys.update(record.key for record in records)
        return keys
    finally:
        await consumer.stop()


def test_nothing_the_stack_writes_is_readable_by_other_users(stack: LocalStack) -> None:
    """Keys, passwords, data and logs: 0700 folders and 0600 files, whoever
    owns them (PostgreSQL's and nginx's folders belong to their users)."""
    roots = [stack.tmp, *stack.private_dirs]
    seen = 0
    for root in roots:
        for folder, dirs, files in os.walk(root):
            for path in [folder, *(os.path.join(folder, name) for name in dirs + files)]:
                info = os.lstat(path)
                if stat.S_ISSOCK(info.st_mode) or stat.S_ISLNK(info.st_mode):
                    continue
                assert stat.S_IMODE(info.st_mode) & 0o077 == 0, (
                    f"{path} is {stat.S_IMODE(info.st_mode):o}"
                )
                seen += 1
    # The walk saw the stack: keys, configurations, every server's data and logs.
    names = {name for root in roots for _, _, files in os.walk(root) for name in files}
    assert {"redis.conf", "jwks.json", "server.properties", "nginx.conf", "PG_VERSION"} <= names
    assert seen > 100


async def test_the_services_role_reads_and_writes_rows_but_cannot_change_the_schema(
    stack: LocalStack,
) -> None:
    services = await asyncpg.connect(stack.postgres_dsn)
    try:
        assert await services.fetchval("SELECT current_user") == "ticketing_app"
        assert await services.fetchval("SELECT count(*) >= 0 FROM reservations")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await services.execute("ALTER TABLE reservations ADD COLUMN mischief text")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await services.execute("DELETE FROM reservations")
    finally:
        await services.close()
    host_port = stack.postgres_dsn.split("@", 1)[1]
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(f"postgresql://postgres@{host_port}", timeout=10)


@pytest.mark.parametrize(
    "body",
    [
        b"\xff\xff\xff\xff",  # a field number no message has, with a bad varint
        b"\x0a\xff\x01abc",  # a length-prefixed field longer than the body
        b"\x0a\x05\xff\xfe\xfd\xfc\xfb",  # field 1, a string on every method: not UTF-8
    ],
)
async def test_a_malformed_frame_gets_invalid_argument_on_every_method(
    stack: LocalStack, body: bytes
) -> None:
    before = await end_offsets(stack.kafka, stack.kafka.requests_topic)
    methods = {
        "/ticketing.v1.GatewayService/Reserve": False,
        "/ticketing.v1.ReservationService/CreateEvent": False,
        "/ticketing.v1.ReservationService/GetEvent": False,
        "/ticketing.v1.ReservationService/GetReservation": False,
        "/ticketing.v1.ReservationService/CancelReservation": False,
        "/ticketing.v1.PaymentService/Pay": False,
        "/ticketing.v1.PaymentService/GetPayment": False,
        "/ticketing.v1.NotifierService/WatchReservation": True,
    }
    async with grpc.aio.insecure_channel(stack.endpoint) as bare:
        for method, streaming in methods.items():
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                if streaming:
                    async for _ in bare.unary_stream(method, _raw, _raw)(
                        body, metadata=as_user("fuzz"), timeout=10
                    ):
                        pass
                else:
                    await bare.unary_unary(method, _raw, _raw)(
                        body, metadata=as_user("fuzz"), timeout=10
                    )
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, method
            assert (refused.value.details() or "").startswith("request: is not a valid message")
    assert await end_offsets(stack.kafka, stack.kafka.requests_topic) == before


def _raw(data: bytes) -> bytes:
    return data
