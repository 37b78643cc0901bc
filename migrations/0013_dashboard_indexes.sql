-- The dashboard pages, counts and groups in SQL (issue 14). Chatwoot's tables get no index from
-- us (their primary keys and `index_inboxes_on_channel_id_and_channel_type`,
-- `index_channel_facebook_pages_on_page_id` serve the joins and the page-id search); these are on
-- our own tables only. Plain CREATE INDEX in the migration's transaction, as in 0008: both tables
-- are small (one row per channel; one per cycle batch and account).
--
-- "Needs attention" (the filter, and the rows sorted first on every page): a few rows out of
-- 100,000, found without reading the others. `consecutive_failures` in the predicate does not
-- cost the cycle its HOT updates: a healthy channel's update leaves it at 0, unchanged.
CREATE INDEX IF NOT EXISTS fb_token_states_attention ON fb_token_states (channel_id)
    WHERE status IN ('reauthorization_required', 'retrying') OR consecutive_failures > 0;
-- An account session's chart reads its own account's batch rows of the last 24 hours, not every
-- account's (2,000 rows per cycle at 100,000 channels).
CREATE INDEX IF NOT EXISTS fb_validation_batches_account ON fb_validation_batches (account_id, created_at);
