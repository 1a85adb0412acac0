"""The one error hierarchy, and its mapping to gRPC status codes.

    TicketingError                 (retriable = False unless stated)
    ├── InvalidArgument            INVALID_ARGUMENT, names the field
    ├── NotFound                   NOT_FOUND
    ├── Unimplemented              UNIMPLEMENTED (a feature switched off)
    └── Unavailable                UNAVAILABLE, retriable
        ├── BrokerUnavailable      the broker did not acknowledge in time
        └── DependencyUnavailable  PostgreSQL or Redis did not answer
    StaleFencingToken              a lock holder lost its lock; never reaches a client,
                                   retriable (the batch is redelivered and re-decided)

Expected errors are these; anything else is a bug and becomes INTERNAL in the
server interceptor, with a log line.
"""

from __future__ import annotations

import grpc


class TicketingError(Exception):
    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    retriable: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(TicketingError):
    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


class NotFound(TicketingError):
    code = grpc.StatusCode.NOT_FOUND


class Unimplemented(TicketingError):
    code = grpc.StatusCode.UNIMPLEMENTED


class Unavailable(TicketingError):
    code = grpc.StatusCode.UNAVAILABLE
    retriable = True

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        # Sent to the client as the `retry-after-ms` trailer.
        self.retry_after_s = retry_after_s


class BrokerUnavailable(Unavailable):
    pass


class DependencyUnavailable(Unavailable):
    pass


class StaleFencingToken(Exception):
    """PostgreSQL refused a write: another holder has taken the event's lock since."""

    retriable = True

    def __init__(self, event_id: str, token: int, stored: int) -> None:
        super().__init__(f"fencing token {token} for event {event_id} is older than {stored}")
        self.event_id = event_id
        self.token = token
        self.stored = stored
