-- Which channels share a user token. The cycle's "one sweep per user token", the proactive check
-- and the user-token exchange need "every channel of this user token"; Chatwoot encrypts the
-- column with a fresh IV per row, so equal tokens are unequal ciphertexts and no index on
-- Chatwoot's column (and no DDL on Chatwoot's table) can answer. This table keeps a SHA-256 of each
-- channel's decrypted user token (a digest, not the token: a leak of it gives nothing to send to
-- Graph), taken at the row's `updated_at`; a row whose `updated_at` moved is re-read before use.
CREATE TABLE IF NOT EXISTS fb_channel_user_tokens (
    channel_id integer PRIMARY KEY,
    user_token_sha256 bytea NOT NULL,
    channel_updated_at timestamp NOT NULL
);

CREATE INDEX IF NOT EXISTS fb_channel_user_tokens_digest ON fb_channel_user_tokens (user_token_sha256);
