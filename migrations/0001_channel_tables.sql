-- Chatwoot's own shape, created only when absent so the system can run on a Chatwoot database.
CREATE TABLE IF NOT EXISTS channel_facebook_pages (
    id serial PRIMARY KEY,
    account_id integer NOT NULL,
    page_id varchar NOT NULL,
    page_access_token varchar NOT NULL,
    user_access_token varchar NOT NULL,
    instagram_id varchar,
    created_at timestamp NOT NULL,
    updated_at timestamp NOT NULL,
    UNIQUE (page_id, account_id)
);

CREATE TABLE IF NOT EXISTS inboxes (
    id serial PRIMARY KEY,
    account_id integer NOT NULL,
    channel_id integer NOT NULL,
    channel_type varchar NOT NULL,
    name varchar NOT NULL,
    created_at timestamp NOT NULL,
    updated_at timestamp NOT NULL
);

-- The inbox of a channel, and the inboxes of an account, are what the API and the cycle look up.
CREATE INDEX IF NOT EXISTS fbtr_inboxes_channel ON inboxes (channel_type, channel_id);
CREATE INDEX IF NOT EXISTS fbtr_inboxes_account ON inboxes (account_id);
