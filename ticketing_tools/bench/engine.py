"""The load of one process: workers, the arrival clock, the calls.

Two ways to drive calls, chosen by the options, as in ghz:

* **Closed loop** (ghz's default, with or without ``--rps`` or a load
  schedule): ``-c`` workers each make one call after another; a worker sends
  its next call only when its previous one is answered, so at most ``-c``
  calls are ever in flight. With a rate (``--rps``, ``--load-schedule
  step|line``) the workers also take turns at one pacer, as ghz's workers
  take ticks from its single pacer goroutine: a call may start no earlier
  than the schedule's next due time. The rate is the run's total, shared by
  the workers whatever their number. When the workers cannot keep up (slow
  answers) the pacer falls behind and lets the next calls go at once, like
  ghz's; the rate is then a ceiling the run does not reach, and latency
  hides the backlog (coordinated omission), as it does in ghz.
* **Open loop** (``--async``, or ``--arrival-rate N``, which is ``--async
  --rps N``): a scheduler starts each call when the load schedule says it is
  due, whether or not earlier calls have been answered, so a slow server
  does not slow the arrivals down and its latency is not hidden. Workers
  then are identities: each call is given to the next active worker in turn,
  which picks its ``WorkerID`` and its connection. The only brake is
  ``--max-in-flight`` outstanding calls per process (default 10,000; ghz has
  none); a scheduler held back by it catches up at once, like ghz's pacer
  when it runs behind.

In both modes workers are spread round-robin over the connections, and the
concurrency schedule adds or stops workers over time (a stopped worker
finishes its current call). Request numbers are global across processes:
process ``i`` of ``P`` makes calls ``i, i + P, i + 2P, ...`` at the due times
of the schedule's arrivals ``i, i + P, ...``, so the rate is the run's.

The run ends when every call is answered (``normal``), at ``-z``/``-x``
(``timeout``) or on SIGINT/SIGTERM (``cancel``). ``--duration-stop`` says
what happens to calls still in flight then, as in ghz: ``close`` cancels and
counts them (status ``Canceled``), ``ignore`` cancels and drops them,
``wait`` lets them finish.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from .durations import NANOS_PER_SECOND
from .methods import EOF, MethodSpec, ResolvedMethod
from .options import Options
from .payloads import Metadata, MetadataFactory, PayloadError, PayloadFactory
from .tally import Tally, TallySnapshot, rpc_error, status_name
from .templates import CallContext, TemplateError, new_context

_CLOSING = "grpc: the client connection is closing"


def _share(total: int, index: int, parts: int) -> int:
    """Process ``index``'s part of ``total`` split as evenly as possible."""
    return total // parts + (1 if index < total % parts else 0)


@dataclass(frozen=True)
class ProcessPlan:
    """What one process of a run does."""

    options: Options
    method: MethodSpec
    index: int = 0
    processes: int = 1

    @property
    def total(self) -> int | None:
        bounded = self.options.bounded_total
        return None if bounded is None else _share(bounded, self.index, self.processes)

    @property
    def skip_first(self) -> int:
        return _share(self.options.skip_first, self.index, self.processes)

    @property
    def connection_ids(self) -> list[int]:
        """Global connection numbers; every process opens at least one."""
        count = max(1, _share(self.options.connections, self.index, self.processes))
        return [local * self.processes + self.index for local in range(count)]

    def local_workers(self, global_workers: int) -> int:
        """Global workers ``i, i + P, ...`` belong to process ``i``; at least one."""
        mine = (global_workers - self.index + self.processes - 1) // self.processes
        return max(mine, 1)


@dataclass(frozen=True)
class ProcessResult:
    snapshot: TallySnapshot
    end_reason: str
    elapsed_ns: int


class _Worker:
    __slots__ = ("id", "stopped", "stub")

    def __init__(self, worker_id: str, stub: Any) -> None:
        self.id = worker_id
        self.stub = stub
        self.stopped = False


