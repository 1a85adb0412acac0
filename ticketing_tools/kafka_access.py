"""Who may do what on the suite's Kafka topics: one SASL user per service,
and ACLs that give each only what its code does.

| user | requests topic | results topic | dead-letter topic | payments topic | groups |
|---|---|---|---|---|---|
| gateway | write | | | | |
| consumer | read | write | write | write | consumers: join, commit |
| notifier | read | read | | | consumers: read offsets |
| payment | | | | read | saga: join, commit |

(The consumers' outbox relay publishes what other services committed to
PostgreSQL: state changes to the results topic, saga commands to the
payments topic; the payment service itself writes to Kafka only that way.)

So a stolen notifier password cannot append a request, and only a gateway
can put a record where the consumers decide. ``Describe`` (metadata) goes
with every topic grant. The launcher applies these to its own broker;
``ticketing-admin kafka-acls`` applies them to any cluster, with an
administrator's credentials from the ``TICKETING_KAFKA_*`` settings.

This uses kafka-python's admin client: aiokafka has no ACL or SCRAM
administration.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from kafka.admin import (
    ACL,
    ACLOperation,
    ACLPermissionType,
    KafkaAdminClient,
    ResourcePattern,
    ResourceType,
    ScramMechanism,
    UserScramCredentialUpsertion,
)
from kafka.errors import KafkaError

from ticketing_common.config import KafkaSettings

SERVICES = ("gateway", "consumer", "notifier", "payment")
SCRAM_ITERATIONS = 8192


@dataclass(frozen=True)
class Grant:
    """``service`` may do ``operations`` on one topic or group."""

    service: str
    resource: ResourceType
    name: str
    operations: tuple[ACLOperation, ...]


def grants(kafka: KafkaSettings) -> list[Grant]:
    """What each service needs, on the topics and group ``kafka`` names."""
    read = (ACLOperation.READ, ACLOperation.DESCRIBE)
    write = (ACLOperation.WRITE, ACLOperation.DESCRIBE)
    topic, group = ResourceType.TOPIC, ResourceType.GROUP
    return [
        # Idempotent producing needs no cluster grant: a topic write implies it.
        Grant("gateway", topic, kafka.requests_topic, write),
        Grant("consumer", topic, kafka.requests_topic, read),
        Grant("consumer", group, kafka.consumer_group, (ACLOperation.READ,)),
        Grant("consumer", topic, kafka.results_topic, write),
        Grant("consumer", topic, kafka.dead_letter_topic, write),
        Grant("consumer", topic, kafka.payments_topic, write),
        Grant("notifier", topic, kafka.requests_topic, read),
        Grant("notifier", topic, kafka.results_topic, read),
        # The notifier reads the requests topic from where the consumers
        # committed: fetching a group's offsets needs Describe on it.
        Grant("notifier", group, kafka.consumer_group, (ACLOperation.DESCRIBE,)),
        Grant("payment", topic, kafka.payments_topic, read),
        Grant("payment", group, kafka.saga_group, (ACLOperation.READ,)),
    ]


def acls(kafka: KafkaSettings, users: Mapping[str, str]) -> list[ACL]:
    """The grants as ACLs, for the Kafka user of each service (``users``:
    service to user name)."""
    return [
        ACL(
            principal=f"User:{users[grant.service]}",
            host="*",
            operation=operation,
            permission_type=ACLPermissionType.ALLOW,
            resource_pattern=ResourcePattern(grant.resource, grant.name),
        )
        for grant in grants(kafka)
        for operation in grant.operations
    ]


def client_options(kafka: KafkaSettings) -> dict[str, Any]:
    """``kafka``'s connection settings for kafka-python's admin client: the
    services' (aiokafka's) options, whose names it shares, but for TLS."""
    options = kafka.client_options()
    options["bootstrap_servers"] = kafka.bootstrap.split(",")
    if options.pop("ssl_context", None) is not None and kafka.ssl_cafile:
        options["ssl_cafile"] = kafka.ssl_cafile
    return options | {"client_id": "ticketing-admin", "request_timeout_ms": 15_000}


def java_client_properties(kafka: KafkaSettings) -> str:
    """``kafka``'s credentials as a Java client properties file, for Kafka's
    own scripts (``--command-config``, ``KAFKA_COMMAND_CONFIG`` of
    ``deploy/kafka-topics.sh``)."""
    lines = [f"security.protocol={kafka.security_protocol}"]
    if kafka.security_protocol.endswith("SSL") and kafka.ssl_cafile:
        lines += [f"ssl.truststore.location={kafka.ssl_cafile}", "ssl.truststore.type=PEM"]
    if kafka.security_protocol.startswith("SASL_") and kafka.sasl_password:
        module = (
            "plain.PlainLoginModule"
            if kafka.sasl_mechanism == "PLAIN"
            else "scram.ScramLoginModule"
        )
        password = kafka.sasl_password.get_secret_value()
        lines += [
            f"sasl.mechanism={kafka.sasl_mechanism}",
            f"sasl.jaas.config=org.apache.kafka.common.security.{module} required "
            f'username="{kafka.sasl_username}" password="{password}";',
        ]
    return "".join(f"{line}\n" for line in lines)


@contextmanager
def admin_client(kafka: KafkaSettings) -> Iterator[KafkaAdminClient]:
    """kafka-python's admin client. Its own warnings (such as credentials on
    a loopback plaintext listener) are not shown; its failures reach the
    caller as exceptions."""
    quiet = logging.getLogger("kafka")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        client = KafkaAdminClient(**client_options(kafka))
        try:
            yield client
        finally:
            client.close()
    finally:
        quiet.setLevel(level)


class AccessError(RuntimeError):
    """The cluster refused a user or an ACL; the message says which."""


def create_users(
    kafka: KafkaSettings, passwords: Mapping[str, str], *, retry_for_s: float = 0.0
) -> None:
    """Creates (or resets) a SCRAM-SHA-512 credential per user name; retries
    for ``retry_for_s`` while the cluster is still coming up."""
    alterations = [
        UserScramCredentialUpsertion(
            name, ScramMechanism.SCRAM_SHA_512, password, iterations=SCRAM_ITERATIONS
        )
        for name, password in passwords.items()
    ]
    deadline = time.monotonic() + retry_for_s
    while True:
        try:
            with admin_client(kafka) as admin:
                result = admin.alter_user_scram_credentials(alterations)
            break
        except KafkaError as exc:
            if not exc.retriable or time.monotonic() > deadline:
                raise
            time.sleep(0.3)
    failed = {user: error for user, error in result.items() if error}
    if failed:
        raise AccessError(f"Kafka refused SCRAM users: {failed}")


def apply_acls(kafka: KafkaSettings, users: Mapping[str, str]) -> list[ACL]:
    """Creates the ACLs (existing ones are left as they are) and returns them."""
    wanted = acls(kafka, users)
    with admin_client(kafka) as admin:
        result = admin.create_acls(wanted)
    if result["failed"]:
        raise AccessError(f"Kafka refused ACLs: {result['failed']}")
    return wanted
