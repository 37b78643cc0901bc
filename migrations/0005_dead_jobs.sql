-- Jobs that used every attempt, and payloads that could not be decoded: kept with what went wrong
-- so an operator can look and re-drive them (producer retry-dead).
CREATE TABLE IF NOT EXISTS fb_dead_jobs (
    id bigserial PRIMARY KEY,
    job_id uuid,
    channel_id integer,
    reason text,
    attempts integer,
    error_kind text NOT NULL,
    error_code integer,
    error_subcode integer,
    error_message text,
    payload jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    redriven_at timestamptz
);

CREATE INDEX IF NOT EXISTS fb_dead_jobs_open ON fb_dead_jobs (channel_id) WHERE redriven_at IS NULL;
