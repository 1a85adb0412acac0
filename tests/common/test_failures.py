"""Which consumer failures are retried as transient."""

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
    assert not is_transient(ValueError("bug"))
    assert not is_transient(ExceptionGroup("batch", [OSError(), KeyError("bug")]))
