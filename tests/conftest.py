"""Shared fixtures. Integration tests run against one real local stack per
session (PostgreSQL, Redis, the Kafka-API broker, the services, nginx), started
by the same launcher as ``make run``, on free ports."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest

from ticketing.v1 import (
    gateway_service_pb2_grpc,
    notifier_service_pb2_grpc,
    reservation_service_pb2_grpc,
)
from ticketing_common.stack import LocalStack, StackConfig


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    # TICKETING_STACK_KEEP_LOGS=/some/dir keeps the services' logs for a look.
    config = StackConfig.from_env()
    with LocalStack(dataclasses.replace(config, listen_port=0)) as running:
        yield running


@pytest.fixture(scope="session")
async def channel(stack: LocalStack) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(stack.endpoint) as ch:
        yield ch


@pytest.fixture(scope="session")
def gateway(channel: grpc.aio.Channel) -> gateway_service_pb2_grpc.GatewayServiceStub:
    return gateway_service_pb2_grpc.GatewayServiceStub(channel)


@pytest.fixture(scope="session")
def notifier(channel: grpc.aio.Channel) -> notifier_service_pb2_grpc.NotifierServiceStub:
    return notifier_service_pb2_grpc.NotifierServiceStub(channel)


@pytest.fixture(scope="session")
def reservations(
    channel: grpc.aio.Channel,
) -> reservation_service_pb2_grpc.ReservationServiceStub:
    return reservation_service_pb2_grpc.ReservationServiceStub(channel)
