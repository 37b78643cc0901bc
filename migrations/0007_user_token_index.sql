-- The proactive check and the user-token exchange find every channel of one user token; without an
-- index that is a scan of the whole table per job. Hash: tokens are long and only compared for
-- equality.
CREATE INDEX IF NOT EXISTS fbtr_channels_user_token ON channel_facebook_pages USING hash (user_access_token);
