-- Retention (shared/src/retention.rs) deletes history by age in batches; each batch finds its rows
-- through these instead of scanning the table (fb_token_events has its created_at index already).
-- Plain CREATE INDEX, in the migration's transaction: CONCURRENTLY would need one file per index.
-- It blocks writes to these two tables of ours (not Chatwoot's) while it builds, a few seconds
-- for millions of rows, once.
CREATE INDEX IF NOT EXISTS fb_send_failures_received ON fb_send_failures (received_at);
-- Only rows that retention may delete: undelivered ones stay whatever their age.
CREATE INDEX IF NOT EXISTS fb_webhook_deliveries_finished ON fb_webhook_deliveries (created_at)
    WHERE delivered_at IS NOT NULL OR given_up_at IS NOT NULL;
-- Whether a channel's last announced event was "needs reauthorization" (webhooks/event.rs): asked
-- when a channel comes back from `retrying` or `unknown`, so `token.healthy` is not sent after a
-- transient error nobody was told of.
CREATE INDEX IF NOT EXISTS fb_webhook_deliveries_channel ON fb_webhook_deliveries ((body->>'channel_id'), id DESC);
-- Endpoint URLs may carry credentials; new rows name their endpoint by the SHA-256 of the
-- WEBHOOK_URLS entry (resolved against the current list at delivery) and by its redacted form
-- (scheme, host, port, path) for operators. Rows queued before this keep their url.
ALTER TABLE fb_webhook_deliveries ALTER COLUMN url DROP NOT NULL;
ALTER TABLE fb_webhook_deliveries ADD COLUMN IF NOT EXISTS url_sha256 text;
ALTER TABLE fb_webhook_deliveries ADD COLUMN IF NOT EXISTS endpoint text;
-- Rows already queued (delivered ones included) lose their URL the same way; a deliverer of this
-- version still sends a row that carries one (an older worker may insert it during a rollout).
UPDATE fb_webhook_deliveries
SET url_sha256 = encode(sha256(convert_to(url, 'UTF8')), 'hex'),
    endpoint = regexp_replace(url, '^([^:/?#]+://)(?:[^@/?#]*@)?([^/?#]*)([^?#]*).*$', '\1\2\3'),
    url = NULL
WHERE url IS NOT NULL;
