-- Seat holds, payments and the waitlist.
--
-- An event may have a seat price and a hold TTL: a winning request is then
-- HELD until paid (CONFIRMED) or expired (EXPIRED, seats released). A
-- request that finds no free seat while some are held waits, still QUEUED,
-- as a reservation row (the waitlist), in queue order.
ALTER TABLE events
    ADD COLUMN price_minor bigint NOT NULL DEFAULT 0 CHECK (price_minor >= 0),
    ADD COLUMN currency text NOT NULL DEFAULT ''
        CHECK (currency = '' OR currency ~ '^[A-Z]{3}$'),
    -- NULL: no holds, a winner is CONFIRMED at once (free events). A priced
    -- event holds seats for payment; a free one never does.
    ADD COLUMN hold_ttl_ms integer CHECK (hold_ttl_ms BETWEEN 1000 AND 86400000),
    ADD CONSTRAINT priced_events_hold CHECK ((price_minor = 0) = (hold_ttl_ms IS NULL)),
    ADD CONSTRAINT priced_events_currency CHECK ((price_minor = 0) = (currency = ''));

ALTER TABLE reservations
    -- While HELD: when the hold runs out.
    ADD COLUMN hold_expires_at timestamptz,
    -- What the seats cost (price times quantity when decided), if anything.
    ADD COLUMN amount_minor bigint NOT NULL DEFAULT 0 CHECK (amount_minor >= 0),
    ADD COLUMN currency text NOT NULL DEFAULT '',
    -- The latest payment attempt and where it stands (see payments).
    ADD COLUMN payment_id uuid,
    ADD COLUMN payment_status text;

-- The hold expiry worker's scan, and the waitlist in queue order: by when a
-- request started waiting (decided_at of a waiting row; transactions that
-- waitlist run one at a time per event), then by its offset in the partition.
CREATE INDEX reservations_holds ON reservations (hold_expires_at) WHERE status = 'HELD';
CREATE INDEX reservations_waitlist ON reservations (event_id, decided_at, source_offset)
    WHERE status = 'QUEUED';

-- One row per payment attempt: the saga's durable state. Each step changes
-- the status in one transaction with the event that announces it (outbox).
CREATE TABLE payments (
    payment_id      uuid PRIMARY KEY,
    reservation_id  uuid        NOT NULL REFERENCES reservations (reservation_id),
    user_id         text        NOT NULL,
    idempotency_key text        NOT NULL,
    method          text        NOT NULL,
    amount_minor    bigint      NOT NULL CHECK (amount_minor > 0),
    currency        text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    status          text        NOT NULL CHECK (status IN (
        'PENDING', 'AUTHORIZED', 'CAPTURING', 'CAPTURED', 'DECLINED',
        'VOIDING', 'VOIDED', 'REFUNDING', 'REFUNDED')),
    -- Why it ended where it did (declined, timed out, hold expired, ...).
    detail          text        NOT NULL DEFAULT '',
    -- The provider's reference for the authorization.
    provider_ref    text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    -- An authorization not settled by then is voided (the saga's timeout).
    deadline        timestamptz NOT NULL,
    UNIQUE (reservation_id, idempotency_key)
);

CREATE INDEX payments_open ON payments (updated_at)
    WHERE status NOT IN ('CAPTURED', 'DECLINED', 'VOIDED', 'REFUNDED');

-- The local payment provider's own books (a real provider keeps these on
-- its side): one row per payment and operation, so a repeated call is
-- recognised, and the ledger can check the money against them.
CREATE TABLE provider_operations (
    payment_id    uuid        NOT NULL,
    operation     text        NOT NULL
        CHECK (operation IN ('authorized', 'declined', 'captured', 'voided', 'refunded')),
    amount_minor  bigint      NOT NULL,
    at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (payment_id, operation)
);

-- Transactional outbox: records written in the same transaction as the state
-- change they announce, published to Kafka by a relay, then deleted.
CREATE TABLE outbox (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic       text        NOT NULL,
    key         bytea       NOT NULL,
    value       bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Whoever may write the outbox (the services' role, by the default
-- privileges the deployment set up) may also take published records out.
DO $$
DECLARE
    writer record;
BEGIN
    FOR writer IN
        SELECT DISTINCT grantee FROM information_schema.role_table_grants
        WHERE table_name = 'outbox' AND privilege_type = 'INSERT' AND grantee <> current_user
    LOOP
        EXECUTE format('GRANT DELETE ON outbox TO %I', writer.grantee);
    END LOOP;
END $$;
