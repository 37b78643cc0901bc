-- Every cycle updates every row of fb_token_states once, a batch of 50 neighbouring channels in
-- one transaction. With full pages (the default fillfactor 100) each update lands on another page
-- and adds an entry to both indexes; with room left on the page it is a heap-only (HOT) update:
-- no index entry, less WAL. Half the page leaves room for a whole batch's new row versions (the
-- old ones are pruned when the next cycle reads the page). The table stays small (100,000 rows,
-- a few MB). Existing pages keep their layout until rewritten; new rows get the room.
ALTER TABLE fb_token_states SET (fillfactor = 50);
