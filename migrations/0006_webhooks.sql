-- Webhook outbox: one row per (event, endpoint). A status change inserts its rows in the same
-- process that settled the job (a cheap INSERT); delivery loops in every worker claim due rows with
-- FOR UPDATE SKIP LOCKED and push next_attempt_at forward by a lease while they POST, so each row is
-- sent by one deliverer at a time and a crashed deliverer's rows come back when the lease ends.
CREATE TABLE IF NOT EXISTS fb_webhook_deliveries (
    id bigserial PRIMARY KEY,
    event_id uuid NOT NULL,
    url text NOT NULL,
    body jsonb NOT NULL,
    -- POSTs made so far (the successful one included).
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    delivered_at timestamptz,
    -- Set when the last attempt failed: the row is kept for operators and never sent again.
    given_up_at timestamptz,
    last_status integer,
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- The deliverers' claim: undelivered rows that are due, oldest first.
CREATE INDEX IF NOT EXISTS fb_webhook_deliveries_due ON fb_webhook_deliveries (next_attempt_at)
    WHERE delivered_at IS NULL AND given_up_at IS NULL;
CREATE INDEX IF NOT EXISTS fb_webhook_deliveries_event ON fb_webhook_deliveries (event_id);
