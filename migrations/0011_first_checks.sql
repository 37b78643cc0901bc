-- A cycle's first check of a channel that finds it healthy gets no fb_token_events row either: the
-- channel had no status to change from, and at 100,000 new channels those rows were a quarter of
-- the first cycle's Postgres work. The batch's row counts them here instead.
ALTER TABLE fb_validation_batches ADD COLUMN IF NOT EXISTS first_checks integer NOT NULL DEFAULT 0;
