-- Payments taken by a real provider (Stripe), and its webhooks.
--
-- provider: who took the payment ('local', the stand-in, or 'stripe'): the
-- ledger and `ticketing-admin payments reconcile` compare each payment with
-- that provider's books. event_id: the event the payment is for, named in
-- the provider's metadata. decline_code: the issuer's code for a decline
-- (insufficient_funds, ...). While a payment waits for the buyer's action
-- (3-D Secure), action_type, client_secret and redirect_url say what the
-- buyer's client must do; they are cleared once the provider has decided.
-- refund_ref: the provider's reference of the refund. authorize_sent_at:
-- when the authorization was first sent to the provider (a payment voided
-- before that has nothing to release there).
ALTER TABLE payments
    ADD COLUMN provider text NOT NULL DEFAULT 'local' CHECK (provider IN ('local', 'stripe')),
    ADD COLUMN event_id uuid,
    ADD COLUMN decline_code text,
    ADD COLUMN action_type text,
    ADD COLUMN client_secret text,
    ADD COLUMN redirect_url text,
    ADD COLUMN refund_ref text,
    ADD COLUMN authorize_sent_at timestamptz;

UPDATE payments p SET event_id = r.event_id
FROM reservations r WHERE r.reservation_id = p.reservation_id;

ALTER TABLE payments ALTER COLUMN event_id SET NOT NULL;

-- A webhook names the provider's reference; the reconciliation ranges by time.
CREATE INDEX payments_provider_ref ON payments (provider_ref) WHERE provider_ref IS NOT NULL;
CREATE INDEX payments_created ON payments (created_at);

-- Each provider event applied once, by its id (providers deliver at least
-- once, in any order); outcome says what it did to the payment.
CREATE TABLE provider_events (
    event_id    text        PRIMARY KEY,
    type        text        NOT NULL,
    payment_id  uuid,
    outcome     text        NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
