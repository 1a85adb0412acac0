"""Which failures are the environment's (retried, UNAVAILABLE) and which a request's."""

from __future__ import annotations

import asyncpg
import redis.exceptions
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError

from ticketing_common.errors import StaleFencingToken
from ticketing_common.failures import is_transient
from ticketing_common.storage.locks import LockNotAcquired


def test_connection_and_server_state_failures_are_transient() -> None:
    assert is_transient(ConnectionRefusedError())
    assert is_transient(TimeoutError())
    assert is_transient(asyncpg.ConnectionDoesNotExistError())
    assert is_transient(asyncpg.AdminShutdownError())  # 57P01: the server is restarting
    assert is_transient(asyncpg.TooManyConnectionsError())  # 53300
    assert is_transient(asyncpg.DeadlockDetectedError())  # 40P01
    assert is_transient(asyncpg.CannotConnectNowError())  # 57P03
    assert is_transient(redis.exceptions.ConnectionError())
    assert is_transient(KafkaConnectionError())
    assert is_transient(KafkaTimeoutError())
    assert is_transient(LockNotAcquired())
    assert is_transient(StaleFencingToken("e", 1, 2))
    assert is_transient(ExceptionGroup("batch", [OSError(), LockNotAcquired()]))


def test_data_and_programming_errors_are_not() -> None:
    assert not is_transient(asyncpg.CheckViolationError())  # 23514: would oversell
    assert not is_transient(asyncpg.UniqueViolationError())
    assert not is_transient(asyncpg.StringDataRightTruncationError())  # 22001
    assert not is_transient(asyncpg.CharacterNotInRepertoireError())  # 22021
    assert not is_transient(asyncpg.PostgresSyntaxError())  # 42601: our bug, not an outage
    assert not is_transient(asyncpg.UndefinedColumnError())  # 42703
    assert not is_transient(asyncpg.RaiseError())  # P0001
    assert not is_transient(ValueError("bug"))
    assert not is_transient(ExceptionGroup("batch", [OSError(), KeyError("bug")]))


def test_environment_errors_of_postgresql_are_transient() -> None:
    """A server switched read-only, a lock timeout, a revoked grant, a disk
    error or a schema not migrated yet is nothing the request did: retrying
    later succeeds, dead-lettering would tell its buyer INTERNAL."""
    assert is_transient(asyncpg.ReadOnlySQLTransactionError())  # 25006
    assert is_transient(asyncpg.LockNotAvailableError())  # 55P03
    assert is_transient(asyncpg.InsufficientPrivilegeError())  # 42501
    assert is_transient(asyncpg.PostgresIOError())  # 58030
    assert is_transient(asyncpg.UndefinedTableError())  # 42P01
    assert is_transient(asyncpg.QueryCanceledError())  # 57014, statement_timeout
