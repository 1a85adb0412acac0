from __future__ import annotations

from dataclasses import dataclass

from ticketing_common.config import Env, ServerSettings, postgres_dsn, redis_url


@dataclass(frozen=True)
class ReservationSettings:
    server: ServerSettings
    postgres_dsn: str
    # Where the gateway records accepted requests: GetReservation answers a
    # queued request from there.
    redis_url: str
    pool_size: int = 8

    @classmethod
    def from_env(cls, env: Env | None = None) -> ReservationSettings:
        env = env or Env()
        return cls(
            server=ServerSettings.from_env(env, default_port=50071),
            postgres_dsn=postgres_dsn(env),
            redis_url=redis_url(env),
            pool_size=env.integer("PG_POOL_SIZE", cls.pool_size, minimum=1),
        )
