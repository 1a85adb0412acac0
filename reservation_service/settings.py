from __future__ import annotations

from dataclasses import dataclass

from ticketing_common.config import Env, ServerSettings, postgres_dsn


@dataclass(frozen=True)
class ReservationSettings:
    server: ServerSettings
    postgres_dsn: str
    pool_size: int = 8

    @classmethod
    def from_env(cls, env: Env | None = None) -> ReservationSettings:
        env = env or Env()
        return cls(
            server=ServerSettings.from_env(env, default_port=50071),
            postgres_dsn=postgres_dsn(env),
            pool_size=env.integer("PG_POOL_SIZE", cls.pool_size, minimum=1),
        )
