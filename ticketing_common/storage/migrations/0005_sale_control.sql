-- Sale control: an event's sale can be paused (requests wait, in order, on
-- the waitlist), resumed, or closed (waiting and later requests are
-- REJECTED/SALE_CLOSED); and it may have a window outside which nothing is
-- queued.
ALTER TABLE events
    ADD COLUMN sale_state text NOT NULL DEFAULT 'OPEN'
        CHECK (sale_state IN ('OPEN', 'PAUSED', 'CLOSED')),
    ADD COLUMN sale_start_at timestamptz,
    ADD COLUMN sale_end_at timestamptz,
    ADD CONSTRAINT sale_window CHECK (sale_end_at IS NULL OR sale_start_at IS NULL
                                      OR sale_end_at > sale_start_at),
    -- Token tiers whose requests are decided first (the priority lane).
    ADD COLUMN priority_tiers text[] NOT NULL DEFAULT '{}';

-- A request's lane: 1 for the priority lane. The waitlist serves the
-- priority lane first, then each lane in queue order.
ALTER TABLE reservations ADD COLUMN lane smallint NOT NULL DEFAULT 0 CHECK (lane IN (0, 1));
DROP INDEX reservations_waitlist;
CREATE INDEX reservations_waitlist ON reservations (event_id, lane DESC, decided_at, source_offset)
    WHERE status = 'QUEUED';

-- Listing (oldest first): events, an event's reservations, a customer's own.
CREATE INDEX reservations_event_listing ON reservations (event_id, accepted_at, reservation_id);
CREATE INDEX reservations_user_listing ON reservations (user_id, accepted_at, reservation_id);
CREATE INDEX events_listing ON events (created_at, event_id);