class Engine:
    def __init__(
        self, plan: ProcessPlan, method: ResolvedMethod, channels: Sequence[grpc.aio.Channel]
    ) -> None:
        options = plan.options
        self._plan = plan
        self._options = options
        self._names = method.names
        self._streaming = method.server_streaming
        path = method.name.path
        # No serializers: requests are bytes already and responses stay bytes.
        self._stubs: list[Any] = [
            channel.unary_stream(path, request_serializer=None, response_deserializer=None)
            if self._streaming
            else channel.unary_unary(path, request_serializer=None, response_deserializer=None)
            for channel in channels
        ]
        self._connection_ids = plan.connection_ids
        self._payloads = PayloadFactory.create(options.data, method.input_class)
        self._metadata = MetadataFactory.create(options.metadata) if options.metadata else None
        self._templated = not self._payloads.is_static or not (
            self._metadata is None or self._metadata.is_static
        )
        self._timeout_s = options.timeout_ns / NANOS_PER_SECOND if options.timeout_ns else None
        self._keep_details = options.keep_details
        self.tally = Tally(keep_details=options.keep_details, skip_first=plan.skip_first)
        self.end_reason = "normal"

        self._total = plan.total
        self._issued = 0
        self._exhausted = False
        load = options.load()
        self._paced = not load.unlimited
        # This process's share of the schedule: arrivals index, index + P, ...
        self._due = itertools.islice(load.arrival_times(), plan.index, None, plan.processes)
        # One closed-loop worker at a time waits for the next due time.
        self._pacer_turn = asyncio.Lock()
        self._started_s = 0.0  # time.perf_counter() at the start of the run
        self._in_flight = 0
        self._calls: set[Any] = set()
        self._finished = asyncio.Event()
        self._stopping = False
        self._workers: list[_Worker] = []
        self._workers_made = 0
        self._tasks: asyncio.TaskGroup | None = None

    # ---- lifecycle -----------------------------------------------------------

    def stop(self, reason: str) -> None:
        """Ends the run early (``timeout`` or ``cancel``)."""
        if not self._finished.is_set():
            self.end_reason = reason
            self._finished.set()

    async def run(self) -> ProcessResult:
        started = time.perf_counter_ns()
        self._started_s = started / NANOS_PER_SECOND
        async with asyncio.TaskGroup() as tasks:
            self._tasks = tasks
            changes = self._options.workers().changes()
            _, initial = next(changes)
            self._resize(self._plan.local_workers(initial))
            controls = [tasks.create_task(self._follow_worker_schedule(changes))]
            if self._options.open_loop:
                controls.append(tasks.create_task(self._schedule_arrivals()))
            if self._options.run_ns:
                controls.append(tasks.create_task(self._deadline()))
            self._check_done()
            await self._finished.wait()
            self._stopping = True
            for control in controls:
                control.cancel()
            if self._options.duration_stop != "wait":
                for call in list(self._calls):
                    call.cancel()
        return ProcessResult(
            snapshot=self.tally.snapshot(),
            end_reason=self.end_reason,
            elapsed_ns=time.perf_counter_ns() - started,
        )

    async def _deadline(self) -> None:
        await asyncio.sleep(self._options.run_ns / NANOS_PER_SECOND)
        self.stop("timeout")

    def _check_done(self) -> None:
        if self._exhausted and self._in_flight == 0:
            self._finished.set()

    def _out_of_calls(self) -> bool:
        """True, and remembered, once this process has no call left to make."""
        if self._stopping or (self._total is not None and self._issued >= self._total):
            self._exhausted = True
        return self._exhausted

    def _next_number(self) -> int | None:
        """The next request number of this process, or None when done."""
        if self._out_of_calls():
            return None
        number = self._issued * self._plan.processes + self._plan.index
        self._issued += 1
        return number

    def _next_due(self) -> float | None:
        """Seconds into the run when this process's next call is due; None
        (and out of calls) when the schedule's rate fell to zero for good."""
        due = next(self._due, None)
        if due is None:
            self._exhausted = True
        return due

    async def _until(self, due: float) -> bool:
        """Waits until ``due`` seconds into the run; False if the run ends first."""
        delay = self._started_s + due - time.perf_counter()
        if delay <= 0:
            return not self._finished.is_set()
        try:
            async with asyncio.timeout(delay):
                await self._finished.wait()
        except TimeoutError:
            return True
        return False

    # ---- workers -------------------------------------------------------------

    async def _follow_worker_schedule(self, changes: Iterator[tuple[float, int]]) -> None:
        loop = asyncio.get_running_loop()
        began = loop.time()
        for at, workers in changes:
            delay = began + at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self._resize(self._plan.local_workers(workers))

    def _resize(self, count: int) -> None:
        while len(self._workers) < count:
            local = self._workers_made
            self._workers_made += 1
            connection = local % len(self._stubs)
            global_worker = local * self._plan.processes + self._plan.index
            worker_id = f"g{global_worker}c{self._connection_ids[connection]}"
            if self._options.name:
                worker_id = f"{self._options.name}:{worker_id}"
            worker = _Worker(worker_id, self._stubs[connection])
            self._workers.append(worker)
            if not self._options.open_loop:
                assert self._tasks is not None
                self._tasks.create_task(self._work(worker))
        while len(self._workers) > count:
            self._workers.pop().stopped = True

    async def _work(self, worker: _Worker) -> None:
        """Closed loop: one call after another until the work runs out."""
        while not worker.stopped:
            number = await self._paced_number(worker) if self._paced else self._next_number()
            if number is None:
                self._check_done()
                return
            await self._call(number, worker)

    async def _paced_number(self, worker: _Worker) -> int | None:
        """Closed loop with a rate: the worker's next request number, once the
        schedule lets the next call start; None when the worker should stop.

        Free workers queue for their turn, as ghz's take ticks from its one
        pacer: only the first in line waits on the clock, and it looks for
        work left (``-n``, a stop) before it waits, so the run ends with its
        last call instead of idling until a due time no call will use."""
        async with self._pacer_turn:
            if worker.stopped or self._out_of_calls():
                return None
            due = self._next_due()
            if due is None or not await self._until(due):
                return None
            return self._next_number()

    async def _schedule_arrivals(self) -> None:
        """Open loop: each call starts when due, answered or not."""
        slots = asyncio.Semaphore(self._options.max_in_flight)
        while True:
            due = self._next_due()
            if due is None or not await self._until(due):
                break
            await slots.acquire()
            number = self._next_number()
            if number is None:
                slots.release()
                break
            worker = self._workers[self._issued % len(self._workers)]
            assert self._tasks is not None
            # Counted before its task runs, so the run cannot end in between.
            self._in_flight += 1
            self._tasks.create_task(self._released(self._counted_call(number, worker), slots))
        self._exhausted = True
        self._check_done()

    @staticmethod
    async def _released(call: Awaitable[None], slots: asyncio.Semaphore) -> None:
        try:
            await call
        finally:
            slots.release()

    # ---- calls ---------------------------------------------------------------

    async def _call(self, number: int, worker: _Worker) -> None:
        self._in_flight += 1
        await self._counted_call(number, worker)

    async def _counted_call(self, number: int, worker: _Worker) -> None:
        """A call already counted in ``_in_flight``."""
        try:
            if self._stopping and self._options.duration_stop != "wait":
                return  # due before the stop but not sent yet: it never happened
            context = new_context(worker.id, number, self._names) if self._templated else None
            try:
                payload = self._payloads.build(number, context)
                metadata = self._metadata.build(context) if self._metadata else None
            except (PayloadError, TemplateError) as exc:
                self.tally.record(0, "Unknown", f"request data: {exc}", end_wall_ns=time.time_ns())
                return
            if self._streaming:
                await self._measure(worker.stub, payload, metadata, self._drain)
            else:
                await self._measure(worker.stub, payload, metadata, self._answer)
        finally:
            self._in_flight -= 1
            self._check_done()

    @staticmethod
    async def _answer(call: Any, started: int) -> int | None:
        await call
        return None

    @staticmethod
    async def _drain(call: Any, started: int) -> int | None:
        """Reads a stream to its end; returns the latency to the first message."""
        first: int | None = None
        while await call.read() is not EOF:
            if first is None:
                first = time.perf_counter_ns() - started
        return first

    async def _measure(
        self,
        stub: Any,
        payload: bytes,
        metadata: Metadata | None,
        receive: Callable[[Any, int], Awaitable[int | None]],
    ) -> None:
        started = time.perf_counter_ns()
        call = stub(payload, timeout=self._timeout_s, metadata=metadata)
        self._calls.add(call)
        status, error, first = "OK", "", None
        try:
            first = await receive(call, started)
        except grpc.aio.AioRpcError as exc:
            status = status_name(exc.code())
            error = rpc_error(status, exc.details() or "")
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # this task itself is being cancelled, not just the call
            if self._options.duration_stop == "ignore":
                return
            status, error = "Canceled", rpc_error("Canceled", _CLOSING)
        finally:
            self._calls.discard(call)
        latency = time.perf_counter_ns() - started
        self.tally.record(
            latency,
            status,
            error,
            end_wall_ns=time.time_ns() if self._keep_details else 0,
            first_message_ns=first,
        )


__all__ = ["CallContext", "Engine", "ProcessPlan", "ProcessResult"]
