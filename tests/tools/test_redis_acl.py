"""deploy/redis/users.acl, loaded by a real redis-server: each service's user
can do what its code does to Redis (the same locks, records and limits,
called through the same classes) and nothing else; the default user is off
and the notifier has no user at all."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis.asyncio as redis
from prometheus_client import CollectorRegistry, Counter
from redis.exceptions import AuthenticationError, NoPermissionError, ResponseError

from ticketing_common.decisions import Request
from ticketing_common.storage.accepted import KEY_PREFIX, AcceptedRequests
from ticketing_common.storage.batched import ScriptBatcher
from ticketing_common.storage.locks import EventLocks
from ticketing_common.storage.rate_limits import RateLimits
from ticketing_tools.stack.processes import free_port, port_open, wait_until

ACL = Path(__file__).resolve().parents[2] / "deploy" / "redis" / "users.acl"
USERS = ("admin", "healthcheck", "gateway", "reservation", "consumer", "payment")


def test_the_file_names_one_user_per_service_and_turns_the_default_off() -> None:
    lines = [line.split() for line in ACL.read_text().splitlines() if line.strip()]
    assert all(words[0] == "user" for words in lines)
    names = [words[1] for words in lines]
    assert names == ["default", *USERS]
    assert "off" in lines[0] and "on" not in lines[0]
    # No password in the file: each deployment adds its own.
    assert not [words for words in lines if any(w.startswith((">", "#")) for w in words)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed; run `make setup`")
    folder = tmp_path_factory.mktemp("redis-acl")
    # What a deployment does: the rules, each user given its password.
    acl = folder / "users.acl"
    acl.write_text(
        "".join(
            line.replace(" on ", f" on >{line.split()[1]}-password ", 1) + "\n"
            for line in ACL.read_text().splitlines()
            if line.strip()
        )
    )
    port = free_port()
    conf = folder / "redis.conf"
    conf.write_text(f'port {port}\nbind 127.0.0.1\naclfile {acl}\nsave ""\nappendonly no\n')
    process = subprocess.Popen(
        [binary, str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_until(
            lambda: port_open(port),
            timeout_s=20,
            what="redis",
            alive=lambda: process.poll() is None,
        )
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextlib.asynccontextmanager
async def client_of(port: int, user: str) -> AsyncIterator[redis.Redis]:
    client = redis.Redis.from_url(f"redis://{user}:{user}-password@127.0.0.1:{port}/0")
    try:
        yield client
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def batcher_of(client: redis.Redis) -> AsyncIterator[ScriptBatcher]:
    batcher = ScriptBatcher(client)
    task = asyncio.create_task(batcher.run())
    await asyncio.sleep(0)  # running before the first call
    try:
        yield batcher
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _limits(batcher: ScriptBatcher, scope: str) -> RateLimits:
    return RateLimits(
        batcher,
        scope=scope,
        limits={"subject": 100},
        window_s=1.0,
        timeout_s=5.0,
        refused=Counter("refused", "", ["kind"], registry=CollectorRegistry()),
    )


async def _takes_and_fences_a_lock(client: redis.Redis, owner: str) -> None:
    locks = EventLocks(client, owner=owner, ttl_ms=5_000)
    event_id = str(uuid.uuid4())
    lease = await locks.acquire(event_id, wait_s=1)
    assert lease.token >= 1
    assert await locks.raise_floor(event_id, lease, lease.token + 10)
    assert await locks.release(lease)


def _request() -> Request:
    return Request(
        reservation_id=str(uuid.uuid4()),
        event_id=str(uuid.uuid4()),
        user_id="buyer",
        quantity=1,
        idempotency_key="k",
        accepted_at=datetime.now(UTC),
    )


async def test_the_gateway_locks_records_and_limits(server: int) -> None:
    async with client_of(server, "gateway") as client, batcher_of(client) as batcher:
        await _takes_and_fences_a_lock(client, "gateway-1")
        accepted = AcceptedRequests(client, batcher=batcher, ttl_s=60)
        request = _request()
        claimed = await accepted.claim(request)
        assert claimed.reservation_id == request.reservation_id
        assert await accepted.known(request.reservation_id)
        await accepted.mark_queued(request.reservation_id)
        assert await accepted.get(request.reservation_id) is not None
        await _limits(batcher, "reserve").admit(subject="buyer")
        # Not the payment service's limits, not keys of its own making.
        with pytest.raises(NoPermissionError):
            await client.incr("ticketing:rate:pay:subject:buyer:1")
        with pytest.raises(NoPermissionError):
            await client.set("elsewhere", "1")
        with pytest.raises(NoPermissionError):
            await client.keys("*")
        with pytest.raises(NoPermissionError):
            await client.flushall()


@pytest.mark.parametrize("user", ["reservation", "consumer"])
async def test_readers_of_the_records_lock_but_cannot_write_them(server: int, user: str) -> None:
    async with client_of(server, "gateway") as gateway, batcher_of(gateway) as batcher:
        request = _request()
        await AcceptedRequests(gateway, batcher=batcher, ttl_s=60).claim(request)
    async with client_of(server, user) as client:
        await _takes_and_fences_a_lock(client, f"{user}-1")
        found = await AcceptedRequests(client).get(request.reservation_id)
        assert found is not None and found.user_id == "buyer"
        key = KEY_PREFIX + request.reservation_id
        with pytest.raises(NoPermissionError):
            await client.hset(key, "state", "queued")
        with pytest.raises(NoPermissionError):
            await client.delete(key)
        with pytest.raises(NoPermissionError):
            await client.incr("ticketing:rate:reserve:subject:buyer:1")


async def test_the_payment_service_locks_and_limits_pay(server: int) -> None:
    async with client_of(server, "payment") as client, batcher_of(client) as batcher:
        await _takes_and_fences_a_lock(client, "payment-1")
        await _limits(batcher, "pay").admit(subject="buyer")
        with pytest.raises(NoPermissionError):
            await client.hmget(KEY_PREFIX + str(uuid.uuid4()), ["event_id"])
        with pytest.raises(NoPermissionError):
            await client.incr("ticketing:rate:reserve:subject:buyer:1")


async def test_a_script_cannot_reach_past_the_users_keys(server: int) -> None:
    """A lock user's script writing an accepted-request key (what a stolen
    password could try) is refused inside the script too."""
    async with client_of(server, "reservation") as client:
        script = "return redis.call('SET', KEYS[1], 'x', 'PX', 1000)"
        assert await client.eval(script, 1, "ticketing:lock:event:{x}")
        with pytest.raises(ResponseError):
            await client.eval(script, 1, KEY_PREFIX + "x")
        # Nor by a key the script makes up instead of declaring it.
        hidden = f"return redis.call('SET', '{KEY_PREFIX}x', 'x')"
        with pytest.raises(ResponseError):
            await client.eval(hidden, 0)


@pytest.mark.parametrize("user", ["default", "notifier"])
async def test_no_one_else_gets_in(server: int, user: str) -> None:
    client = redis.Redis.from_url(f"redis://127.0.0.1:{server}/0")
    try:
        with pytest.raises((AuthenticationError, ResponseError)):
            await client.ping()
    finally:
        await client.aclose()
    async with client_of(server, user) as named:
        with pytest.raises((AuthenticationError, ResponseError)):
            await named.ping()
