-- The gateways keep each event's sale terms in memory. A change that decides
-- whether the sale takes a request (seats free or held, the sale's state,
-- its window) tells them at commit, on this channel, so a sell-out, or seats
-- coming back, reach them at once rather than at their next re-read.
-- (NOTIFY sends one message per event and transaction, after the commit.)
CREATE FUNCTION ticketing_event_terms_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('ticketing_event_terms', NEW.event_id::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER event_terms_changed
    AFTER UPDATE ON events
    FOR EACH ROW
    WHEN (OLD.available IS DISTINCT FROM NEW.available
          OR OLD.held IS DISTINCT FROM NEW.held
          OR OLD.sale_state IS DISTINCT FROM NEW.sale_state
          OR OLD.sale_start_at IS DISTINCT FROM NEW.sale_start_at
          OR OLD.sale_end_at IS DISTINCT FROM NEW.sale_end_at)
    EXECUTE FUNCTION ticketing_event_terms_changed();
