-- Every state change of a reservation raises its version and update time, so
-- a watcher or a poller tells a newer state from an older copy. QUEUED is
-- version 1 (it exists only in the queue); the row starts at the decision.
ALTER TABLE reservations
    ADD COLUMN version integer NOT NULL DEFAULT 2 CHECK (version >= 2),
    ADD COLUMN updated_at timestamptz;

UPDATE reservations SET updated_at = decided_at;

-- The default keeps consumers of the previous release writing while a
-- rollout replaces them (their INSERT does not name the new columns).
ALTER TABLE reservations
    ALTER COLUMN updated_at SET NOT NULL,
    ALTER COLUMN updated_at SET DEFAULT now();
