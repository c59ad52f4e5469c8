"""The engine's read: one call that takes the rules lock, locks a batch's members and reads what
its planner needs (rewards/engine/posting.py); and an index of the rewards still open.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None

# One round trip instead of two, and only the reads a batch needs: a batch of one purchase cost
# the database ~0.5 ms in the single statement that read every part whether asked for or not.
# Each statement in a PL/pgSQL function takes a snapshot of its own (read committed), so every
# read after the locks sees what the postings that held them committed. The members to lock are
# worked out first, as an array: a member another posting holds is read again when that posting
# commits, and only conditions on the member's own row are checked again then (a join in the
# locking query dropped such members). Plans are generic, made once a session: the arrays' sizes
# are unknown to the planner, and every lookup is by an indexed key, from a few values: no
# sequential scans (a plan made while a table was empty would scan it whole from then on), and
# no hash or merge joins (the planner, guessing 100 rows from each array, would hash a table).
ENGINE_SNAPSHOT = """
CREATE FUNCTION engine_snapshot(
    p_member_ids     bigint[],     -- the members postings name (purchases, cancellations, ...)
    p_member_keys    text[],       -- beside each, the key of its posting (NULL: none, always locked)
    p_returned       text[],       -- the purchases returns name
    p_return_keys    text[],       -- beside each, the return's key
    p_reward_codes   text[],       -- rewards tendered
    p_offer_codes    text[],       -- offers named
    p_cancels        bigint[],     -- members asked to cancel
    p_purchase_ids   integer,      -- new ids to draw for each table
    p_return_ids     integer,
    p_reward_ids     integer,
    p_open_at        timestamptz,  -- rewards unexpired then are the open ones (NULL: now)
    p_lock           boolean       -- false for a quote: nothing locked, no id drawn
) RETURNS text LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
DECLARE
    v_locking  bigint[];
    v_voiding  bigint[];
    v_members  json;
    v_now      timestamptz;
    v_open_at  timestamptz;
    v_returnable json := '[]';
    v_purchases  json := '[]';
    v_returns    json := '[]';
    v_offers     json := '{}';
    v_cancels    json := '[]';
    v_rewards    json;
