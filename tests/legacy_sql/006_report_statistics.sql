-- The incentive-value report reads the period's purchases once, grouped by rules version and,
-- for purchases paid with the Westique Credit Card, by member (incentives/queries.py, BOUGHT).
-- Without statistics on that expression the planner takes every purchase for a group of its
-- own, and plans a sort of the whole period instead of a parallel hash aggregate over the
-- few card holders. The expression must stay the one in BOUGHT. Nothing is maintained at
-- posting time: ANALYZE fills these statistics.
CREATE STATISTICS purchases_card_member (ndistinct)
    ON (CASE WHEN body->'tenders' @> '[{"method": "westique_credit_card"}]' THEN member_id END), rules_version
    FROM purchases;
