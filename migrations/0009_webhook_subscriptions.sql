-- Whether each channel's page still sends its webhooks to this app (GET /{page_id}/subscribed_apps),
-- and the re-subscription we owe it (shared/src/subscriptions). One row per channel, overwritten by
-- every check. A due retry is a row with retry_at set: worker processes claim due rows with
-- FOR UPDATE SKIP LOCKED and push retry_at forward by a lease while they call Graph, so several
-- replicas never retry one page at once, and a retry survives a restart.
CREATE TABLE IF NOT EXISTS fb_page_subscriptions (
    channel_id integer PRIMARY KEY,
    state text NOT NULL DEFAULT 'unknown'
        CHECK (state IN ('subscribed', 'resubscribed', 'missing', 'failed', 'unknown')),
    -- When Graph last answered the check (a check that failed does not move it).
    checked_at timestamptz,
    resubscribed_at timestamptz,
    -- Scrubbed like every Graph text before it gets here: no token, no secret.
    last_error_kind text,
    last_error_code integer,
    last_error_subcode integer,
    last_error_message text,
    -- The next retry, or the end of the lease of one under way; NULL: none due.
    retry_at timestamptz,
    -- Failed attempts in a row since the last success (kept when no attempt is left).
    retry_attempts integer NOT NULL DEFAULT 0,
    -- The job whose token write or check asked for this, for the history of its retries.
    job_id uuid,
    reason text,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS fb_page_subscriptions_due ON fb_page_subscriptions (retry_at) WHERE retry_at IS NOT NULL;

-- Re-subscriptions and their failures join the history as step 'subscribe'. NOT VALID: the rows
-- already there passed the narrower check, so the table is not scanned; new rows are checked.
ALTER TABLE fb_token_events DROP CONSTRAINT IF EXISTS fb_token_events_step_check;
ALTER TABLE fb_token_events ADD CONSTRAINT fb_token_events_step_check
    CHECK (step IN ('validate', 'refresh', 'subscribe')) NOT VALID;
