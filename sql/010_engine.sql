-- TEMPORARY (becomes Alembic revision 0002 when the baseline lands): what the one posting engine needs.
DROP FUNCTION post_purchases;

-- a reward's cost in point-cents (what a return that voids it gives back)
ALTER TABLE rewards ADD COLUMN cost_point_cents bigint;
UPDATE rewards w SET cost_point_cents = -l.point_cents FROM ledger l
 WHERE l.reward_id = w.id AND l.kind = 'reward_issued';
ALTER TABLE rewards ALTER COLUMN cost_point_cents SET NOT NULL;
ALTER TABLE rewards ADD CONSTRAINT rewards_cost_point_cents_check CHECK (cost_point_cents > 0);

-- returns computed before points followed the units (by amount): `verify` cannot recompute them
ALTER TABLE purchase_returns ADD COLUMN by_units boolean NOT NULL DEFAULT false;
ALTER TABLE purchase_returns ALTER COLUMN by_units SET DEFAULT true;

-- who made each entry: exactly one of an API key, a guest session, the system (entries written
-- before this get `migrated`, through the column's default: the ledger is never updated)
ALTER TABLE ledger ADD COLUMN actor_key_id bigint REFERENCES api_keys;
ALTER TABLE ledger ADD COLUMN actor_session_id bigint;
ALTER TABLE ledger ADD COLUMN actor_system text DEFAULT 'migrated';
ALTER TABLE ledger ALTER COLUMN actor_system DROP DEFAULT;
ALTER TABLE ledger ADD CONSTRAINT ledger_one_actor CHECK (num_nonnulls(actor_key_id, actor_session_id, actor_system) = 1);

-- a reward voided by a return gives its points back; voided at cancellation, nothing
ALTER TABLE ledger DROP CONSTRAINT ledger_check5;
ALTER TABLE ledger ADD CONSTRAINT ledger_redeemed_moves_no_points CHECK (kind <> 'reward_redeemed' OR point_cents = 0);
ALTER TABLE ledger ADD CONSTRAINT ledger_voided_gives_back CHECK (kind <> 'reward_voided' OR point_cents >= 0);
