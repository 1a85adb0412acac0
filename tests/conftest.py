"""Shared fixtures. Integration tests run against one real local stack per
session (PostgreSQL, Redis, Apache Kafka, the services, nginx), started
by the same launcher as ``make run``, on free ports."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from aiokafka import AIOKafkaProducer

from ticketing_common.config import ServerSettings, variable
from ticketing_tools import ghz
from ticketing_tools.stack import LocalStack, StackConfig

from .helpers import (
    TEST_KEY_FILE,
    TEST_SERVICE_ENV,
    Gateway,
    Notifier,
    Payments,
    Reservations,
    authorized,
    gateway_stub,
    notifier_stub,
    payments_stub,
    reservations_stub,
)
from .spans import SpanCollector

STACK_FIXTURES = frozenset({"stack", "stripe_stack", "fault_stack", "cluster_stack", "saga_stack"})


class GhzBuild:
    """The pinned ghz, built in a thread from the moment the tests that need
    it are collected: a cold ``go install`` takes minutes, which the tests
    before them hide."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._result: Path | ghz.BuildError | None = None
        self._thread = threading.Thread(target=self._build, name="ghz-build", daemon=True)
        self._thread.start()

    def _build(self) -> None:
        try:
            self._result = ghz.ensure(self._root)
        except ghz.BuildError as exc:
            self._result = exc

    def wait(self) -> Path:
        self._thread.join()
        if not isinstance(self._result, Path):
            raise ghz.BuildError(str(self._result))
        return self._result


GHZ_BUILD = pytest.StashKey[GhzBuild]()


def pytest_collection_finish(session: pytest.Session) -> None:
    if any("ghz_binary" in getattr(item, "fixturenames", ()) for item in session.items):
        session.stash[GHZ_BUILD] = GhzBuild(session.config.rootpath)


@pytest.fixture(scope="session")
def ghz_binary(request: pytest.FixtureRequest) -> Path:
    """The pinned ghz (``make ghz`` builds the same); a failed build fails the
    test that needs it."""
    build = request.session.stash.get(GHZ_BUILD, None) or GhzBuild(request.config.rootpath)
    try:
        return build.wait()
    except ghz.BuildError as exc:
        pytest.fail(str(exc))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Marks every test that starts or uses a local stack, so
    ``pytest -m "not stack"`` (``make test-unit``) runs the rest in seconds."""
    for item in items:
        if STACK_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.stack)


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """For settings tests: an environment without the caller's ``TICKETING_*``
    variables; ``setenv`` on the returned patch sets some for the test."""
    for name in [name for name in os.environ if name.startswith("TICKETING_")]:
        monkeypatch.delenv(name)
    return monkeypatch


@pytest.fixture(scope="session")
def spans() -> Iterator[SpanCollector]:
    """Where the test stack's services export their spans."""
    collector = SpanCollector()
    collector.start()
    try:
        yield collector
    finally:
        collector.stop()


@contextlib.contextmanager
def running_stack(spans: SpanCollector, **config: Any) -> Iterator[LocalStack]:
    """A local stack as the tests run it, on free ports, with ``config``'s
    ``StackConfig`` settings besides."""
    # TICKETING_STACK_KEEP_LOGS=/some/dir keeps the services' logs for a look.
    settings = StackConfig(
        listen_port=0, webhook_port=0, signing_key_file=str(TEST_KEY_FILE), **config
    )
    # Tracing on, but recording only the traces a test starts (a sampled
    # traceparent on its call): the others pay for unrecorded spans only.
    tracing = {
        variable(ServerSettings, "tracing_otlp_endpoint"): f"127.0.0.1:{spans.port}",
        variable(ServerSettings, "tracing_sample_ratio"): "0",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    # ReserveSync is off unless turned on: the tests compare it with Reserve.
    with LocalStack(settings, service_env={**TEST_SERVICE_ENV, **tracing}) as running:
        yield running


@pytest.fixture(scope="session")
def stack(spans: SpanCollector) -> Iterator[LocalStack]:
    with running_stack(spans) as running:
        yield running


@pytest.fixture(scope="session")
def stripe_stack(spans: SpanCollector) -> Iterator[LocalStack]:
    """A second stack whose payment services take payments with Stripe: its
    own stripe-mock (``stripe_mock``, ``stripe_api_base``, ``stripe_api_key``),
    unless TICKETING_STRIPE_API_BASE names a test-mode account, and nginx's
    webhook listener (``webhook_endpoint``) in front of the payment services'
    webhook servers (``webhook_backends``), whose events are signed with
    ``stripe_webhook_secret``."""
    with running_stack(spans, payment_provider="stripe", gateways=1, consumers=1) as running:
        yield running


@pytest.fixture(scope="session")
async def channel(stack: LocalStack) -> AsyncIterator[grpc.aio.Channel]:
    async with authorized(stack.endpoint) as ch:
        yield ch


@pytest.fixture(scope="session")
def gateway(channel: grpc.aio.Channel) -> Gateway:
    return gateway_stub(channel)


@pytest.fixture(scope="session")
def notifier(channel: grpc.aio.Channel) -> Notifier:
    return notifier_stub(channel)


@pytest.fixture(scope="session")
def payments(channel: grpc.aio.Channel) -> Payments:
    return payments_stub(channel)


@pytest.fixture(scope="session")
def reservations(
    channel: grpc.aio.Channel,
) -> Reservations:
    return reservations_stub(channel)


@pytest.fixture
async def producer(stack: LocalStack) -> AsyncIterator[AIOKafkaProducer]:
    """A producer on the stack's broker, for tests that append records as a
    gateway (or anyone else) would."""
    p = AIOKafkaProducer(**stack.kafka.client_options(), acks="all")
    await p.start()
    try:
        yield p
    finally:
        await p.stop()
