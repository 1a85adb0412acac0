-- Seated events: the plan's sections and seats, each seat's state, and
-- what each reservation asked for and was given.
ALTER TABLE events
    ADD COLUMN seated boolean NOT NULL DEFAULT false,
    -- Raised by every change of any of the event's seats (seat_changes).
    ADD COLUMN seat_version bigint NOT NULL DEFAULT 0;

-- Sections in plan order (ordinal); a standing section has no rows.
CREATE TABLE event_sections (
    event_id uuid NOT NULL REFERENCES events (event_id),
    section_id text NOT NULL CHECK (section_id ~ '^[A-Za-z0-9._:-]{1,64}$'),
    ordinal int NOT NULL,
    name text NOT NULL DEFAULT '',
    -- NULL: the event's price.
    price_minor bigint CHECK (price_minor >= 0),
    standing boolean NOT NULL,
    capacity int NOT NULL CHECK (capacity >= 0),
    available int NOT NULL,
    held int NOT NULL DEFAULT 0,
    sold int NOT NULL DEFAULT 0,
    PRIMARY KEY (event_id, section_id),
    UNIQUE (event_id, ordinal),
    CHECK (available >= 0 AND held >= 0 AND sold >= 0 AND available + held + sold = capacity)
);

-- Every seat (and every place of a standing section, row_id '' and an id
-- with '~', which no plan's id has), and who has it. One row per seat,
-- with one reservation at most: a seat cannot be held or sold twice.
CREATE TABLE event_seats (
    event_id uuid NOT NULL,
    seat_id text NOT NULL,
    section_id text NOT NULL,
    row_id text NOT NULL,
    -- The row's place in its section, the seat's in its row.
    row_ordinal int NOT NULL,
    ordinal int NOT NULL,
    accessible boolean NOT NULL DEFAULT false,
    state text NOT NULL CHECK (state IN ('AVAILABLE', 'HELD', 'SOLD', 'BLOCKED')),
    reservation_id uuid REFERENCES reservations (reservation_id),
    PRIMARY KEY (event_id, seat_id),
    FOREIGN KEY (event_id, section_id) REFERENCES event_sections (event_id, section_id),
    -- Held and sold seats have their reservation; free and blocked ones none.
    CHECK ((state IN ('HELD', 'SOLD')) = (reservation_id IS NOT NULL))
);
CREATE INDEX event_seats_reservation ON event_seats (reservation_id)
    WHERE reservation_id IS NOT NULL;

-- What changed at each version of an event's seats, for WatchSeatMap:
-- the seats of seated sections as they became, and the sections' counts.
CREATE TABLE seat_changes (
    event_id uuid NOT NULL REFERENCES events (event_id),
    version bigint NOT NULL,
    seats jsonb NOT NULL,
    sections jsonb NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, version)
);

ALTER TABLE reservations DROP CONSTRAINT reservations_reject_reason_check;
ALTER TABLE reservations ADD CONSTRAINT reservations_reject_reason_check
    CHECK (reject_reason IN ('SOLD_OUT', 'LIMIT_EXCEEDED', 'SALE_CLOSED', 'EXPIRED_IN_QUEUE',
                             'INVALID', 'INTERNAL', 'SEAT_TAKEN', 'NO_SEATS_TOGETHER'));

ALTER TABLE reservations
    -- What a seated request asked for: a section, exact seats, accessible.
    ADD COLUMN ask_section text NOT NULL DEFAULT '',
    ADD COLUMN ask_seats text[] NOT NULL DEFAULT '{}',
    ADD COLUMN ask_accessible boolean NOT NULL DEFAULT false,
    -- The seats it was given: [[section_id, row_id, seat_id], ...].
    ADD COLUMN seats jsonb;
