-- The incentive-value report over ten million purchases (incentives/queries.py) reads columns,
-- not each purchase's JSON body, and not the ledger's earn entries.
--
-- Whether the Westique Credit Card paid part of a purchase (which makes its buyer a card
-- holder in the report), computed once when the purchase is written: testing the body's
-- JSON at report time cost more than reading the table.
ALTER TABLE purchases ADD COLUMN card_paid boolean NOT NULL
    GENERATED ALWAYS AS (body->'tenders' @> '[{"method": "westique_credit_card"}]') STORED;

-- The same statistics as 006, on the column: the planner then expects few card holders and
-- plans a parallel hash aggregate (the expression must stay the one in BOUGHT).
DROP STATISTICS purchases_card_member;
CREATE STATISTICS purchases_card_member (ndistinct)
    ON (CASE WHEN card_paid THEN member_id END), rules_version FROM purchases;

-- Points earned come from the purchases (point_cents, bonus_point_cents: the earn and
-- card_bonus entries' amounts); the few entries that take points back are found by index.
CREATE INDEX ledger_taken_back ON ledger (occurred_at) WHERE kind IN ('return', 'forfeit');
