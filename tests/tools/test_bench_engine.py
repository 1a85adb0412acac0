"""ticketing-bench's engine against a gRPC server on 127.0.0.1 whose answers
the test holds back: what ``--rps`` (ghz's rate limit on closed-loop workers)
and ``--arrival-rate`` (open loop) let through."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from ticketing_tools.bench import channels
from ticketing_tools.bench.engine import Engine, ProcessPlan, ProcessResult
from ticketing_tools.bench.methods import CallName, MethodSpec, builtin_file_set
from ticketing_tools.bench.options import Options

SERVICE = "ticketing.v1.GatewayService"
CALL = f"{SERVICE}.Reserve"
# Slack between the engine's and the server's readings of the same clock.
EARLY_S = 0.002


class HeldServer:
    """``Reserve`` that answers only once ``gate`` is open; it counts the calls
    in flight, the most ever at once, and when each one arrived."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.in_flight = 0
        self.most_in_flight = 0
        self.arrived: list[float] = []  # time.perf_counter()
        self._changed = asyncio.Condition()

    async def reserve(self, request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        self.arrived.append(time.perf_counter())
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        async with self._changed:
            self._changed.notify_all()
        try:
            await self.gate.wait()
        finally:
            self.in_flight -= 1
        return b""  # an empty ReserveResponse

    async def wait_for(self, condition: Callable[[], bool], timeout_s: float = 10) -> None:
        async with asyncio.timeout(timeout_s), self._changed:
            await self._changed.wait_for(condition)


@pytest.fixture
async def held() -> AsyncIterator[tuple[HeldServer, str]]:
    fake = HeldServer()
    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(fake.reserve)  # bytes in, bytes out
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE, {"Reserve": handler}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield fake, f"127.0.0.1:{port}"
    finally:
        fake.gate.set()
        await server.stop(grace=None)


def options(target: str, **changes: Any) -> Options:
    return Options(**{"host": target, "call": CALL, "insecure": True, **changes})


@dataclass(frozen=True)
class Ran:
    result: ProcessResult
    started: float  # time.perf_counter() at the start of the run

    def assert_none_ahead_of_schedule(self, arrived: list[float], rate: float) -> None:
        """Call ``k`` reached the server no sooner than it was due: ``(k + 1) / rate``."""
        for k, at in enumerate(arrived):
            assert at - self.started >= (k + 1) / rate - EARLY_S, (k, at - self.started)


async def run_engine(
    opts: Options, during: Callable[[Engine], Awaitable[None]] | None = None
) -> Ran:
    """Runs one process's load; ``during(engine)`` is awaited alongside."""
    file_set = builtin_file_set(SERVICE)
    assert file_set is not None
    spec = MethodSpec(name=CallName.parse(CALL), file_set=file_set, source="builtin")
    plan = ProcessPlan(options=opts, method=spec)
    connected = await channels.connect(opts, plan.connection_ids)
    try:
        engine = Engine(plan, spec.load(), connected)
        async with asyncio.timeout(30), asyncio.TaskGroup() as tasks:
            running = tasks.create_task(engine.run())
            if during is not None:
                await during(engine)
            result = await running
        return Ran(result, engine._started_s)
    finally:
        await channels.close(connected)


async def test_rps_never_has_more_calls_in_flight_than_workers(
    held: tuple[HeldServer, str],
) -> None:
    fake, target = held
    rate, workers, total = 1000, 3, 12

    async def hold_then_answer(engine: Engine) -> None:
        await fake.wait_for(lambda: fake.in_flight == workers)
        # All 12 calls are due within 12 ms; in four times that, a rate that
        # did not wait for answers would have sent them all.
        await asyncio.sleep(4 * total / rate)
        assert len(fake.arrived) == workers
        fake.gate.set()

    ran = await run_engine(
        options(target, rps=rate, concurrency=workers, total=total), hold_then_answer
    )
    assert ran.result.snapshot.statuses == {"OK": total}
    assert ran.result.end_reason == "normal"
    assert fake.most_in_flight == workers


async def test_rps_is_the_total_rate_shared_by_the_workers(
    held: tuple[HeldServer, str],
) -> None:
    fake, target = held
    fake.gate.set()  # answers at once: only the rate holds the workers back
    rate, workers, total = 200, 8, 20
    ran = await run_engine(options(target, rps=rate, concurrency=workers, total=total))
    assert ran.result.snapshot.statuses == {"OK": total}
    # 20 calls at 200/s in total take 100 ms; at 200/s per worker, 12.5 ms.
    assert ran.result.elapsed_ns >= (total / rate - EARLY_S) * 1e9
    ran.assert_none_ahead_of_schedule(fake.arrived, rate)


async def test_rps_run_ends_with_its_last_call(held: tuple[HeldServer, str]) -> None:
    fake, target = held
    fake.gate.set()
    rate, total = 4, 3  # due at 0.25, 0.5 and 0.75 s; a fourth would be due at 1 s
    ran = await run_engine(options(target, rps=rate, concurrency=5, total=total))
    assert ran.result.snapshot.statuses == {"OK": total}
    assert ran.result.end_reason == "normal"
    # Like ghz's pacer, the next worker in line sees -n reached before it
    # waits, so the run does not idle until a due time no call will use.
    assert ran.result.elapsed_ns < 0.95e9


async def test_rps_stop_does_not_wait_for_the_next_due_call(
    held: tuple[HeldServer, str],
) -> None:
    fake, target = held
    fake.gate.set()
    rate = 2  # calls due at 0.5 s, 1 s, 1.5 s, ...

    async def stop_after_the_first(engine: Engine) -> None:
        await fake.wait_for(lambda: len(fake.arrived) == 1)
        engine.stop("cancel")

    ran = await run_engine(
        options(target, rps=rate, concurrency=5, total=100, duration_stop="wait"),
        stop_after_the_first,
    )
    assert ran.result.end_reason == "cancel"
    assert ran.result.snapshot.statuses == {"OK": 1}  # the call in flight, let finish
    # Workers waiting for their turn at the pacer stop with the run, not at 1 s.
    assert ran.result.elapsed_ns < 0.95e9


async def test_arrival_rate_starts_calls_on_the_clock_while_answers_are_held(
    held: tuple[HeldServer, str],
) -> None:
    fake, target = held
    rate, total = 200, 10

    async def hold_then_answer(engine: Engine) -> None:
        # One worker, no answer yet, and still every call goes out.
        await fake.wait_for(lambda: fake.in_flight == total)
        fake.gate.set()

    opts = options(target, arrival_rate=rate, concurrency=1, total=total)
    assert opts.open_loop
    ran = await run_engine(opts, hold_then_answer)
    assert ran.result.snapshot.statuses == {"OK": total}
    assert fake.most_in_flight == total
    ran.assert_none_ahead_of_schedule(fake.arrived, rate)


async def test_async_with_rps_is_the_same_open_loop(held: tuple[HeldServer, str]) -> None:
    fake, target = held
    total = 6

    async def hold_then_answer(engine: Engine) -> None:
        await fake.wait_for(lambda: fake.in_flight == total)
        fake.gate.set()

    ran = await run_engine(
        options(target, async_=True, rps=500, concurrency=2, total=total), hold_then_answer
    )
    assert ran.result.snapshot.statuses == {"OK": total}
    assert fake.most_in_flight == total


async def test_the_open_loop_is_bounded_by_max_in_flight(held: tuple[HeldServer, str]) -> None:
    fake, target = held
    bound, total = 3, 9

    async def answer_once_bounded(engine: Engine) -> None:
        await fake.wait_for(lambda: fake.in_flight == bound)
        fake.gate.set()

    ran = await run_engine(
        options(target, arrival_rate=1000, max_in_flight=bound, concurrency=1, total=total),
        answer_once_bounded,
    )
    # Every call counted, none cancelled: the run ends after the last one.
    assert ran.result.snapshot.statuses == {"OK": total}
    assert ran.result.end_reason == "normal"
    assert fake.most_in_flight == bound