BEGIN
    -- postings hold the rules lock shared, a rules publication exclusively (rewards/rulebook.py)
    PERFORM pg_advisory_xact_lock_shared(1381321797);
    -- the members of postings not made before: a replay is answered from what is stored
    SELECT array_agg(DISTINCT m) INTO v_locking FROM (
        SELECT x.member_id AS m FROM unnest(p_member_ids, p_member_keys) AS x(member_id, key)
        WHERE x.key IS NULL OR NOT EXISTS (SELECT 1 FROM purchases p WHERE p.ext_id = x.key)
        UNION ALL
        SELECT p.member_id FROM unnest(p_returned, p_return_keys) AS r(purchase_key, return_key)
        JOIN purchases p ON p.ext_id = r.purchase_key
        WHERE NOT EXISTS (SELECT 1 FROM purchase_returns x WHERE x.ext_id = r.return_key)) asked;
    IF p_lock THEN
        SELECT coalesce(json_agg(m ORDER BY m.id), '[]') INTO v_members FROM (
            SELECT id, status, point_cents, rewards_issued, cancelled_at FROM members
            WHERE id = ANY (v_locking) ORDER BY id FOR UPDATE) m;
    ELSE
        SELECT coalesce(json_agg(m ORDER BY m.id), '[]') INTO v_members FROM (
            SELECT id, status, point_cents, rewards_issued, cancelled_at FROM members
            WHERE id = ANY (v_locking)) m;
    END IF;
    v_now := clock_timestamp();
    v_open_at := coalesce(p_open_at, v_now);
    -- members whose open rewards a posting may void: those of returns (their purchases posted
    -- before, or in this batch) and of cancellations; a purchase needs only the rewards it tenders
    SELECT array_agg(DISTINCT m) INTO v_voiding FROM (
        SELECT p.member_id AS m FROM purchases p WHERE p.ext_id = ANY (p_returned)
        UNION ALL
        SELECT x.member_id FROM unnest(p_member_ids, p_member_keys) AS x(member_id, key)
        WHERE x.key = ANY (p_returned)
        UNION ALL
        SELECT unnest(p_cancels)) voiding;

    SELECT coalesce(json_agg(w), '[]') INTO v_rewards FROM (
        SELECT id, code, member_id, ordinal, status, value_cents, cost_point_cents, issued_at, expires_at,
               purchase_id, redeemed_at, redeemed_purchase_id, voided_at
        FROM rewards WHERE code = ANY (p_reward_codes)
        UNION
        SELECT id, code, member_id, ordinal, status, value_cents, cost_point_cents, issued_at, expires_at,
               purchase_id, redeemed_at, redeemed_purchase_id, voided_at
        FROM rewards WHERE member_id = ANY (v_voiding) AND status = 'issued' AND expires_at > v_open_at) w;
    IF cardinality(p_returned) > 0 THEN
        SELECT coalesce(json_agg(json_build_object(
            'id', p.id, 'ext_id', p.ext_id, 'member_id', p.member_id, 'occurred_at', p.occurred_at,
            'rules_version', p.rules_version, 'lines', p.body->'lines', 'tenders', p.body->'tenders',
            'returns', coalesce((SELECT json_agg(r.body->'request'->'lines' ORDER BY r.id)
                                 FROM purchase_returns r WHERE r.purchase_id = p.id), '[]'))), '[]')
        INTO v_returnable FROM purchases p WHERE p.ext_id = ANY (p_returned);
        SELECT coalesce(json_agg(json_build_object(
            'ext_id', r.ext_id, 'purchase_ext_id', p.ext_id, 'fingerprint', r.fingerprint,
            'point_cents_reversed', r.point_cents_reversed, 'balance_after', r.balance_after,
            'voided', coalesce((SELECT json_agg(w.code ORDER BY l.id) FROM ledger l JOIN rewards w ON w.id = l.reward_id
                                WHERE l.return_id = r.id AND l.kind = 'reward_voided'), '[]'))), '[]')
        INTO v_returns
        FROM purchase_returns r JOIN purchases p ON p.id = r.purchase_id WHERE r.ext_id = ANY (p_return_keys);
    END IF;
    SELECT coalesce(json_agg(json_build_object(
        'ext_id', p.ext_id, 'fingerprint', p.fingerprint, 'member_id', p.member_id,
        'qualifying_cents', p.qualifying_cents, 'point_cents', p.point_cents,
        'bonus_point_cents', p.bonus_point_cents, 'balance_after', p.balance_after,
        'rewards_redeemed', p.rewards_redeemed,
        'issued', coalesce((SELECT json_agg(json_build_object('code', w.code, 'value_cents', w.value_cents,
                                                              'expires_at', w.expires_at) ORDER BY w.ordinal)
                            FROM rewards w WHERE w.purchase_id = p.id), '[]'))), '[]')
    INTO v_purchases FROM purchases p WHERE p.ext_id = ANY (p_member_keys);
    IF cardinality(p_offer_codes) > 0 THEN
        SELECT coalesce(json_object_agg(code, value_cents), '{}') INTO v_offers
        FROM offers WHERE code = ANY (p_offer_codes);
    END IF;
    IF cardinality(p_cancels) > 0 THEN
        SELECT coalesce(json_agg(json_build_object(
            'member_id', m.id,
            'forfeited', (SELECT coalesce(-sum(point_cents), 0) FROM ledger
                          WHERE member_id = m.id AND kind = 'forfeit'),
            'voided', coalesce((SELECT json_agg(w.code ORDER BY w.ordinal) FROM ledger l
                                JOIN rewards w ON w.id = l.reward_id
                                WHERE l.member_id = m.id AND l.kind = 'reward_voided' AND l.return_id IS NULL),
                               '[]'))), '[]')
        INTO v_cancels FROM members m WHERE m.id = ANY (p_cancels) AND m.status = 'cancelled';
    END IF;
    RETURN json_build_object(
        'now', v_now, 'rules_version', (SELECT max(version) FROM program_rules), 'members', v_members,
        'rewards', v_rewards, 'returnable', v_returnable, 'prior_purchases', v_purchases,
        'prior_returns', v_returns, 'offers', v_offers, 'cancellations', v_cancels,
        'ids', json_build_object(
            'purchases', ARRAY(SELECT nextval('purchases_id_seq') FROM generate_series(1, p_purchase_ids)),
            'returns', ARRAY(SELECT nextval('purchase_returns_id_seq') FROM generate_series(1, p_return_ids)),
            'rewards', ARRAY(SELECT nextval('rewards_id_seq') FROM generate_series(1, p_reward_ids))))::text;
END $$
"""


def upgrade() -> None:
    op.execute(ENGINE_SNAPSHOT)
    # a member's open rewards, read by every posting for them and every balance: without it, all
    # the member's rewards ever issued were fetched to find the few still issued
    op.create_index("rewards_open", "rewards", ["member_id"], postgresql_where="status = 'issued'")


def downgrade() -> None:
    op.drop_index("rewards_open", table_name="rewards")
    op.execute("DROP FUNCTION engine_snapshot")
