-- Every send failure the messaging service reported, and what was done about it.
CREATE TABLE IF NOT EXISTS fb_send_failures (
    id bigserial PRIMARY KEY,
    channel_id integer NOT NULL,
    error_kind text NOT NULL,
    error_code integer,
    error_subcode integer,
    error_message text,
    decision text NOT NULL,
    job_id uuid,
    received_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS fb_send_failures_channel ON fb_send_failures (channel_id, received_at DESC);
