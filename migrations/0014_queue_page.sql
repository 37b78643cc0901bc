-- The queue page (issue 14): dead letters an operator discards, the cycles it lists, and the
-- history of what operators did from it.

-- A discarded dead letter is closed without a new job: "open" is neither re-driven nor discarded.
ALTER TABLE fb_dead_jobs ADD COLUMN IF NOT EXISTS discarded_at timestamptz;
DROP INDEX IF EXISTS fb_dead_jobs_open;
CREATE INDEX IF NOT EXISTS fb_dead_jobs_open ON fb_dead_jobs (channel_id)
    WHERE redriven_at IS NULL AND discarded_at IS NULL;

-- One row per refresh cycle (a cron tick, `producer run-job`, "Run cycle now"): when it started,
-- who started it, and what it enqueued. Its results are the cycle's events and batch rows, read
-- by time; the enqueue itself is what only the producer knows.
CREATE TABLE IF NOT EXISTS fb_cycles (
    id bigserial PRIMARY KEY,
    trigger text NOT NULL,
    started_by text,
    started_at timestamptz NOT NULL DEFAULT now(),
    enqueued_at timestamptz,
    enqueued integer,
    skipped integer,
    error text
);
CREATE INDEX IF NOT EXISTS fb_cycles_started ON fb_cycles (started_at DESC);

-- What operators did by hand (queue page actions), with who and on what: an audit trail kept
-- apart from the token history, which is per channel and pruned by HISTORY_RETENTION_DAYS.
CREATE TABLE IF NOT EXISTS fb_operator_actions (
    id bigserial PRIMARY KEY,
    actor text NOT NULL,
    action text NOT NULL,
    target text,
    outcome text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS fb_operator_actions_created ON fb_operator_actions (created_at DESC);
