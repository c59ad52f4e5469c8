-- Balances are a cache updated by every posting. With room left on each page, that update
-- is a HOT update (no new entry in any of the members' four indexes); with full pages,
-- every posting would add an entry to each index and bloat them. Applies to pages written
-- from now on.
ALTER TABLE members SET (fillfactor = 70);
