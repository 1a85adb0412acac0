-- Queue positions: the gateways number each event's requests as they accept
-- them (a counter in Redis), and the consumers record here, in the
-- transaction that decides them, the highest number decided so far. A new
-- request's place is then its number less this, plus the waitlist.
ALTER TABLE events ADD COLUMN decided_sequence bigint NOT NULL DEFAULT 0;
