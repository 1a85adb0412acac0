"""Which failures are the environment's (retried, UNAVAILABLE) and which a request's."""

from __future__ import annotations

import inspect

import asyncpg
import asyncpg.exceptions
import asyncpg.exceptions._base
import pytest
import redis.exceptions
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    TopicAuthorizationFailedError,
)

from ticketing_common.errors import StaleFencingToken
from ticketing_common.failures import (
    DATA,
    DEFECT,
    SQLSTATE_CLASSES,
    TRANSIENT,
    Failure,
    classify_failure,
    classify_sqlstate,
    is_transient,
)
from ticketing_common.storage.locks import LockNotAcquired

# Every SQLSTATE class of PostgreSQL's Appendix A ("PostgreSQL Error Codes",
# versions 15 to 18: class 72 left in 17, class 10 came in 18), with what a
# failure of that class is. Written out here, apart from the table under test.
EVERY_CLASS = {
    "00": ("successful completion", DEFECT),
    "01": ("warning", DEFECT),
    "02": ("no data", DEFECT),
    "03": ("SQL statement not yet complete", DEFECT),
    "08": ("connection exception", TRANSIENT),
    "09": ("triggered action exception", DEFECT),
    "0A": ("feature not supported", DEFECT),
    "0B": ("invalid transaction initiation", DEFECT),
    "0F": ("locator exception", DEFECT),
    "0L": ("invalid grantor", DEFECT),
    "0P": ("invalid role specification", TRANSIENT),
    "0Z": ("diagnostics exception", DEFECT),
    "10": ("XQuery error", DATA),
    "20": ("case not found", DEFECT),
    "21": ("cardinality violation", DEFECT),
    "22": ("data exception", DATA),
    "23": ("integrity constraint violation", DATA),
    "24": ("invalid cursor state", DEFECT),
    "25": ("invalid transaction state", DEFECT),
    "26": ("invalid SQL statement name", DEFECT),
    "27": ("triggered data change violation", DEFECT),
    "28": ("invalid authorization specification", TRANSIENT),
    "2B": ("dependent privilege descriptors still exist", DEFECT),
    "2D": ("invalid transaction termination", DEFECT),
    "2F": ("SQL routine exception", DEFECT),
    "34": ("invalid cursor name", DEFECT),
    "38": ("external routine exception", DEFECT),
    "39": ("external routine invocation exception", DEFECT),
    "3B": ("savepoint exception", DEFECT),
    "3D": ("invalid catalog name", TRANSIENT),
    "3F": ("invalid schema name", TRANSIENT),
    "40": ("transaction rollback", TRANSIENT),
    "42": ("syntax error or access rule violation", DEFECT),
    "44": ("WITH CHECK OPTION violation", DATA),
    "53": ("insufficient resources", TRANSIENT),
    "54": ("program limit exceeded", DATA),
    "55": ("object not in prerequisite state", DEFECT),
    "57": ("operator intervention", TRANSIENT),
    "58": ("system error", TRANSIENT),
    "72": ("snapshot failure", TRANSIENT),
    "F0": ("configuration file error", TRANSIENT),
    "HV": ("foreign data wrapper error", DEFECT),
    "P0": ("PL/pgSQL error", DEFECT),
    "XX": ("internal error", TRANSIENT),
}

# Single states that differ from their class, and states of note that do not.
STATES = {
    "08006": TRANSIENT,  # connection failure
    "22001": DATA,  # string data right truncation
    "22003": DATA,  # numeric value out of range
    "22P02": DATA,  # invalid text representation
    "23505": DATA,  # unique violation
    "23514": DATA,  # check violation: would oversell
    "25006": TRANSIENT,  # read-only SQL transaction: a failover
    "25P02": DEFECT,  # in failed SQL transaction: our bug
    "25P03": TRANSIENT,  # idle-in-transaction session timeout
    "25P04": TRANSIENT,  # transaction timeout
    "28000": TRANSIENT,  # invalid authorization specification: no such role
    "28P01": TRANSIENT,  # invalid password
    "3D000": TRANSIENT,  # the database does not exist
    "40001": TRANSIENT,  # serialization failure
    "40002": DATA,  # transaction integrity constraint violation
    "40P01": TRANSIENT,  # deadlock detected
    "42501": TRANSIENT,  # insufficient privilege
    "42601": DEFECT,  # syntax error: our bug, not an outage
    "42P01": TRANSIENT,  # undefined table: mid-migration
    "42703": TRANSIENT,  # undefined column: mid-migration
    "42704": TRANSIENT,  # undefined object: mid-migration
    "42883": TRANSIENT,  # undefined function: mid-migration
    "42804": DEFECT,  # datatype mismatch
    "53300": TRANSIENT,  # too many connections
    "55000": DEFECT,  # object not in prerequisite state
    "55006": TRANSIENT,  # object in use
    "55P03": TRANSIENT,  # lock not available
    "57014": TRANSIENT,  # query canceled: statement timeout
    "57P01": TRANSIENT,  # admin shutdown
    "57P02": TRANSIENT,  # crash shutdown
    "57P03": TRANSIENT,  # cannot connect now
    "58030": TRANSIENT,  # I/O error
    "HV00N": TRANSIENT,  # FDW unable to establish connection
    "P0001": DEFECT,  # raise exception
    "XX000": TRANSIENT,  # internal error
    "XX001": TRANSIENT,  # data corrupted
    "XX002": TRANSIENT,  # index corrupted
}


