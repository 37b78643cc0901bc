-- Chatwoot's own tables, created in `public` only where absent (an empty database, a demo, a
-- test): beside a real Chatwoot nothing here runs, so Chatwoot's schema is left exactly as its
-- own migrations made it. The shape and the index names are upstream's (db/schema.rb), so what we
-- query against works the same on both. Everything else of ours lives in DATABASE_SCHEMA.
DO $$
BEGIN
    IF to_regclass('public.channel_facebook_pages') IS NULL THEN
        CREATE TABLE public.channel_facebook_pages (
            id serial PRIMARY KEY,
            page_id varchar NOT NULL,
            user_access_token varchar NOT NULL,
            page_access_token varchar NOT NULL,
            account_id integer NOT NULL,
            created_at timestamp NOT NULL,
            updated_at timestamp NOT NULL,
            instagram_id varchar
        );
        CREATE UNIQUE INDEX index_channel_facebook_pages_on_page_id_and_account_id
            ON public.channel_facebook_pages (page_id, account_id);
        CREATE INDEX index_channel_facebook_pages_on_page_id ON public.channel_facebook_pages (page_id);
    END IF;
    IF to_regclass('public.inboxes') IS NULL THEN
        CREATE TABLE public.inboxes (
            id serial PRIMARY KEY,
            channel_id integer NOT NULL,
            account_id integer NOT NULL,
            name varchar NOT NULL,
            created_at timestamp NOT NULL,
            updated_at timestamp NOT NULL,
            -- NOT NULL as the contract has it; Chatwoot's own column allows NULL.
            channel_type varchar NOT NULL
        );
        CREATE INDEX index_inboxes_on_account_id ON public.inboxes (account_id);
        CREATE INDEX index_inboxes_on_channel_id_and_channel_type ON public.inboxes (channel_id, channel_type);
    END IF;
END
$$;
