-- Per-account API tokens. Only a SHA-256 of the token is kept: a database leak does not leak them.
CREATE TABLE IF NOT EXISTS fb_api_tokens (
    id bigserial PRIMARY KEY,
    account_id integer NOT NULL,
    token_sha256 text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);

CREATE INDEX IF NOT EXISTS fb_api_tokens_account ON fb_api_tokens (account_id);
