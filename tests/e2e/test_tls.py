"""A stack started with TLS (``make run TLS=1``): clients reach nginx over
TLS, checked against the stack's own CA, and nginx reaches the services over
mutual TLS; a service accepts no one but nginx."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ticketing_tools.stack import LocalStack, StackConfig

from ..helpers import TEST_KEY_FILE, TEST_SERVICE_ENV
from .test_grpcurl import as_caller, grpcurl


@pytest.fixture(scope="module")
def tls_stack() -> Iterator[LocalStack]:
    config = StackConfig(
        listen_port=0, signing_key_file=str(TEST_KEY_FILE), tls=True, gateways=1, consumers=1
    )
    with LocalStack(config, service_env=TEST_SERVICE_ENV) as running:
        yield running


def trusting(stack: LocalStack) -> tuple[str, ...]:
    assert stack.tls is not None
    return ("-cacert", str(stack.tls.ca))


def test_create_reserve_and_watch_over_tls_with_grpcurl(tls_stack: LocalStack) -> None:
    created = grpcurl(
        tls_stack,
        "ticketing.v1.ReservationService/CreateEvent",
        data='{"name": "tls show", "capacity": 3, "per_user_limit": 2}',
        flags=as_caller("ops", admin=True),
        transport=trusting(tls_stack),
    )
    assert created.returncode == 0, created.stderr
    event = json.loads(created.stdout)["event"]

    zoe = as_caller("zoe")
    reserved = grpcurl(
        tls_stack,
        "ticketing.v1.GatewayService/Reserve",
        data=json.dumps({"event_id": event["event_id"], "quantity": 2, "idempotency_key": "tls-1"}),
        flags=zoe,
        transport=trusting(tls_stack),
    )
    assert reserved.returncode == 0, reserved.stderr
    reply = json.loads(reserved.stdout)
    assert reply["status"] == "RESERVATION_STATUS_QUEUED"

    watched = grpcurl(
        tls_stack,
        "ticketing.v1.NotifierService/WatchReservation",
        data=json.dumps({"reservation_id": reply["reservation_id"]}),
        flags=(*zoe, "-max-time", "30"),
        transport=trusting(tls_stack),
    )
    assert watched.returncode == 0, watched.stderr
    assert '"status": "RESERVATION_STATUS_CONFIRMED"' in watched.stdout

    listed = grpcurl(tls_stack, "list", transport=trusting(tls_stack))
    assert "ticketing.v1.GatewayService" in listed.stdout.split()


def test_nginx_speaks_tls_only_and_a_client_must_trust_the_stack_ca(
    tls_stack: LocalStack,
) -> None:
    health = "grpc.health.v1.Health/Check"
    assert grpcurl(tls_stack, health, transport=trusting(tls_stack)).returncode == 0
    plaintext = grpcurl(tls_stack, health, transport=("-plaintext",))
    assert plaintext.returncode != 0
    # The system's roots do not include the stack's CA.
    untrusted = grpcurl(tls_stack, health, transport=())
    assert untrusted.returncode != 0
    assert "certificate" in untrusted.stderr


def _service_health(address: str, credentials: grpc.ChannelCredentials | None) -> object:
    channel = (
        grpc.insecure_channel(address)
        if credentials is None
        else grpc.secure_channel(address, credentials)
    )
    with channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
        except grpc.RpcError as exc:
            return exc.code()
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def test_a_service_accepts_only_a_client_with_nginx_certificate(tls_stack: LocalStack) -> None:
    assert tls_stack.tls is not None
    ca = tls_stack.tls.ca.read_bytes()
    for address in (
        tls_stack.addresses["gateway"][0],
        tls_stack.addresses["reservation_service"][0],
        tls_stack.addresses["notifier_service"][0],
        tls_stack.addresses["consumer_service"][0],
    ):
        assert _service_health(address, tls_stack.service_credentials()) == "SERVING"
        # Trusting the service, but without a client certificate.
        anonymous = grpc.ssl_channel_credentials(root_certificates=ca)
        assert _service_health(address, anonymous) == grpc.StatusCode.UNAVAILABLE
        # nginx's edge certificate is the stack's too, but not a client's.
        key, chain = tls_stack.tls.read(tls_stack.tls.edge)
        edge = grpc.ssl_channel_credentials(ca, private_key=key, certificate_chain=chain)
        assert _service_health(address, edge) == grpc.StatusCode.UNAVAILABLE
        assert _service_health(address, None) == grpc.StatusCode.UNAVAILABLE


def test_the_stack_keeps_its_keys_to_itself(tls_stack: LocalStack) -> None:
    assert tls_stack.tls is not None
    folder = tls_stack.tls.ca.parent
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    for path in folder.iterdir():
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
