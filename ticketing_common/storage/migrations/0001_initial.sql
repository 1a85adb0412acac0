-- Events and reservations. PostgreSQL is the source of truth; the CHECKs are
-- the last line of defence behind the consumer's decisions.
CREATE TABLE events (
    event_id        uuid PRIMARY KEY,
    name            text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    capacity        integer     NOT NULL CHECK (capacity >= 1),
    available       integer     NOT NULL CHECK (available >= 0),
    held            integer     NOT NULL DEFAULT 0 CHECK (held >= 0),
    confirmed       integer     NOT NULL DEFAULT 0 CHECK (confirmed >= 0),
    per_user_limit  integer     NOT NULL CHECK (per_user_limit BETWEEN 1 AND capacity),
    -- Highest fencing token that has written this event's decisions; a batch
    -- carrying a lower token comes from a holder whose Redis lock expired.
    fence_token     bigint      NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT seats_balance CHECK (capacity = available + held + confirmed)
);

CREATE TABLE reservations (
    reservation_id  uuid PRIMARY KEY,
    -- No foreign key: a request naming an unknown event is still recorded,
    -- as REJECTED/INVALID, so every accepted request has exactly one row.
    event_id        uuid        NOT NULL,
    user_id         text        NOT NULL,
    quantity        integer     NOT NULL CHECK (quantity >= 1),
    status          text        NOT NULL
        CHECK (status IN ('QUEUED', 'HELD', 'CONFIRMED', 'REJECTED', 'EXPIRED', 'CANCELLED')),
    reject_reason   text
        CHECK (reject_reason IN ('SOLD_OUT', 'LIMIT_EXCEEDED', 'SALE_CLOSED',
                                 'EXPIRED_IN_QUEUE', 'INVALID', 'INTERNAL')),
    idempotency_key text        NOT NULL,
    accepted_at     timestamptz NOT NULL,
    decided_at      timestamptz NOT NULL,
    -- Where the deciding record sat in the requests topic (for the ledger).
    source_partition integer    NOT NULL,
    source_offset   bigint      NOT NULL,
    fence_token     bigint      NOT NULL,
    CHECK ((status = 'REJECTED') = (reject_reason IS NOT NULL))
);

-- Per-user limits sum a user's seats for one event.
CREATE INDEX reservations_event_user ON reservations (event_id, user_id);
