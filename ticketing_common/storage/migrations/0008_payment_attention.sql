-- Payments that cannot get stuck unseen, in the order they were made.
--
-- seq: the order payments were made in, from one sequence: created_at is
-- stamped by whichever host took the payment, and two hosts' clocks may
-- disagree. A reservation shows its latest attempt by seq.
--
-- A step of the saga that fails (a capture, void or refund the provider
-- does not answer or refuses) is retried after a backoff: attempts counts
-- the failed attempts of the current step, last_error says what the last
-- one was, retry_at when the next may start. Once the retry budget is spent
-- the payment needs an operator (attention_since): the saga leaves it where
-- it stands until `ticketing-admin payments retry` gives it a new budget.
-- updated_at stays when the current step began (a failure does not move it).
ALTER TABLE payments
    ADD COLUMN seq bigint,
    ADD COLUMN attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    ADD COLUMN last_error text,
    ADD COLUMN retry_at timestamptz,
    ADD COLUMN attention_since timestamptz;

-- The payments made before this migration, in the best order known for them.
UPDATE payments p SET seq = numbered.n
FROM (SELECT payment_id, row_number() OVER (ORDER BY created_at, payment_id) AS n
      FROM payments) numbered
WHERE p.payment_id = numbered.payment_id;

ALTER TABLE payments
    ALTER COLUMN seq SET NOT NULL,
    ALTER COLUMN seq ADD GENERATED ALWAYS AS IDENTITY,
    ADD CONSTRAINT payments_seq_key UNIQUE (seq);
SELECT setval(pg_get_serial_sequence('payments', 'seq'), coalesce(max(seq), 0) + 1, false)
FROM payments;

-- The operator's list, and the services' gauge of it.
CREATE INDEX payments_attention ON payments (attention_since)
    WHERE attention_since IS NOT NULL;
