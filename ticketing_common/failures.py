"""Which failures are worth retrying a batch for.

Retrying is always safe (decided ids are recognised on redelivery); the
question is only whether a retry can succeed. The answer comes from the
errors themselves: a ``retriable`` attribute (ours and aiokafka's), the
SQLSTATE class of a PostgreSQL error, the type of a connection error.
"""

from __future__ import annotations

import asyncpg
import redis.exceptions
from aiokafka.errors import KafkaTimeoutError

# SQLSTATE classes that describe the server or the connection, not the data:
# 08 connection exception, 40 transaction rollback (deadlock, serialization),
# 53 insufficient resources, 57 operator intervention (shutdown, restart).
TRANSIENT_SQLSTATE_CLASSES = frozenset({"08", "40", "53", "57"})

TRANSIENT_TYPES = (
    OSError,  # includes ConnectionError and the builtin TimeoutError
    asyncpg.InterfaceError,
    # Any Redis error: our scripts are fixed, so an error is the server's state
    # (down, loading, out of memory, read-only replica), never the record's.
    redis.exceptions.RedisError,
    KafkaTimeoutError,  # not flagged retriable by aiokafka, but a timeout is
)


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return all(is_transient(inner) for inner in exc.exceptions)
    if getattr(exc, "retriable", False):
        return True
    if isinstance(exc, asyncpg.PostgresError):
        state = getattr(exc, "sqlstate", None) or ""
        return state[:2] in TRANSIENT_SQLSTATE_CLASSES
    return isinstance(exc, TRANSIENT_TYPES)
