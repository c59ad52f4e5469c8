"""The engine's read for the desk's postings and the jobs' reward expiry: adjustments (their members locked unless replayed,
answered from what is stored when they are), merges (the members merged into a duplicate, and
those a merge committed while a batch waited for its locks), returns charged to the member a
duplicate was merged into, the rewards a returned purchase redeemed (a return may reinstate
them), every issued reward of the members whose expired rewards are put on the record (past their
expiry too), each reward's `expiry_notice_at`, and the members' merged_into and erased_at.
Replaces revision 0005's `engine_snapshot`; the reasons for its shape are written there.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from alembic import op

revision = "0010"
down_revision: str | None = "0009"
branch_labels: str | None = None
depends_on: str | None = None

OLD_SIGNATURE = ("engine_snapshot(bigint[], text[], text[], text[], text[], text[], bigint[], integer, integer, "
                 "integer, timestamptz, boolean)")

ENGINE_SNAPSHOT = """
CREATE FUNCTION engine_snapshot(
    p_member_ids      bigint[],     -- the members postings name (purchases, cancellations, merges, debts)
    p_member_keys     text[],       -- beside each, the key of its posting (NULL: none, always locked)
    p_returned        text[],       -- the purchases returns name
    p_return_keys     text[],       -- beside each, the return's key
    p_reward_codes    text[],       -- rewards tendered
    p_offer_codes     text[],       -- offers named
    p_cancels         bigint[],     -- members asked to cancel
    p_purchase_ids    integer,      -- new ids to draw for each table
    p_return_ids      integer,
    p_reward_ids      integer,
    p_open_at         timestamptz,  -- rewards unexpired then are the open ones (NULL: now)
    p_lock            boolean,      -- false for a quote: nothing locked, no id drawn
    p_adjusted        bigint[],     -- the members adjustments name
    p_adjustment_keys text[],       -- beside each, the adjustment's key
    p_merged          bigint[],     -- the duplicates merges name
    p_adjustment_ids  integer,
    p_expiring        bigint[]      -- members whose rewards past their expiry go on the record
) RETURNS text LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
DECLARE
    v_locking  bigint[];
    v_more     bigint[];
    v_merged   bigint[];
    v_follow   boolean;
    v_voiding  bigint[];
    v_members  json;
    v_now      timestamptz;
    v_open_at  timestamptz;
    v_rewards  jsonb := '[]';
    v_returnable json := '[]';
    v_purchases  json := '[]';
    v_returns    json := '[]';
    v_adjustments json := '[]';
    v_merges     json := '[]';
    v_offers     json := '{}';
    v_cancels    json := '[]';
