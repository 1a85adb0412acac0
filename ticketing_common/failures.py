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

# SQLSTATEs that describe the server, the connection or the deployment, not
# the request: classes 08 connection, 40 rollback (deadlock, serialization),
# 53 resources, 57 operator intervention (shutdown, statement timeout), 58
# system (I/O), and single states of other classes: 25006 read-only
# transaction (a failover in progress), 42501 permission, 42P01 a table
# missing (migrations not run), 55P03 lock timeout, 55006 object in use. A
# retry after the operator fixed it succeeds; a dead letter would have told a
# buyer INTERNAL for a request that was fine. Anything else (a syntax error,
# a constraint) is a bug or the data's fault, and shows as one.
TRANSIENT_SQLSTATE_CLASSES = frozenset({"08", "40", "53", "57", "58"})
TRANSIENT_SQLSTATES = frozenset({"25006", "42501", "42P01", "55P03", "55006"})

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
        return state[:2] in TRANSIENT_SQLSTATE_CLASSES or state in TRANSIENT_SQLSTATES
    return isinstance(exc, TRANSIENT_TYPES)
