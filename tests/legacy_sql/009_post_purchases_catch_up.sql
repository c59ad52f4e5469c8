-- 005 was edited after a database could already have applied it (migrations are applied once,
-- by name): such a database kept the single-posting post_purchase function and a
-- post_purchases that may plan sequential scans. This brings it to what 005 now makes; on a
-- database that applied 005 as it now reads, both statements change nothing.
ALTER FUNCTION post_purchases SET enable_seqscan = off;
DROP FUNCTION IF EXISTS post_purchase;