BEGIN
    -- postings hold the rules lock shared, a rules publication exclusively (rewards/rulebook.py)
    PERFORM pg_advisory_xact_lock_shared(1381321797);
    -- The members of postings not made before (a replay is answered from what is stored).
    -- Every lookup here is a probe by key, one per value of the arrays: a scalar subquery, or a
    -- LATERAL subquery fenced with OFFSET 0 (or FOR UPDATE) so the planner cannot pull it up into
    -- a join and turn it around. The plans are generic, made once a connection: one made while
    -- the statistics said a table was empty (a new program, a table filled since it was last
    -- analyzed) otherwise scanned the whole table at every call, 2 to 6 ms a batch on a
    -- benchmark's 20,000 purchases. A part the batch does not ask for is not run.
    SELECT array_agg(x.member_id) INTO v_locking
    FROM unnest(p_member_ids, p_member_keys) AS x(member_id, key)
    WHERE x.key IS NULL OR (SELECT p.id FROM purchases p WHERE p.ext_id = x.key) IS NULL;
    IF cardinality(p_adjusted) > 0 THEN
        v_locking := v_locking || ARRAY(
            SELECT y.member_id FROM unnest(p_adjusted, p_adjustment_keys) AS y(member_id, key)
            WHERE (SELECT a.id FROM adjustments a WHERE a.ext_id = y.key) IS NULL);
    END IF;
    IF cardinality(p_returned) > 0 THEN
        -- a return charges the purchase's member, or the member it was merged into
        v_locking := v_locking || ARRAY(
            SELECT unnest(ARRAY[p.member_id, (SELECT b.merged_into FROM members b WHERE b.id = p.member_id)])
            FROM unnest(p_returned, p_return_keys) AS r(purchase_key, return_key)
            CROSS JOIN LATERAL (SELECT member_id FROM purchases WHERE ext_id = r.purchase_key OFFSET 0) p
            WHERE (SELECT x.id FROM purchase_returns x WHERE x.ext_id = r.return_key) IS NULL);
    END IF;
    IF cardinality(p_merged) > 0 THEN
        -- a merge re-points the members merged into its duplicate before
        v_locking := v_locking || ARRAY(
            SELECT m.id FROM unnest(p_merged) AS d(id)
            CROSS JOIN LATERAL (SELECT id FROM members WHERE merged_into = d.id AND merged_into IS NOT NULL OFFSET 0) m);
    END IF;
    IF p_lock THEN
        SELECT coalesce(json_agg(m ORDER BY m.id), '[]'), coalesce(bool_or(m.merged_into IS NOT NULL), false)
        INTO v_members, v_follow
        FROM (SELECT DISTINCT u.id FROM unnest(v_locking) AS u(id) ORDER BY u.id) AS l
        CROSS JOIN LATERAL (
            SELECT id, status, point_cents, rewards_issued, cancelled_at, merged_into, erased_at FROM members
            WHERE id = l.id FOR UPDATE) m;
        -- then those a merge committed while the batch waited made part of it: the member a locked
        -- duplicate now lives in, and any merged into a duplicate this batch merges. Once a member
        -- is locked no merge can involve it, so this ends (none is usually found).
        IF v_follow OR cardinality(p_merged) > 0 THEN
            v_merged := p_merged;
            LOOP
                SELECT array_agg(DISTINCT f.id ORDER BY f.id) INTO v_more FROM (
                    SELECT (SELECT merged_into FROM members WHERE id = l.id) AS id FROM unnest(v_locking) AS l(id)
                    UNION ALL
                    SELECT m.id FROM unnest(v_merged) AS d(id)
                    CROSS JOIN LATERAL (SELECT id FROM members WHERE merged_into = d.id AND merged_into IS NOT NULL OFFSET 0) m
                ) f WHERE f.id IS NOT NULL AND f.id <> ALL (v_locking);
                EXIT WHEN v_more IS NULL;
                PERFORM 1 FROM unnest(v_more) AS l(id)
                CROSS JOIN LATERAL (SELECT id FROM members WHERE id = l.id FOR UPDATE) m;
                v_locking := v_locking || v_more;
                v_merged := '{}';
            END LOOP;
            SELECT coalesce(json_agg(m ORDER BY m.id), '[]') INTO v_members
            FROM (SELECT DISTINCT unnest(v_locking)) AS l(id)
            CROSS JOIN LATERAL (
                SELECT id, status, point_cents, rewards_issued, cancelled_at, merged_into, erased_at FROM members
                WHERE id = l.id OFFSET 0) m;
        END IF;
    ELSE
        SELECT coalesce(json_agg(m ORDER BY m.id), '[]') INTO v_members
        FROM (SELECT DISTINCT unnest(v_locking)) AS l(id)
        CROSS JOIN LATERAL (
            SELECT id, status, point_cents, rewards_issued, cancelled_at, merged_into, erased_at FROM members
            WHERE id = l.id OFFSET 0) m;
    END IF;
    v_now := clock_timestamp();
    v_open_at := coalesce(p_open_at, v_now);

    -- the rewards the planner needs, part by part (a reward read twice is one to the planner)
    IF cardinality(p_reward_codes) > 0 THEN  -- tendered
        v_rewards := v_rewards || (SELECT coalesce(jsonb_agg(w), '[]') FROM unnest(p_reward_codes) AS c(code)
            CROSS JOIN LATERAL (
                SELECT id, code, member_id, ordinal, status, value_cents, cost_point_cents, issued_at, expires_at,
                       purchase_id, adjustment_id, redeemed_at, redeemed_purchase_id, voided_at, expiry_notice_at
                FROM rewards WHERE code = c.code OFFSET 0) w);
    END IF;
    -- the members whose open rewards a posting may void or move: those of returns (their purchases
    -- posted before, or in this batch, and the members they were merged into), of cancellations,
    -- and the duplicates merges name; a purchase needs only the rewards it tenders
    v_voiding := p_cancels || p_merged;
    IF cardinality(p_returned) > 0 THEN
        v_voiding := v_voiding || ARRAY(
            SELECT unnest(ARRAY[p.member_id, (SELECT b.merged_into FROM members b WHERE b.id = p.member_id)])
            FROM unnest(p_returned) AS r(purchase_key)
            CROSS JOIN LATERAL (SELECT member_id FROM purchases WHERE ext_id = r.purchase_key OFFSET 0) p)
            || ARRAY(SELECT x.member_id FROM unnest(p_member_ids, p_member_keys) AS x(member_id, key)
                     WHERE x.key = ANY (p_returned));
        -- and what the returned purchases redeemed: a return may reinstate it
        v_rewards := v_rewards || (SELECT coalesce(jsonb_agg(w), '[]') FROM unnest(p_returned) AS r(purchase_key)
            CROSS JOIN LATERAL (SELECT id FROM purchases WHERE ext_id = r.purchase_key OFFSET 0) p
            CROSS JOIN LATERAL (
                SELECT id, code, member_id, ordinal, status, value_cents, cost_point_cents, issued_at, expires_at,
                       purchase_id, adjustment_id, redeemed_at, redeemed_purchase_id, voided_at, expiry_notice_at
                FROM rewards WHERE redeemed_purchase_id = p.id AND status = 'redeemed' OFFSET 0) w);
    END IF;
    IF cardinality(v_voiding) > 0 THEN
        v_rewards := v_rewards || (SELECT coalesce(jsonb_agg(w), '[]') FROM (SELECT DISTINCT unnest(v_voiding)) AS m(id)
            CROSS JOIN LATERAL (
                SELECT id, code, member_id, ordinal, status, value_cents, cost_point_cents, issued_at, expires_at,
                       purchase_id, adjustment_id, redeemed_at, redeemed_purchase_id, voided_at, expiry_notice_at
                FROM rewards WHERE member_id = m.id AND status = 'issued' AND expires_at > v_open_at OFFSET 0) w
            WHERE m.id IS NOT NULL);
    END IF;
    IF cardinality(p_expiring) > 0 THEN  -- every issued reward, past its expiry too
        v_rewards := v_rewards || (SELECT coalesce(jsonb_agg(w), '[]') FROM unnest(p_expiring) AS m(id)
            CROSS JOIN LATERAL (
                SELECT id, code, member_id, ordinal, status, value_cents, cost_point_cents, issued_at, expires_at,
                       purchase_id, adjustment_id, redeemed_at, redeemed_purchase_id, voided_at, expiry_notice_at
                FROM rewards WHERE member_id = m.id AND status = 'issued' OFFSET 0) w);
    END IF;

    IF cardinality(p_returned) > 0 THEN
        SELECT coalesce(json_agg(json_build_object(
            'id', p.id, 'ext_id', p.ext_id, 'member_id', p.member_id, 'occurred_at', p.occurred_at,
            'rules_version', p.rules_version, 'lines', p.body->'lines', 'tenders', p.body->'tenders',
            'returns', coalesce((SELECT json_agg(r.body->'request'->'lines' ORDER BY r.id)
                                 FROM purchase_returns r WHERE r.purchase_id = p.id), '[]'))), '[]')
        INTO v_returnable FROM unnest(p_returned) AS k(ext_id)
        CROSS JOIN LATERAL (SELECT * FROM purchases WHERE ext_id = k.ext_id OFFSET 0) p;
        SELECT coalesce(json_agg(json_build_object(
            'ext_id', r.ext_id, 'purchase_ext_id', (SELECT ext_id FROM purchases WHERE id = r.purchase_id),
            'fingerprint', r.fingerprint, 'point_cents_reversed', r.point_cents_reversed,
            'balance_after', r.balance_after,
            'voided', coalesce((SELECT json_agg(w.code ORDER BY l.id) FROM ledger l JOIN rewards w ON w.id = l.reward_id
                                WHERE l.return_id = r.id AND l.kind = 'reward_voided'), '[]'),
            'reinstated', coalesce((SELECT json_agg(w.code ORDER BY l.id) FROM ledger l
                                    JOIN rewards w ON w.id = l.reward_id
                                    WHERE l.return_id = r.id AND l.kind = 'reward_reinstated'), '[]'))), '[]')
        INTO v_returns FROM unnest(p_return_keys) AS k(ext_id)
        CROSS JOIN LATERAL (SELECT * FROM purchase_returns WHERE ext_id = k.ext_id OFFSET 0) r;
    END IF;
    -- the purchases posted before (a replay's answer)
    SELECT coalesce(json_agg(json_build_object(
        'ext_id', p.ext_id, 'fingerprint', p.fingerprint, 'member_id', p.member_id,
        'qualifying_cents', p.qualifying_cents, 'point_cents', p.point_cents,
        'bonus_point_cents', p.bonus_point_cents, 'balance_after', p.balance_after,
        'rewards_redeemed', p.rewards_redeemed,
        'issued', coalesce((SELECT json_agg(json_build_object('code', w.code, 'value_cents', w.value_cents,
                                                              'expires_at', w.expires_at) ORDER BY w.id)
                            FROM rewards w WHERE w.purchase_id = p.id), '[]'))), '[]')
    INTO v_purchases FROM unnest(p_member_keys) AS k(ext_id)
    CROSS JOIN LATERAL (SELECT * FROM purchases WHERE ext_id = k.ext_id OFFSET 0) p;
    IF cardinality(p_adjustment_keys) > 0 THEN
        SELECT coalesce(json_agg(json_build_object(
            'ext_id', a.ext_id, 'fingerprint', a.fingerprint, 'member_id', a.member_id,
            'point_cents', a.point_cents, 'balance_after', a.balance_after,
            'issued', coalesce((SELECT json_agg(json_build_object('code', w.code, 'value_cents', w.value_cents,
                                                                  'expires_at', w.expires_at) ORDER BY w.id)
                                FROM rewards w WHERE w.adjustment_id = a.id), '[]'))), '[]')
        INTO v_adjustments FROM unnest(p_adjustment_keys) AS k(ext_id)
        CROSS JOIN LATERAL (SELECT * FROM adjustments WHERE ext_id = k.ext_id OFFSET 0) a;
    END IF;
    IF cardinality(p_merged) > 0 THEN
        -- a duplicate merged before: the answer its merge gave, stored with the member it went into
        SELECT coalesce(json_agg(json_build_object('from_member_id', s.id, 'answer', c.details)), '[]')
        INTO v_merges FROM unnest(p_merged) AS d(id)
        CROSS JOIN LATERAL (SELECT id, merged_into FROM members WHERE id = d.id OFFSET 0) s
        CROSS JOIN LATERAL (SELECT details FROM member_changes
                            WHERE member_id = s.merged_into AND kind = 'merged_in' AND counterpart_member_id = s.id OFFSET 0) c;
    END IF;
    IF cardinality(p_offer_codes) > 0 THEN
        SELECT coalesce(json_object_agg(o.code, o.value_cents), '{}') INTO v_offers
        FROM (SELECT DISTINCT unnest(p_offer_codes)) AS k(code)
        CROSS JOIN LATERAL (SELECT code, value_cents FROM offers WHERE code = k.code OFFSET 0) o;
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
        INTO v_cancels FROM unnest(p_cancels) AS k(id)
        CROSS JOIN LATERAL (SELECT id FROM members WHERE id = k.id AND status = 'cancelled' OFFSET 0) m;
    END IF;
    RETURN json_build_object(
        'now', v_now, 'rules_version', (SELECT max(version) FROM program_rules), 'members', v_members,
        'rewards', v_rewards, 'returnable', v_returnable, 'prior_purchases', v_purchases,
        'prior_returns', v_returns, 'prior_adjustments', v_adjustments, 'prior_merges', v_merges,
        'offers', v_offers, 'cancellations', v_cancels,
        'ids', json_build_object(
            'purchases', ARRAY(SELECT nextval('purchases_id_seq') FROM generate_series(1, p_purchase_ids)),
            'returns', ARRAY(SELECT nextval('purchase_returns_id_seq') FROM generate_series(1, p_return_ids)),
            'rewards', ARRAY(SELECT nextval('rewards_id_seq') FROM generate_series(1, p_reward_ids)),
            'adjustments', ARRAY(SELECT nextval('adjustments_id_seq') FROM generate_series(1, p_adjustment_ids))))::text;
END $$
"""


def _revision_0005() -> str:
    """Revision 0005's function, to go back to (a revision file is never edited once applied)."""
    [path] = Path(__file__).parent.glob("0005_*.py")
    spec = importlib.util.spec_from_file_location("revision_0005", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.ENGINE_SNAPSHOT)


def upgrade() -> None:
    op.execute(f"DROP FUNCTION {OLD_SIGNATURE}")
    op.execute(ENGINE_SNAPSHOT)


def downgrade() -> None:
    op.execute("DROP FUNCTION engine_snapshot")
    op.execute(_revision_0005())
