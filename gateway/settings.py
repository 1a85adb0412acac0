from __future__ import annotations

from dataclasses import dataclass

from ticketing_common.config import Env, KafkaSettings, ServerSettings, postgres_dsn, redis_url


@dataclass(frozen=True)
class GatewaySettings:
    server: ServerSettings
    kafka: KafkaSettings
    postgres_dsn: str
    # Used by ReserveSync only (the synchronous design kept for comparison).
    redis_url: str
    # Upper bound on waiting for the broker's acknowledgement; the caller's
    # deadline shortens it further.
    publish_timeout_s: float = 5.0
    # How long an unknown event id is remembered as unknown.
    unknown_event_ttl_s: float = 2.0
    producer_linger_ms: int = 1
    # Failed publishes in a row that make Reserve fail fast, and for how long.
    broker_breaker_threshold: int = 3
    broker_breaker_reset_s: float = 2.0
    # A publish whose partition has had no acknowledgement this long stops
    # waiting (UNAVAILABLE): the broker, or the partition's leader, is gone.
    broker_silence_s: float = 2.0
    # Fault-injection aid for tests, 0 in production: a pause between the
    # broker's acknowledgement and the answer.
    fault_delay_ms: int = 0
    pool_size: int = 8
    lock_ttl_ms: int = 10_000
    # How long a ReserveSync caller waits for the event's lock.
    sync_lock_wait_s: float = 5.0

    @classmethod
    def from_env(cls, env: Env | None = None) -> GatewaySettings:
        env = env or Env()
        return cls(
            server=ServerSettings.from_env(env, default_port=50061),
            kafka=KafkaSettings.from_env(env),
            postgres_dsn=postgres_dsn(env),
            redis_url=redis_url(env),
            pool_size=env.integer("PG_POOL_SIZE", cls.pool_size, minimum=1),
            lock_ttl_ms=env.integer("LOCK_TTL_MS", cls.lock_ttl_ms, minimum=100),
            sync_lock_wait_s=env.number("SYNC_LOCK_WAIT_S", cls.sync_lock_wait_s, minimum=0.01),
            publish_timeout_s=env.number("PUBLISH_TIMEOUT_S", cls.publish_timeout_s, minimum=0.01),
            unknown_event_ttl_s=env.number(
                "UNKNOWN_EVENT_TTL_S", cls.unknown_event_ttl_s, minimum=0
            ),
            broker_breaker_threshold=env.integer(
                "BROKER_BREAKER_THRESHOLD", cls.broker_breaker_threshold, minimum=1
            ),
            broker_breaker_reset_s=env.number(
                "BROKER_BREAKER_RESET_S", cls.broker_breaker_reset_s, minimum=0.1
            ),
            broker_silence_s=env.number("BROKER_SILENCE_S", cls.broker_silence_s, minimum=0.1),
            fault_delay_ms=env.integer("GATEWAY_FAULT_DELAY_MS", cls.fault_delay_ms, minimum=0),
            producer_linger_ms=env.integer("PRODUCER_LINGER_MS", cls.producer_linger_ms, minimum=0),
        )
