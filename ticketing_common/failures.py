"""Which failures come from the environment, which from the record or request
at hand, and which from neither.

One table for every caller. The consumer retries a batch (and opens its
breaker) on a transient failure instead of dead-lettering it, and never moves
past a record whose rejection could not be stored unless the record's own data
is what cannot be stored; the servers answer UNAVAILABLE instead of INTERNAL.
Retrying is always safe (decided ids are recognised on redelivery); the
question is only whether a retry can succeed. The answer comes from the errors
themselves: a ``retriable`` attribute (ours and aiokafka's), the SQLSTATE of a
PostgreSQL error (its ``sqlstate`` attribute, never its message), the type of
a connection error.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType

import asyncpg
import asyncpg.exceptions._base as asyncpg_base
import redis.exceptions
from aiokafka import errors as kafka_errors


class Failure(StrEnum):
    """What a failure says about a retry."""

    # The server, the connection or the deployment (down, restarting, out of
    # resources, credentials or schema being changed): nothing the record did.
    # A retry after it heals succeeds; a dead letter would have told a buyer
    # INTERNAL for a request that was fine.
    TRANSIENT = "transient"
    # The record's or request's own values (a number out of range, a
    # constraint): a retry fails the same way. The record may be dead-lettered.
    DATA = "data"
    # Neither: our code is wrong, or the error is one nobody classified. Shows
    # as a bug (INTERNAL, logged); the consumer isolates the record that meets
    # it, and never takes it for a bad record when storing a rejection.
    DEFECT = "defect"


TRANSIENT = Failure.TRANSIENT
DATA = Failure.DATA
DEFECT = Failure.DEFECT

# Every SQLSTATE class of PostgreSQL's documentation (Appendix A, "PostgreSQL
# Error Codes"), by its first two characters. An error whose state is not in
# SQLSTATES below takes its class's classification; a class not listed (none
# is documented today) is a DEFECT.
SQLSTATE_CLASSES: Mapping[str, Failure] = MappingProxyType(
    {
        "00": DEFECT,  # successful completion (never raised)
        "01": DEFECT,  # warning (never raised)
        "02": DEFECT,  # no data (never raised)
        "03": DEFECT,  # SQL statement not yet complete
        "08": TRANSIENT,  # connection exception
        "09": DEFECT,  # triggered action exception
        "0A": DEFECT,  # feature not supported (asyncpg's stale statement cache: below)
        "0B": DEFECT,  # invalid transaction initiation
        "0F": DEFECT,  # locator exception
        "0L": DEFECT,  # invalid grantor
        "0P": TRANSIENT,  # invalid role specification: the deployment's roles
        "0Z": DEFECT,  # diagnostics exception
        "10": DATA,  # XQuery error (PostgreSQL 18): an argument's content
        "20": DEFECT,  # case not found
        "21": DEFECT,  # cardinality violation
        "22": DATA,  # data exception: a value out of range, too long, not valid
        "23": DATA,  # integrity constraint violation
        "24": DEFECT,  # invalid cursor state
        "25": DEFECT,  # invalid transaction state (but see 25006, 25P03, 25P04)
        "26": DEFECT,  # invalid SQL statement name
        "27": DEFECT,  # triggered data change violation
        "28": TRANSIENT,  # invalid authorization: a wrong password, a role not yet created
        "2B": DEFECT,  # dependent privilege descriptors still exist
        "2D": DEFECT,  # invalid transaction termination
        "2F": DEFECT,  # SQL routine exception
        "34": DEFECT,  # invalid cursor name
        "38": DEFECT,  # external routine exception
        "39": DEFECT,  # external routine invocation exception
        "3B": DEFECT,  # savepoint exception
        "3D": TRANSIENT,  # invalid catalog name: the database does not exist (yet)
        "3F": TRANSIENT,  # invalid schema name: not migrated yet
        "40": TRANSIENT,  # transaction rollback: serialization failure, deadlock
        "42": DEFECT,  # syntax error or access rule violation (but see the 42 states)
        "44": DATA,  # WITH CHECK OPTION violation: a row failing a view's condition
        "53": TRANSIENT,  # insufficient resources: disk, memory, connections
        "54": DATA,  # program limit exceeded: a value too big for an index, say
        "55": DEFECT,  # object not in prerequisite state (but see 55006, 55P03)
        "57": TRANSIENT,  # operator intervention: shutdown, crash, starting up, cancel
        "58": TRANSIENT,  # system error: I/O, a file missing
        "72": TRANSIENT,  # snapshot failure (PostgreSQL 16 and before)
        "F0": TRANSIENT,  # configuration file error
        "HV": DEFECT,  # foreign data wrapper error (but see HV00N)
        "P0": DEFECT,  # PL/pgSQL error: our functions raise no data errors
        "XX": TRANSIENT,  # internal error, data or index corrupted: the server's
    }
)

# Single states whose meaning differs from their class's.
SQLSTATES: Mapping[str, Failure] = MappingProxyType(
    {
        "25006": TRANSIENT,  # read-only SQL transaction: a failover in progress
        "25P03": TRANSIENT,  # idle-in-transaction session timeout
        "25P04": TRANSIENT,  # transaction timeout (PostgreSQL 17)
        "40002": DATA,  # transaction integrity constraint violation
        "42501": TRANSIENT,  # insufficient privilege: a grant missing or revoked
        # A schema mid-migration: what the code names is not there yet (or
        # any more); the migration's end heals it.
        "42P01": TRANSIENT,  # undefined table
        "42703": TRANSIENT,  # undefined column
        "42704": TRANSIENT,  # undefined object (a type)
        "42883": TRANSIENT,  # undefined function
        "55006": TRANSIENT,  # object in use
        "55P03": TRANSIENT,  # lock not available: a lock timeout
        "HV00N": TRANSIENT,  # FDW unable to establish connection
    }
)

# Failures known by their type. The first match wins: the more specific first.
TYPES: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], Failure], ...] = (
    # Raised by asyncpg itself for an argument it cannot encode (a string for
    # an integer, say): the value's fault. Subclasses InterfaceError below.
    (asyncpg_base.DataError, DATA),
    # The schema changed under a prepared statement (a migration): asyncpg
    # has dropped the statement, a retry prepares it afresh. This one
    # carries 0A000, which would otherwise make it a DEFECT.
    ((asyncpg.InvalidCachedStatementError, asyncpg_base.OutdatedSchemaCacheError), TRANSIENT),
    (
        (
            OSError,  # includes ConnectionError and the builtin TimeoutError
            asyncpg.InterfaceError,  # the connection closed or lost under us
            # Any Redis error: our scripts are fixed, so an error is the
            # server's state (down, loading, out of memory, read-only replica),
            # never the record's.
            redis.exceptions.RedisError,
            kafka_errors.KafkaTimeoutError,  # not flagged retriable by aiokafka
            # Credentials and ACLs are the deployment's, like SQLSTATE class 28.
            kafka_errors.AuthenticationFailedError,
            kafka_errors.SaslAuthenticationFailed,
            kafka_errors.TopicAuthorizationFailedError,
            kafka_errors.GroupAuthorizationFailedError,
            kafka_errors.ClusterAuthorizationFailedError,
        ),
        TRANSIENT,
    ),
)

# How bad a group of failures is: its worst member.
_SEVERITY = (TRANSIENT, DATA, DEFECT)


def classify_failure(exc: BaseException) -> Failure:
    """What ``exc`` says about retrying the work that raised it."""
    if isinstance(exc, BaseExceptionGroup):
        return max((classify_failure(e) for e in exc.exceptions), key=_SEVERITY.index)
    if getattr(exc, "retriable", False):
        return TRANSIENT
    for types, failure in TYPES:
        if isinstance(exc, types):
            return failure
    if isinstance(exc, asyncpg.PostgresError):
        return classify_sqlstate(getattr(exc, "sqlstate", None))
    return DEFECT


def classify_sqlstate(state: str | None) -> Failure:
    """A SQLSTATE's classification: its own entry, else its class's."""
    if not state:
        return DEFECT
    return SQLSTATES.get(state, SQLSTATE_CLASSES.get(state[:2], DEFECT))


def is_transient(exc: BaseException) -> bool:
    """True when the failure is the environment's and a later retry can succeed."""
    return classify_failure(exc) is TRANSIENT
