-- Queue TTL per event, and room for the records of requests that could not
-- be applied as sent (dead-lettered, REJECTED/INVALID): their fields may be
-- whatever the record carried.
ALTER TABLE events
    ADD COLUMN queue_ttl_ms integer NOT NULL DEFAULT 600000
        CHECK (queue_ttl_ms BETWEEN 1000 AND 86400000);

ALTER TABLE reservations DROP CONSTRAINT reservations_quantity_check;
ALTER TABLE reservations
    ADD CONSTRAINT reservations_quantity_check
        CHECK (quantity >= 1 OR reject_reason = 'INVALID');
