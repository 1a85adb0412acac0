"""Settings are data: one frozen dataclass per service, read from ``TICKETING_*``.

This module is the only place that reads the environment; composition roots
call ``from_env`` once and pass the result down.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

PREFIX = "TICKETING_"

DEFAULT_POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/ticketing"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_KAFKA_BOOTSTRAP = "127.0.0.1:9092"


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


class Env:
    """Typed reads of ``TICKETING_*`` variables from one mapping."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ

    def raw(self, name: str) -> str | None:
        value = self._environ.get(PREFIX + name)
        return None if value is None or value == "" else value

    def text(self, name: str, default: str) -> str:
        value = self.raw(name)
        return default if value is None else value

    def integer(
        self, name: str, default: int, *, minimum: int | None = None, maximum: int | None = None
    ) -> int:
        value = self.raw(name)
        if value is None:
            return default
        try:
            parsed = int(value)
        except ValueError:
            raise ConfigError(f"{PREFIX}{name} must be an integer, got {value!r}") from None
        if minimum is not None and parsed < minimum:
            raise ConfigError(f"{PREFIX}{name} must be >= {minimum}, got {parsed}")
        if maximum is not None and parsed > maximum:
            raise ConfigError(f"{PREFIX}{name} must be <= {maximum}, got {parsed}")
        return parsed

    def number(self, name: str, default: float, *, minimum: float | None = None) -> float:
        value = self.raw(name)
        if value is None:
            return default
        try:
            parsed = float(value)
        except ValueError:
            raise ConfigError(f"{PREFIX}{name} must be a number, got {value!r}") from None
        if minimum is not None and parsed < minimum:
            raise ConfigError(f"{PREFIX}{name} must be >= {minimum}, got {parsed}")
        return parsed


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap: str = DEFAULT_KAFKA_BOOTSTRAP
    requests_topic: str = "ticketing.reservation-requests"
    results_topic: str = "ticketing.reservation-results"
    dead_letter_topic: str = "ticketing.reservation-requests.dlq"
    consumer_group: str = "ticketing-consumer"
    partitions: int = 6
    replication_factor: int = 1
    # Readers (consumers, notifier feeds) long-poll: the broker holds a fetch
    # that finds nothing this long, and answers as soon as a record arrives.
    fetch_max_wait_ms: int = 500
    # After handling a batch, a reader lets records gather this long before
    # it takes the next: under load that is one fetch (and one decision
    # transaction) per many records instead of one per few, at a cost of at
    # most this much latency per reader (a request passes two: the consumer
    # and the notifier's results feed).
    fetch_linger_ms: int = 5

    @classmethod
    def from_env(cls, env: Env) -> KafkaSettings:
        return cls(
            bootstrap=env.text("KAFKA_BOOTSTRAP", DEFAULT_KAFKA_BOOTSTRAP),
            requests_topic=env.text("REQUESTS_TOPIC", cls.requests_topic),
            results_topic=env.text("RESULTS_TOPIC", cls.results_topic),
            dead_letter_topic=env.text("DEAD_LETTER_TOPIC", cls.dead_letter_topic),
            consumer_group=env.text("CONSUMER_GROUP", cls.consumer_group),
            partitions=env.integer("TOPIC_PARTITIONS", cls.partitions, minimum=1),
            replication_factor=env.integer("TOPIC_REPLICATION", cls.replication_factor, minimum=1),
            fetch_max_wait_ms=env.integer("FETCH_MAX_WAIT_MS", cls.fetch_max_wait_ms, minimum=1),
            fetch_linger_ms=env.integer(
                "FETCH_LINGER_MS", cls.fetch_linger_ms, minimum=0, maximum=1_000
            ),
        )


@dataclass(frozen=True)
class ServerSettings:
    """What every gRPC server shares: where it listens, how long it drains."""

    host: str = "127.0.0.1"
    port: int = 0
    shutdown_grace_s: float = 10.0
    log_level: str = "info"
    instance_id: str = field(default_factory=lambda: f"{os.uname().nodename}-{os.getpid()}")

    @classmethod
    def from_env(cls, env: Env, default_port: int) -> ServerSettings:
        return cls(
            host=env.text("HOST", cls.host),
            port=env.integer("PORT", default_port, minimum=0),
            shutdown_grace_s=env.number("SHUTDOWN_GRACE_S", cls.shutdown_grace_s, minimum=0),
            log_level=env.text("LOG_LEVEL", cls.log_level),
            instance_id=env.text("INSTANCE_ID", f"{os.uname().nodename}-{os.getpid()}"),
        )


def postgres_dsn(env: Env) -> str:
    return env.text("POSTGRES_DSN", DEFAULT_POSTGRES_DSN)


def redis_url(env: Env) -> str:
    return env.text("REDIS_URL", DEFAULT_REDIS_URL)
