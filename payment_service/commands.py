"""The saga's commands from the payments topic: each names a payment to take
further. The payment's state is in PostgreSQL, so a command read twice, or
late, is harmless, and one that is consumed but not acted on (a crash) is
found again by the sweeper: offsets are committed as they are read."""

from __future__ import annotations

import asyncio

import structlog
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from google.protobuf.message import DecodeError

from ticketing.queue.v1 import queue_pb2

from .saga import Saga

log = structlog.get_logger(__name__)


class CommandRunner:
    def __init__(
        self, consumer: AIOKafkaConsumer, saga: Saga, *, concurrency: int, running: set[str]
    ) -> None:
        self._consumer = consumer
        self._saga = saga
        self._slots = asyncio.Semaphore(concurrency)
        # Payments being taken forward by this process (the sweeper skips them).
        self._running = running
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        while True:
            try:
                batch = await self._consumer.getmany(timeout_ms=1_000, max_records=500)
            except KafkaError as exc:
                log.error("payment_commands_read_failed", error=repr(exc))
                await asyncio.sleep(1.0)
                continue
            for records in batch.values():
                for record in records:
                    try:
                        command = queue_pb2.PaymentCommand.FromString(record.value or b"")
                    except DecodeError:
                        log.error("payment_command_unreadable", offset=record.offset)
                        continue
                    await self._start(command.payment_id)

    async def _start(self, payment_id: str) -> None:
        if not payment_id or payment_id in self._running:
            return
        await self._slots.acquire()
        self._running.add(payment_id)
        task = asyncio.create_task(self._advance(payment_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _advance(self, payment_id: str) -> None:
        try:
            await self._saga.try_advance(payment_id)
        finally:
            self._running.discard(payment_id)
            self._slots.release()

    async def drain(self) -> None:
        """Lets the payments in hand finish their current step (for shutdown)."""
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)
