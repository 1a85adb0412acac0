"""Which failures come from the environment, not from the request at hand.

One function for every caller: the consumer retries a batch (and opens its
breaker) instead of dead-lettering it, and the servers answer UNAVAILABLE
instead of INTERNAL. Retrying is always safe (decided ids are recognised on
redelivery); the question is only whether a retry can succeed. The answer
comes from the errors themselves: a ``retriable`` attribute (ours and
aiokafka's), the SQLSTATE of a PostgreSQL error, the type of a connection
error.
"""

from __future__ import annotations

import asyncpg
import redis.exceptions
from aiokafka.errors import KafkaTimeoutError

# SQLSTATE classes that can be a request's own fault: 22 data exception (a
# value PostgreSQL cannot take) and 23 integrity constraint violation. Our SQL
# is fixed and every value is bound, so every other class describes the
# server, the connection or the deployment: 08 connection, 25006 read-only
# transaction, 40 rollback (deadlock, serialization), 42501 permission, 42P01
# a missing table (migrations not run), 53 resources, 55P03 lock timeout, 57
# operator intervention and statement timeouts, 58 I/O, XX internal. A retry
# after the operator fixed it succeeds; a dead letter would have told a buyer
# "INTERNAL" for a request that was fine.
REQUEST_FAULT_SQLSTATE_CLASSES = frozenset({"22", "23"})

TRANSIENT_TYPES = (
    OSError,  # includes ConnectionError and the builtin TimeoutError
    asyncpg.InterfaceError,
    # Any Redis error: our scripts are fixed, so an error is the server's state
    # (down, loading, out of memory, read-only replica), never the record's.
    redis.exceptions.RedisError,
    KafkaTimeoutError,  # not flagged retriable by aiokafka, but a timeout is
)


def is_transient(exc: BaseException) -> bool:
    """True when the failure is the environment's and a later retry can succeed."""
    if isinstance(exc, BaseExceptionGroup):
        return all(is_transient(inner) for inner in exc.exceptions)
    if getattr(exc, "retriable", False):
        return True
    if isinstance(exc, asyncpg.PostgresError):
        state = getattr(exc, "sqlstate", None) or ""
        return state[:2] not in REQUEST_FAULT_SQLSTATE_CLASSES
    return isinstance(exc, TRANSIENT_TYPES)