def server_error(state: str) -> asyncpg.PostgresError:
    """The error asyncpg raises when the server answers with ``state``."""
    return asyncpg.PostgresError.new({"C": state, "M": "from the server", "S": "ERROR"})


@pytest.mark.parametrize("klass", sorted(EVERY_CLASS))
def test_every_documented_sqlstate_class_is_classified(klass: str) -> None:
    _, expected = EVERY_CLASS[klass]
    assert SQLSTATE_CLASSES[klass] is expected
    # A state of the class that has no entry of its own (none ends in ZZZ)
    # takes the class's classification, whether asyncpg knows it or not.
    assert classify_sqlstate(klass + "ZZZ") is expected
    assert classify_failure(server_error(klass + "ZZZ")) is expected


def test_the_table_holds_exactly_the_documented_classes() -> None:
    assert set(SQLSTATE_CLASSES) == set(EVERY_CLASS)


@pytest.mark.parametrize(("state", "expected"), sorted(STATES.items()))
def test_single_states(state: str, expected: Failure) -> None:
    assert classify_sqlstate(state) is expected
    assert classify_failure(server_error(state)) is expected


def test_every_error_asyncpg_knows_is_classified_by_its_sqlstate() -> None:
    """asyncpg's error classes are generated from PostgreSQL's list: each one
    takes its state's classification (none falls to the unknown default)."""
    known = [
        cls
        for _, cls in inspect.getmembers(asyncpg.exceptions, inspect.isclass)
        if issubclass(cls, asyncpg.PostgresError) and getattr(cls, "sqlstate", None)
    ]
    assert len(known) > 200
    for cls in known:
        assert cls.sqlstate[:2] in EVERY_CLASS, cls
        expected = STATES.get(cls.sqlstate, EVERY_CLASS[cls.sqlstate[:2]][1])
        if cls is asyncpg.InvalidCachedStatementError:
            expected = TRANSIENT  # see below
        assert classify_failure(cls()) is expected, cls


def test_the_named_outages_are_transient() -> None:
    """A wrong password, a missing database, a schema mid-migration and an
    internal error are the deployment's, never a record's."""
    assert is_transient(asyncpg.InvalidPasswordError())  # 28P01
    assert is_transient(asyncpg.InvalidAuthorizationSpecificationError())  # 28000
    assert is_transient(asyncpg.InvalidCatalogNameError())  # 3D000
    assert is_transient(asyncpg.UndefinedColumnError())  # 42703
    assert is_transient(asyncpg.UndefinedFunctionError())  # 42883
    assert is_transient(asyncpg.UndefinedTableError())  # 42P01
    assert is_transient(asyncpg.InternalServerError())  # XX000
    assert is_transient(asyncpg.SerializationError())  # 40001
    # asyncpg's own report that a migration changed a prepared statement's
    # result (0A000 by its state): asyncpg re-prepares on the retry.
    assert is_transient(asyncpg.InvalidCachedStatementError())
    assert is_transient(asyncpg.exceptions._base.OutdatedSchemaCacheError("x"))
    # The broker's ACLs and credentials are the deployment's too.
    assert is_transient(TopicAuthorizationFailedError())


def test_data_errors_are_data_not_outages() -> None:
    assert classify_failure(asyncpg.DataError()) is DATA  # 22000
    assert classify_failure(asyncpg.NumericValueOutOfRangeError()) is DATA  # 22003
    assert classify_failure(asyncpg.UniqueViolationError()) is DATA  # 23505
    # asyncpg refusing to encode an argument is the value's fault, although
    # it subclasses InterfaceError (a lost connection, transient).
    assert classify_failure(asyncpg.exceptions._base.DataError("invalid input")) is DATA
    assert is_transient(asyncpg.InterfaceError("connection is closed"))
    assert classify_failure(MessageSizeTooLargeError()) is DEFECT
    assert classify_failure(ValueError("bug")) is DEFECT
    assert classify_failure(server_error("")) is DEFECT


def test_a_group_is_as_bad_as_its_worst_member() -> None:
    assert classify_failure(ExceptionGroup("g", [OSError(), LockNotAcquired()])) is TRANSIENT
    assert classify_failure(ExceptionGroup("g", [OSError(), asyncpg.DataError()])) is DATA
    assert (
        classify_failure(ExceptionGroup("g", [asyncpg.DataError(), KeyError("bug"), OSError()]))
        is DEFECT
    )


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
