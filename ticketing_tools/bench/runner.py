"""A whole run: resolve the method, start the processes, add up the results.

With ``--cpus 1`` (the default) the load runs in this process on uvloop. With
``--cpus N`` it is split over N worker processes (``spawn``, so none inherits
gRPC state from this one): each opens its own connections, connects, reports
ready, and all start together when every one is connected. The parent then
only waits; their tallies (HDR histograms encoded) are merged at the end.
The run's ``total`` is measured by the parent from the common start to the
last result.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection, wait
from multiprocessing.synchronize import Event
from types import FrameType
from typing import Any

import uvloop

from . import channels as channel_setup
from .durations import NANOS_PER_SECOND
from .engine import Engine, ProcessPlan, ProcessResult
from .methods import CallName, MethodError, MethodSpec, protoset_spec, resolve
from .options import Options
from .payloads import PayloadError, check
from .report import RunSummary
from .tally import Tally

# Worker processes import gRPC and protobuf before they connect.
_SPAWN_ALLOWANCE_S = 30.0
_STOP_POLL_S = 0.05
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class RunError(Exception):
    """The run could not start (cannot connect, unknown method, ...)."""


@dataclass(frozen=True)
class Outcome:
    tally: Tally
    summary: RunSummary


def _end_reason(reasons: list[str]) -> str:
    for reason in ("cancel", "timeout"):
        if reason in reasons:
            return reason
    return "normal"


async def _method_spec(options: Options) -> MethodSpec:
    name = CallName.parse(options.call)
    if options.protoset:
        spec = protoset_spec(name, options.protoset)
        spec.load()
        return spec
    channel = channel_setup.open_channel(options)
    try:
        return await resolve(channel, name, options.connect_timeout_ns / NANOS_PER_SECOND)
    finally:
        await channel.close(grace=None)


def prepare(options: Options) -> MethodSpec:
    """Finds the method and checks the call data against it.

    Raises ``MethodError`` for an unknown method and ``PayloadError`` for
    data that does not fit the request message."""
    spec = uvloop.run(_method_spec(options))
    method = spec.load()
    check(options.data, options.metadata, method.input_class, method.names)
    return spec


# ---- one process -------------------------------------------------------------


async def _run_here(plan: ProcessPlan) -> ProcessResult:
    connected = await channel_setup.connect(plan.options, plan.connection_ids)
    loop = asyncio.get_running_loop()
    try:
        engine = Engine(plan, plan.method.load(), connected)
        for signum in _STOP_SIGNALS:
            loop.add_signal_handler(signum, engine.stop, "cancel")
        return await engine.run()
    finally:
        for signum in _STOP_SIGNALS:
            loop.remove_signal_handler(signum)
        await channel_setup.close(connected)


def _single(options: Options, spec: MethodSpec) -> tuple[ProcessResult, int]:
    result = uvloop.run(_run_here(ProcessPlan(options=options, method=spec)))
    return result, result.elapsed_ns


# ---- several processes ---------------------------------------------------------


async def _stop_when_set(stop: Event, engine: Engine) -> None:
    # A multiprocessing Event cannot be awaited, and a thread blocked on it
    # would hold up the loop's shutdown; polling twenty times a second is cheap.
    while not stop.is_set():  # noqa: ASYNC110
        await asyncio.sleep(_STOP_POLL_S)
    engine.stop("cancel")


async def _child_run(plan: ProcessPlan, pipe: Connection, go: Event, stop: Event) -> ProcessResult:
    connected = await channel_setup.connect(plan.options, plan.connection_ids)
    try:
        engine = Engine(plan, plan.method.load(), connected)
        pipe.send(("ready", None))
        await asyncio.to_thread(go.wait)
        async with asyncio.TaskGroup() as tasks:
            watcher = tasks.create_task(_stop_when_set(stop, engine))
            result = await engine.run()
            watcher.cancel()
        return result
    finally:
        await channel_setup.close(connected)


def child_main(plan: ProcessPlan, pipe: Connection, go: Event, stop: Event) -> None:
    """Entry point of a worker process (must be importable for ``spawn``)."""
    for signum in _STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)  # the parent decides; it sets ``stop``
    try:
        result = uvloop.run(_child_run(plan, pipe, go, stop))
    except Exception as exc:  # noqa: BLE001  (the task boundary: the parent reports it)
        pipe.send(("error", str(exc) or type(exc).__name__))
    else:
        pipe.send(("result", result))
    finally:
        pipe.close()


def _receive(pipes: list[Connection], timeout_s: float | None) -> dict[int, tuple[str, Any]]:
    """One message from every pipe; raises RunError on an error or silence."""
    received: dict[int, tuple[str, Any]] = {}
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while len(received) < len(pipes):
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        ready = wait([pipe for i, pipe in enumerate(pipes) if i not in received], left)
        if not ready:
            raise RunError("worker processes did not start in time")
        for pipe in ready:
            assert isinstance(pipe, Connection)
            index = pipes.index(pipe)
            try:
                kind, payload = pipe.recv()
            except EOFError:
                raise RunError(f"worker process {index} died") from None
            if kind == "error":
                raise RunError(str(payload))
            received[index] = (kind, payload)
    return received


def _several(options: Options, spec: MethodSpec) -> tuple[list[ProcessResult], int, bool]:
    context = multiprocessing.get_context("spawn")
    go, stop = context.Event(), context.Event()
    pipes: list[Connection] = []
    processes = []
    for index in range(options.cpus):
        reader, writer = context.Pipe(duplex=False)
        plan = ProcessPlan(options=options, method=spec, index=index, processes=options.cpus)
        process = context.Process(
            target=child_main, args=(plan, writer, go, stop), name=f"bench-{index}", daemon=True
        )
        process.start()
        writer.close()
        pipes.append(reader)
        processes.append(process)
    cancelled = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal cancelled
        cancelled = True
        stop.set()

    previous: dict[int, Callable[[int, FrameType | None], Any] | int | None] = {
        signum: signal.signal(signum, on_signal) for signum in _STOP_SIGNALS
    }
    try:
        connect_s = options.connect_timeout_ns / NANOS_PER_SECOND
        _receive(pipes, connect_s + _SPAWN_ALLOWANCE_S)
        started = time.perf_counter_ns()
        go.set()
        results = _receive(pipes, None)
        total_ns = time.perf_counter_ns() - started
    finally:
        stop.set()
        go.set()
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return [payload for _, payload in results.values()], total_ns, cancelled


# ---- the run -----------------------------------------------------------------


def run(options: Options, spec: MethodSpec) -> Outcome:
    """Runs the load and returns what it measured.

    Raises ``RunError`` when it cannot start."""
    try:
        if options.cpus == 1:
            result, total_ns = _single(options, spec)
            results, cancelled = [result], False
        else:
            results, total_ns, cancelled = _several(options, spec)
    except channel_setup.ConnectError as exc:
        raise RunError(str(exc)) from exc
    reasons = [result.end_reason for result in results] + (["cancel"] if cancelled else [])
    tally = Tally.merge([result.snapshot for result in results])
    summary = RunSummary(
        end_reason=_end_reason(reasons),
        total_ns=total_ns,
        date=datetime.now(tz=UTC),
        server_streaming=spec.load().server_streaming,
    )
    return Outcome(tally=tally, summary=summary)


__all__ = ["MethodError", "Outcome", "PayloadError", "RunError", "prepare", "run"]
