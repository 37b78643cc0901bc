-- Retention (shared/src/retention.rs) deletes history by age in batches; each batch finds its rows
-- through these instead of scanning the table (fb_token_events has its created_at index already).
-- Plain CREATE INDEX, in the migration's transaction: CONCURRENTLY would need one file per index.
-- It blocks writes to these two tables of ours (not Chatwoot's) while it builds, a few seconds
-- for millions of rows, once.
CREATE INDEX IF NOT EXISTS fb_send_failures_received ON fb_send_failures (received_at);
-- Only rows that retention may delete: undelivered ones stay whatever their age.
CREATE INDEX IF NOT EXISTS fb_webhook_deliveries_finished ON fb_webhook_deliveries (created_at)
    WHERE delivered_at IS NOT NULL OR given_up_at IS NOT NULL;
