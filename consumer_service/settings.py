from __future__ import annotations

from dataclasses import dataclass

from ticketing_common.config import Env, KafkaSettings, ServerSettings, postgres_dsn, redis_url


@dataclass(frozen=True)
class ConsumerSettings:
    server: ServerSettings
    kafka: KafkaSettings
    postgres_dsn: str
    redis_url: str
    max_batch: int = 1_000
    # How often an idle consume loop wakes (a record wakes it at once).
    poll_timeout_ms: int = 1_000
    # The lock must outlive a batch by far; fencing covers the case where it does not.
    lock_ttl_ms: int = 10_000
    lock_wait_s: float = 5.0
    retry_backoff_s: float = 0.5
    pool_size: int = 6
    # A record whose processing keeps failing (not a transient failure) is
    # dead-lettered after this many attempts.
    max_attempts: int = 5
    # Consecutive transient batch failures that open the circuit breaker, and
    # how long it stays open before a half-open probe.
    breaker_threshold: int = 5
    breaker_reset_s: float = 5.0
    # Ceiling on decisions per second for this consumer; 0 means unlimited.
    max_decisions_per_s: int = 0
    session_timeout_ms: int = 10_000
    # Fault-injection aid for tests, 0 in production: a pause after taking an
    # event's lock and after publishing a batch's results, widening the windows
    # in which a crash or a stall matters most.
    fault_delay_ms: int = 0

    @classmethod
    def from_env(cls, env: Env | None = None) -> ConsumerSettings:
        env = env or Env()
        return cls(
            server=ServerSettings.from_env(env, default_port=50081),
            kafka=KafkaSettings.from_env(env),
            postgres_dsn=postgres_dsn(env),
            redis_url=redis_url(env),
            max_batch=env.integer("CONSUMER_MAX_BATCH", cls.max_batch, minimum=1),
            poll_timeout_ms=env.integer("CONSUMER_POLL_TIMEOUT_MS", cls.poll_timeout_ms, minimum=1),
            lock_ttl_ms=env.integer("LOCK_TTL_MS", cls.lock_ttl_ms, minimum=100),
            lock_wait_s=env.number("LOCK_WAIT_S", cls.lock_wait_s, minimum=0.01),
            retry_backoff_s=env.number("CONSUMER_RETRY_BACKOFF_S", cls.retry_backoff_s, minimum=0),
            pool_size=env.integer("PG_POOL_SIZE", cls.pool_size, minimum=1),
            max_attempts=env.integer("CONSUMER_MAX_ATTEMPTS", cls.max_attempts, minimum=1),
            breaker_threshold=env.integer("BREAKER_THRESHOLD", cls.breaker_threshold, minimum=1),
            breaker_reset_s=env.number("BREAKER_RESET_S", cls.breaker_reset_s, minimum=0.1),
            max_decisions_per_s=env.integer(
                "MAX_DECISIONS_PER_S", cls.max_decisions_per_s, minimum=0
            ),
            session_timeout_ms=env.integer(
                "CONSUMER_SESSION_TIMEOUT_MS", cls.session_timeout_ms, minimum=1_000
            ),
            fault_delay_ms=env.integer("CONSUMER_FAULT_DELAY_MS", cls.fault_delay_ms, minimum=0),
        )
