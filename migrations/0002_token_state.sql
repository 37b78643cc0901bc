-- Written to be re-runnable (IF NOT EXISTS): a database of the first layout, whose tables lived in
-- `public`, has them moved into DATABASE_SCHEMA before these run (store/schema.rs).
-- Current token state per channel: one row, overwritten by every job that settles something.
CREATE TABLE IF NOT EXISTS fb_token_states (
    channel_id integer PRIMARY KEY,
    status text NOT NULL DEFAULT 'unknown'
        CHECK (status IN ('healthy', 'refreshed', 'reauthorization_required', 'retrying', 'unknown')),
    token_valid boolean,
    consecutive_failures integer NOT NULL DEFAULT 0,
    last_checked_at timestamptz,
    last_refreshed_at timestamptz,
    last_error_kind text,
    last_error_code integer,
    last_error_subcode integer,
    last_error_message text,
    next_attempt_at timestamptz,
    expires_at timestamptz,
    data_access_expires_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS fb_token_states_status ON fb_token_states (status);

-- Append-only: every validation and refresh, with what Graph said and how long it took.
CREATE TABLE IF NOT EXISTS fb_token_events (
    id bigserial PRIMARY KEY,
    channel_id integer NOT NULL,
    job_id uuid NOT NULL,
    reason text NOT NULL,
    step text NOT NULL CHECK (step IN ('validate', 'refresh')),
    outcome text NOT NULL,
    graph_latency_ms integer,
    error_code integer,
    error_subcode integer,
    error_message text,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS fb_token_events_channel ON fb_token_events (channel_id, created_at DESC);
CREATE INDEX IF NOT EXISTS fb_token_events_created ON fb_token_events (created_at);
CREATE INDEX IF NOT EXISTS fb_token_events_job ON fb_token_events (job_id);
