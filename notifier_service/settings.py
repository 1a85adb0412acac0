from __future__ import annotations

from dataclasses import dataclass

from ticketing_common.config import Env, KafkaSettings, ServerSettings, postgres_dsn


@dataclass(frozen=True)
class NotifierSettings:
    server: ServerSettings
    kafka: KafkaSettings
    postgres_dsn: str
    # While a watched request is undecided, PostgreSQL is re-read this often as
    # a safety net under the live feed.
    recheck_s: float = 5.0
    # Accepted-but-undecided requests are remembered this long.
    pending_ttl_s: float = 3_600.0
    # An id seen nowhere waits this long for the requests feed to catch up
    # with the broker before the answer is NOT_FOUND.
    catch_up_timeout_s: float = 3.0
    pool_size: int = 8

    @classmethod
    def from_env(cls, env: Env | None = None) -> NotifierSettings:
        env = env or Env()
        return cls(
            server=ServerSettings.from_env(env, default_port=50091),
            kafka=KafkaSettings.from_env(env),
            postgres_dsn=postgres_dsn(env),
            recheck_s=env.number("NOTIFIER_RECHECK_S", cls.recheck_s, minimum=0.1),
            pending_ttl_s=env.number("NOTIFIER_PENDING_TTL_S", cls.pending_ttl_s, minimum=1),
            catch_up_timeout_s=env.number(
                "NOTIFIER_CATCH_UP_TIMEOUT_S", cls.catch_up_timeout_s, minimum=0
            ),
            pool_size=env.integer("PG_POOL_SIZE", cls.pool_size, minimum=1),
        )
