-- One row per cycle batch in place of one fb_token_events row per channel that a cycle found
-- healthy and left healthy: at 100,000 channels every 6 h the per-channel rows were 400,000 a day
-- that said nothing an operator needs (fb_token_states.last_checked_at says when each channel was
-- last checked). Every state change, failure and refresh still gets its own fb_token_events row.
-- One row per account of the batch, so an account's dashboard counts its own channels only.
CREATE TABLE IF NOT EXISTS fb_validation_batches (
    job_id uuid NOT NULL,
    account_id integer NOT NULL,
    reason text NOT NULL,
    -- Channels the batch found healthy, and how many of them were healthy before (no event row).
    healthy integer NOT NULL,
    unchanged integer NOT NULL,
    -- The Graph batch call's time per item.
    graph_latency_ms integer,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, account_id)
);

CREATE INDEX IF NOT EXISTS fb_validation_batches_created ON fb_validation_batches (created_at);
