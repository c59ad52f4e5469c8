"""Baseline: the schema as the nine plain-SQL migrations of the old runner left it (001..009).

A database built by that runner is recognised and stamped with this revision instead of
being built again (rewards/migrations.py). This file never changes once applied, even when
rewards/tables.py does: the schema moves on in later revisions.

Revision ID: 0001
Revises:
Create Date: 2026-03-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

NOW = sa.text("now()")


def _timestamptz() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _id() -> sa.Column[int]:
    return sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False)


# Entries are inserted, never updated or deleted (the ledger, the consent record).
APPEND_ONLY = """CREATE FUNCTION ledger_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only: % refused', TG_OP USING ERRCODE = 'restrict_violation';
END $$"""

# Posting a batch of purchases in one round trip: what group commit sends (rewards/ledger.py).
#
# Item by item: a replay or a conflict by purchase_id (an earlier posting, or an earlier item of
# this batch), an unknown or inactive member, an unknown or exceeded offer, a reward that cannot
# be redeemed. The members are locked once, in id order, and their balances walked in item
# order; then the purchases, the rewards they issue, the redemptions, the ledger entries and the
# balances are written with one statement each for the whole batch. The earning itself is
# computed by rewards/rules.py and passed in. A refused item writes nothing; the others still
# post. Outcomes come back one row per item, in item order.
POST_PURCHASES = """CREATE FUNCTION post_purchases(
    p_ext_ids          text[],
    p_member_ids       bigint[],
    p_occurred_at      timestamptz[],
    p_rules_versions   integer[],
    p_fingerprints     bytea[],
    p_bodies           text[],        -- the canonical request, JSON text
    p_qualifying       bigint[],
    p_card             bigint[],
    p_base             bigint[],
    p_bonus            bigint[],
    p_thresholds       bigint[],      -- point-cents a reward costs, by the item's rules
    p_reward_values    bigint[],
    p_validity_days    integer[],
    p_tender_items     integer[],     -- rewards tendered: the item, the code, the amount
    p_tender_codes     text[],
    p_tender_amounts   bigint[],
    p_offer_items      integer[],     -- offers named: the item, the code, the discount
    p_offer_codes      text[],
    p_offer_discounts  bigint[]
) RETURNS TABLE (
    item              integer,
    outcome           text,
    detail            text,
    member_id         bigint,
    qualifying_cents  bigint,
    point_cents       bigint,
    bonus_point_cents bigint,
    balance_after     bigint,
    issued_codes      text[],
    issued_values     bigint[],
    issued_expires    timestamptz[],
    redeemed          text[]
) LANGUAGE plpgsql
-- Its statements take arrays, whose sizes the planner cannot know: a custom plan per call costs
-- more than the statement (a single posting took 2.7 ms of server CPU, 1.3 ms with generic plans).
-- A generic plan is kept for the session, so one made while a table was still empty (a new
-- program) would scan it whole at every call from then on; every lookup here is by an indexed
-- key, so sequential scans are ruled out.
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
AS $$
#variable_conflict use_column
DECLARE
    n            integer := coalesce(cardinality(p_ext_ids), 0);
    -- the batch's members, locked in id order; balances walked item by item
    m_ids        bigint[];
    m_status     text[];
    m_balance    bigint[];
    m_issued     integer[];
    m_changed    boolean[];
    -- purchases posted before under these keys
    pr_ext       text[];
    pr_id        bigint[];
    pr_member    bigint[];
    pr_fp        bytea[];
    pr_qual      bigint[];
    pr_points    bigint[];
    pr_bonus     bigint[];
    pr_balance   bigint[];
    pr_redeemed  text[];                -- comma-joined (arrays of arrays must be rectangular)
    -- the rewards tendered, locked; and the offers named
    w_code       text[];
    w_id         bigint[];
    w_member     bigint[];
    w_status     text[];
    w_issued     timestamptz[];
    w_expires    timestamptz[];
    w_value      bigint[];
    o_code       text[];
    o_value      bigint[];
    -- the answer, item by item
    r_outcome    text[] := array_fill(NULL::text, ARRAY[n]);
    r_detail     text[] := array_fill(NULL::text, ARRAY[n]);
    r_member     bigint[] := array_fill(NULL::bigint, ARRAY[n]);
    r_qual       bigint[] := array_fill(NULL::bigint, ARRAY[n]);
    r_points     bigint[] := array_fill(NULL::bigint, ARRAY[n]);
    r_bonus      bigint[] := array_fill(NULL::bigint, ARRAY[n]);
    r_balance    bigint[] := array_fill(NULL::bigint, ARRAY[n]);
    r_redeemed   text[] := array_fill(NULL::text, ARRAY[n]);
    r_issued     integer[] := array_fill(0, ARRAY[n]);      -- rewards the item issues
    r_first      integer[] := array_fill(0, ARRAY[n]);      -- the member's ordinal of the first
    r_source     integer[] := array_fill(NULL::integer, ARRAY[n]);  -- an in-batch replay's item
    r_rewards_of bigint[] := array_fill(NULL::bigint, ARRAY[n]);    -- a replayed earlier posting's id
    red_reward   bigint[] := '{}';      -- redemptions: the reward, the item
    red_item     integer[] := '{}';
    created      integer := 0;
    i            integer;
    j            integer;
    k            integer;
    mk           integer;
    wk           integer;
    wks          integer[];
    balance      bigint;
    n_issued     integer;
    refusal      text;
    refused_code text;
BEGIN
    IF n = 0 THEN
        RETURN;
    END IF;

    SELECT array_agg(m.id ORDER BY m.id), array_agg(m.status ORDER BY m.id),
           array_agg(m.point_cents ORDER BY m.id), array_agg(m.rewards_issued ORDER BY m.id)
    INTO m_ids, m_status, m_balance, m_issued
    FROM (SELECT id, status, point_cents, rewards_issued FROM members
          WHERE id = ANY (p_member_ids) ORDER BY id FOR UPDATE) m;
    m_changed := array_fill(false, ARRAY[coalesce(cardinality(m_ids), 0)]);

    SELECT array_agg(p.ext_id), array_agg(p.id), array_agg(p.member_id), array_agg(p.fingerprint),
           array_agg(p.qualifying_cents), array_agg(p.point_cents), array_agg(p.bonus_point_cents),
           array_agg(p.balance_after), array_agg(array_to_string(p.rewards_redeemed, ','))
    INTO pr_ext, pr_id, pr_member, pr_fp, pr_qual, pr_points, pr_bonus, pr_balance, pr_redeemed
    FROM purchases p WHERE p.ext_id = ANY (p_ext_ids);

    IF cardinality(p_tender_codes) > 0 THEN
        SELECT array_agg(w.code), array_agg(w.id), array_agg(w.member_id), array_agg(w.status),
               array_agg(w.issued_at), array_agg(w.expires_at), array_agg(w.value_cents)
        INTO w_code, w_id, w_member, w_status, w_issued, w_expires, w_value
        FROM (SELECT * FROM rewards WHERE code = ANY (p_tender_codes) ORDER BY id FOR UPDATE) w;
    END IF;
    IF cardinality(p_offer_codes) > 0 THEN
        SELECT array_agg(f.code), array_agg(f.value_cents) INTO o_code, o_value
        FROM offers f WHERE f.code = ANY (p_offer_codes);
    END IF;

    FOR i IN 1 .. n LOOP
        -- the same key earlier in this batch, posted there: a replay of it, or a conflict
        IF cardinality(array_positions(p_ext_ids, p_ext_ids[i])) > 1 THEN
            FOREACH j IN ARRAY array_positions(p_ext_ids, p_ext_ids[i]) LOOP
                EXIT WHEN j >= i;
                IF r_outcome[j] = 'created' THEN
                    r_source[i] := j;
                END IF;
            END LOOP;
        END IF;
        IF r_source[i] IS NOT NULL THEN
            j := r_source[i];
            IF p_fingerprints[j] <> p_fingerprints[i] THEN
                r_outcome[i] := 'idempotency_conflict';
                r_detail[i] := p_ext_ids[i];
                r_source[i] := NULL;
            ELSE
                r_outcome[i] := 'replay';
                r_member[i] := p_member_ids[j];
                r_qual[i] := p_qualifying[j];
                r_points[i] := p_base[j] + p_bonus[j];
                r_bonus[i] := p_bonus[j];
                r_balance[i] := r_balance[j];
                r_redeemed[i] := r_redeemed[j];
            END IF;
            CONTINUE;
        END IF;

        -- posted before this batch
        k := array_position(pr_ext, p_ext_ids[i]);
        IF k IS NOT NULL THEN
            IF pr_fp[k] <> p_fingerprints[i] THEN
                r_outcome[i] := 'idempotency_conflict';
                r_detail[i] := p_ext_ids[i];
            ELSE
                r_outcome[i] := 'replay';
                r_member[i] := pr_member[k];
                r_qual[i] := pr_qual[k];
                r_points[i] := pr_points[k];
                r_bonus[i] := pr_bonus[k];
                r_balance[i] := pr_balance[k];
                r_redeemed[i] := pr_redeemed[k];
                r_rewards_of[i] := pr_id[k];
            END IF;
            CONTINUE;
        END IF;

        mk := array_position(m_ids, p_member_ids[i]);
        IF mk IS NULL THEN
            r_outcome[i] := 'member_not_found';
            r_detail[i] := p_member_ids[i]::text;
            CONTINUE;
        END IF;
        IF m_status[mk] <> 'active' THEN
            r_outcome[i] := 'member_not_active';
            r_detail[i] := m_status[mk];
            CONTINUE;
        END IF;

        -- an offer named must be one that was sent, and give no more than its value
        refusal := NULL;
        IF cardinality(p_offer_items) > 0 THEN
            FOREACH j IN ARRAY array_positions(p_offer_items, i) LOOP
                k := array_position(o_code, p_offer_codes[j]);
                IF k IS NULL THEN
                    refusal := 'unknown_offer';
                ELSIF p_offer_discounts[j] > o_value[k] THEN
                    refusal := 'offer_exceeds_value';
                END IF;
                IF refusal IS NOT NULL THEN
                    refused_code := p_offer_codes[j];
                    EXIT;
                END IF;
            END LOOP;
        END IF;

        -- a reward tendered must be the member's, issued, and unexpired when the purchase occurred
        wks := '{}';
        IF refusal IS NULL AND cardinality(p_tender_items) > 0 THEN
            FOREACH j IN ARRAY array_positions(p_tender_items, i) LOOP
                wk := array_position(w_code, p_tender_codes[j]);
                IF wk IS NULL OR w_member[wk] <> p_member_ids[i] OR w_status[wk] <> 'issued'
                   OR p_occurred_at[i] >= w_expires[wk] OR p_occurred_at[i] < w_issued[wk]
                   OR p_tender_amounts[j] > w_value[wk] THEN
                    refusal := 'reward_not_redeemable';
                    refused_code := p_tender_codes[j];
                    EXIT;
                END IF;
                wks := wks || wk;
            END LOOP;
        END IF;
        IF refusal IS NOT NULL THEN
            r_outcome[i] := refusal;
            r_detail[i] := refused_code;
            CONTINUE;
        END IF;

        r_redeemed[i] := '';
        FOREACH wk IN ARRAY wks LOOP
            w_status[wk] := 'redeemed';
            red_reward := red_reward || w_id[wk];
            red_item := red_item || i;
            r_redeemed[i] := r_redeemed[i] || CASE WHEN r_redeemed[i] = '' THEN '' ELSE ',' END || w_code[wk];
        END LOOP;

        -- a negative balance (after returns) is repaid before any reward is issued
        balance := m_balance[mk] + p_base[i] + p_bonus[i];
        n_issued := CASE WHEN balance >= p_thresholds[i] THEN (balance / p_thresholds[i])::integer ELSE 0 END;
        balance := balance - n_issued * p_thresholds[i];
        r_first[i] := m_issued[mk] + 1;
        r_issued[i] := n_issued;
        m_issued[mk] := m_issued[mk] + n_issued;
        m_balance[mk] := balance;
        m_changed[mk] := true;
        r_outcome[i] := 'created';
        r_member[i] := p_member_ids[i];
        r_qual[i] := p_qualifying[i];
        r_points[i] := p_base[i] + p_bonus[i];
        r_bonus[i] := p_bonus[i];
        r_balance[i] := balance;
        created := created + 1;
    END LOOP;

    IF created = 0 THEN  -- replays and refusals only: nothing to write
        RETURN QUERY
        SELECT u.i::integer, u.outcome, u.detail, u.mem, u.q, u.points, u.bonus, u.balance,
               coalesce(x.codes, '{}'), coalesce(x.vals, '{}'), coalesce(x.expires, '{}'),
               coalesce(string_to_array(u.red, ','), '{}')
        FROM unnest(r_outcome, r_detail, r_member, r_qual, r_points, r_bonus, r_balance, r_redeemed, r_rewards_of)
             WITH ORDINALITY AS u(outcome, detail, mem, q, points, bonus, balance, red, rewards_of, i)
        LEFT JOIN LATERAL (
            SELECT array_agg(w.code ORDER BY w.ordinal) AS codes, array_agg(w.value_cents ORDER BY w.ordinal) AS vals,
                   array_agg(w.expires_at ORDER BY w.ordinal) AS expires
            FROM rewards w WHERE w.purchase_id = u.rewards_of
        ) x ON u.rewards_of IS NOT NULL
        ORDER BY u.i;
        RETURN;
    END IF;

    -- one statement writes everything (an executor start per statement is a tenth of a batch's
    -- work): the purchases, the rewards they issue, the redemptions, the ledger entries in the
    -- single posting's order (per purchase earn, card_bonus, each reward redeemed, each issued),
    -- the balances; and it answers, the rewards of a replayed earlier posting read from the table
    RETURN QUERY
    WITH written AS (
        INSERT INTO purchases (ext_id, member_id, occurred_at, rules_version, fingerprint, body, qualifying_cents,
                               card_cents, point_cents, bonus_point_cents, balance_after, rewards_redeemed)
        SELECT u.ext, u.mem, u.at, u.ver, u.fp, u.body::jsonb, u.q, u.c, u.b + u.bb, u.bb, u.bal,
               string_to_array(u.red, ',')
        FROM unnest(p_ext_ids, p_member_ids, p_occurred_at, p_rules_versions, p_fingerprints, p_bodies,
                    p_qualifying, p_card, p_base, p_bonus, r_balance, r_redeemed, r_outcome)
             WITH ORDINALITY AS u(ext, mem, at, ver, fp, body, q, c, b, bb, bal, red, outcome, i)
        WHERE u.outcome = 'created'
        ORDER BY u.i
        RETURNING id, ext_id
    ), items AS (  -- each created item and the purchase written for it
        SELECT u.i::integer AS i, w.id AS pid
        FROM unnest(p_ext_ids, r_outcome) WITH ORDINALITY AS u(ext, outcome, i)
        JOIN written w ON w.ext_id = u.ext
        WHERE u.outcome = 'created'
    ), issued AS (
        INSERT INTO rewards (code, member_id, ordinal, value_cents, issued_at, expires_at, purchase_id)
        SELECT 'WR' || upper(substr(md5(gen_random_uuid()::text), 1, 16)), p_member_ids[t.i], r_first[t.i] + g - 1,
               p_reward_values[t.i], p_occurred_at[t.i], p_occurred_at[t.i] + make_interval(days => p_validity_days[t.i]),
               t.pid
        FROM items t, generate_series(1, r_issued[t.i]) g
        WHERE r_issued[t.i] > 0
        ORDER BY t.pid, g
        RETURNING id, code, purchase_id, ordinal, value_cents, expires_at
    ), redemptions AS (
        UPDATE rewards w SET status = 'redeemed', redeemed_at = p_occurred_at[t.i], redeemed_purchase_id = t.pid
        FROM unnest(red_reward, red_item) AS u(id, i) JOIN items t ON t.i = u.i
        WHERE w.id = u.id
    ), entries AS (
        INSERT INTO ledger (member_id, kind, point_cents, purchase_id, reward_id, rules_version, occurred_at)
        SELECT p_member_ids[e.i], e.kind, e.points, e.pid, e.rid, p_rules_versions[e.i], p_occurred_at[e.i]
        FROM (
            SELECT t.i, t.pid, 1 AS o, NULL::bigint AS rid, 'earn' AS kind, p_base[t.i] AS points
            FROM items t WHERE p_base[t.i] > 0
            UNION ALL
            SELECT t.i, t.pid, 2, NULL, 'card_bonus', p_bonus[t.i] FROM items t WHERE p_bonus[t.i] > 0
            UNION ALL
            SELECT t.i, t.pid, 3, u.id, 'reward_redeemed', 0
            FROM unnest(red_reward, red_item) AS u(id, i) JOIN items t ON t.i = u.i
            UNION ALL
            SELECT t.i, t.pid, 4, s.id, 'reward_issued', -p_thresholds[t.i] FROM issued s JOIN items t ON t.pid = s.purchase_id
        ) e
        ORDER BY e.pid, e.o, e.rid
    ), balances AS (
        UPDATE members m SET point_cents = u.balance, rewards_issued = u.issued
        FROM unnest(m_ids, m_balance, m_issued, m_changed) AS u(id, balance, issued, changed)
        WHERE m.id = u.id AND u.changed
    ), issued_by_item AS (
        SELECT t.i, array_agg(s.code ORDER BY s.ordinal) AS codes, array_agg(s.value_cents ORDER BY s.ordinal) AS vals,
               array_agg(s.expires_at ORDER BY s.ordinal) AS expires
        FROM issued s JOIN items t ON t.pid = s.purchase_id
        GROUP BY t.i
    )
    SELECT u.i::integer, u.outcome, u.detail, u.mem, u.q, u.points, u.bonus, u.balance,
           coalesce(a.codes, x.codes, '{}'), coalesce(a.vals, x.vals, '{}'), coalesce(a.expires, x.expires, '{}'),
           coalesce(string_to_array(u.red, ','), '{}')
    FROM unnest(r_outcome, r_detail, r_member, r_qual, r_points, r_bonus, r_balance, r_redeemed, r_rewards_of, r_source)
         WITH ORDINALITY AS u(outcome, detail, mem, q, points, bonus, balance, red, rewards_of, source, i)
    LEFT JOIN issued_by_item a ON a.i = coalesce(u.source, u.i)
    LEFT JOIN LATERAL (
        SELECT array_agg(w.code ORDER BY w.ordinal) AS codes, array_agg(w.value_cents ORDER BY w.ordinal) AS vals,
               array_agg(w.expires_at ORDER BY w.ordinal) AS expires
        FROM rewards w WHERE w.purchase_id = u.rewards_of
    ) x ON u.rewards_of IS NOT NULL
    ORDER BY u.i;
END $$"""

# The incentive-value report groups the period's purchases by card holder and rules version
# (incentives/queries.py, BOUGHT); without these statistics the planner takes every purchase
# for a group of its own and sorts the whole period instead of hash-aggregating the few card
# holders. The expression must stay the one in BOUGHT; ANALYZE fills them.
CARD_MEMBER_STATISTICS = """CREATE STATISTICS purchases_card_member (ndistinct)
    ON (CASE WHEN card_paid THEN member_id END), rules_version FROM purchases"""

RULES_VERSION_1 = """INSERT INTO program_rules (version, effective_from, body) VALUES (
    1, '2000-01-01T00:00:00Z',
    '{"points_per_dollar": 1, "card_bonus_points_per_dollar": 1,
      "reward_threshold_points": 300, "reward_value_cents": 1000,
      "reward_validity_days": 90,
      "excluded_categories": ["gift_card", "tax", "shipping"],
      "bonus_tenders": ["westique_credit_card"], "rounding": "carry"}'
)"""


def upgrade() -> None:
    op.create_table(
        "program_rules",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("effective_from", _timestamptz(), nullable=False),
        sa.Column("body", postgresql.JSONB(), nullable=False),
        sa.Column("created_at", _timestamptz(), server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("version", name="program_rules_pkey"),
        sa.CheckConstraint("version > 0", name="program_rules_version_check"),
    )
    op.execute(RULES_VERSION_1)

    op.create_table(
        "members",
        _id(),
        sa.Column("external_id", sa.Text()),
        sa.Column("status", sa.Text(), server_default=sa.text("'active'"), nullable=False),
        sa.Column("name", sa.Text()),
        sa.Column("email", sa.Text()),
        sa.Column("phone", sa.Text()),
        sa.Column("birth_date", sa.Date()),
        sa.Column("state", sa.CHAR(2), nullable=False),
        sa.Column("enrolled_at", _timestamptz(), server_default=NOW, nullable=False),
        sa.Column("cancelled_at", _timestamptz()),
        sa.Column("erased_at", _timestamptz()),
        sa.Column("point_cents", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("rewards_issued", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint("id", name="members_pkey"),
        sa.CheckConstraint("status IN ('active', 'cancelled')", name="members_status_check"),
        sa.CheckConstraint("rewards_issued >= 0", name="members_rewards_issued_check"),
        sa.CheckConstraint("(status = 'cancelled') = (cancelled_at IS NOT NULL)", name="members_check"),
        sa.CheckConstraint(
            "erased_at IS NULL OR (status = 'cancelled' AND name IS NULL AND email IS NULL"
            " AND phone IS NULL AND birth_date IS NULL AND external_id IS NULL)",
            name="members_check1",
        ),
        postgresql_with={"fillfactor": 70},
    )
    active = sa.text("status = 'active'")
    op.create_index("members_active_email", "members", [sa.text("lower(email)")], unique=True,
                    postgresql_where=active)
    op.create_index("members_active_phone", "members", ["phone"], unique=True, postgresql_where=active)
    op.create_index("members_active_external_id", "members", ["external_id"], unique=True,
                    postgresql_where=active)

    op.create_table(
        "consents",
        _id(),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("terms_version", sa.Text(), nullable=False),
        sa.Column("notice_version", sa.Text(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("guardian_consent", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("accepted_at", _timestamptz(), server_default=NOW, nullable=False),
        sa.Column("withdrawn_at", _timestamptz()),
        sa.PrimaryKeyConstraint("id", name="consents_pkey"),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name="consents_member_id_fkey"),
        sa.CheckConstraint("channel IN ('store', 'online')", name="consents_channel_check"),
    )
    op.create_index("consents_member", "consents", ["member_id"])

    op.create_table(
        "purchases",
        _id(),
        sa.Column("ext_id", sa.Text(), nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("occurred_at", _timestamptz(), nullable=False),
        sa.Column("rules_version", sa.Integer(), nullable=False),
        sa.Column("fingerprint", postgresql.BYTEA(), nullable=False),
        sa.Column("body", postgresql.JSONB(), nullable=False),
        sa.Column("qualifying_cents", sa.BigInteger(), nullable=False),
        sa.Column("card_cents", sa.BigInteger(), nullable=False),
        sa.Column("point_cents", sa.BigInteger(), nullable=False),
        sa.Column("bonus_point_cents", sa.BigInteger(), nullable=False),
        sa.Column("balance_after", sa.BigInteger(), nullable=False),
        sa.Column("rewards_redeemed", postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False),
        sa.Column("created_at", _timestamptz(), server_default=NOW, nullable=False),
        sa.Column("card_paid", sa.Boolean(),
                  sa.Computed("body->'tenders' @> '[{\"method\": \"westique_credit_card\"}]'", persisted=True),
                  nullable=False),
        sa.PrimaryKeyConstraint("id", name="purchases_pkey"),
        sa.UniqueConstraint("ext_id", name="purchases_ext_id_key"),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name="purchases_member_id_fkey"),
        sa.ForeignKeyConstraint(["rules_version"], ["program_rules.version"], name="purchases_rules_version_fkey"),
        sa.CheckConstraint("qualifying_cents >= 0", name="purchases_qualifying_cents_check"),
        sa.CheckConstraint("card_cents >= 0 AND card_cents <= qualifying_cents", name="purchases_check"),
        sa.CheckConstraint("point_cents >= 0", name="purchases_point_cents_check"),
        sa.CheckConstraint("bonus_point_cents >= 0 AND bonus_point_cents <= point_cents", name="purchases_check1"),
    )
    op.create_index("purchases_member", "purchases", ["member_id", "occurred_at"])
    op.create_index("purchases_occurred", "purchases", ["occurred_at"])
    op.execute(CARD_MEMBER_STATISTICS)

    op.create_table(
        "purchase_returns",
        _id(),
        sa.Column("ext_id", sa.Text(), nullable=False),
        sa.Column("purchase_id", sa.BigInteger(), nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("occurred_at", _timestamptz(), nullable=False),
        sa.Column("fingerprint", postgresql.BYTEA(), nullable=False),
        sa.Column("body", postgresql.JSONB(), nullable=False),
        sa.Column("point_cents_reversed", sa.BigInteger(), nullable=False),
        sa.Column("balance_after", sa.BigInteger(), nullable=False),
        sa.Column("created_at", _timestamptz(), server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("id", name="purchase_returns_pkey"),
        sa.UniqueConstraint("ext_id", name="purchase_returns_ext_id_key"),
        sa.ForeignKeyConstraint(["purchase_id"], ["purchases.id"], name="purchase_returns_purchase_id_fkey"),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name="purchase_returns_member_id_fkey"),
        sa.CheckConstraint("point_cents_reversed >= 0", name="purchase_returns_point_cents_reversed_check"),
    )
    op.create_index("purchase_returns_purchase", "purchase_returns", ["purchase_id"])

    op.create_table(
        "rewards",
        _id(),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("value_cents", sa.BigInteger(), nullable=False),
        sa.Column("issued_at", _timestamptz(), nullable=False),
        sa.Column("expires_at", _timestamptz(), nullable=False),
        sa.Column("purchase_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.Text(), server_default=sa.text("'issued'"), nullable=False),
        sa.Column("redeemed_at", _timestamptz()),
        sa.Column("redeemed_purchase_id", sa.BigInteger()),
        sa.Column("voided_at", _timestamptz()),
        sa.PrimaryKeyConstraint("id", name="rewards_pkey"),
        sa.UniqueConstraint("code", name="rewards_code_key"),
        sa.UniqueConstraint("member_id", "ordinal", name="rewards_member_id_ordinal_key"),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name="rewards_member_id_fkey"),
        sa.ForeignKeyConstraint(["purchase_id"], ["purchases.id"], name="rewards_purchase_id_fkey"),
        sa.ForeignKeyConstraint(["redeemed_purchase_id"], ["purchases.id"], name="rewards_redeemed_purchase_id_fkey"),
        sa.CheckConstraint("ordinal > 0", name="rewards_ordinal_check"),
        sa.CheckConstraint("value_cents > 0", name="rewards_value_cents_check"),
        sa.CheckConstraint("expires_at > issued_at", name="rewards_check"),
        sa.CheckConstraint("status IN ('issued', 'redeemed', 'voided')", name="rewards_status_check"),
        sa.CheckConstraint(
            "(status = 'redeemed') = (redeemed_purchase_id IS NOT NULL AND redeemed_at IS NOT NULL)",
            name="rewards_check1",
        ),
        sa.CheckConstraint("(status = 'voided') = (voided_at IS NOT NULL)", name="rewards_check2"),
    )
    op.create_index("rewards_purchase", "rewards", ["purchase_id"])
    op.create_index("rewards_redeemed_purchase", "rewards", ["redeemed_purchase_id"],
                    postgresql_where=sa.text("redeemed_purchase_id IS NOT NULL"))

    op.create_table(
        "ledger",
        _id(),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("point_cents", sa.BigInteger(), nullable=False),
        sa.Column("purchase_id", sa.BigInteger()),
        sa.Column("return_id", sa.BigInteger()),
        sa.Column("reward_id", sa.BigInteger()),
        sa.Column("rules_version", sa.Integer()),
        sa.Column("occurred_at", _timestamptz(), nullable=False),
        sa.Column("created_at", _timestamptz(), server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("id", name="ledger_pkey"),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name="ledger_member_id_fkey"),
        sa.ForeignKeyConstraint(["purchase_id"], ["purchases.id"], name="ledger_purchase_id_fkey"),
        sa.ForeignKeyConstraint(["return_id"], ["purchase_returns.id"], name="ledger_return_id_fkey"),
        sa.ForeignKeyConstraint(["reward_id"], ["rewards.id"], name="ledger_reward_id_fkey"),
        sa.ForeignKeyConstraint(["rules_version"], ["program_rules.version"], name="ledger_rules_version_fkey"),
        sa.CheckConstraint(
            "kind IN ('earn', 'card_bonus', 'reward_issued', 'reward_redeemed', 'reward_voided', 'return', 'forfeit')",
            name="ledger_kind_check",
        ),
        sa.CheckConstraint("kind NOT IN ('earn', 'card_bonus') OR (point_cents > 0 AND purchase_id IS NOT NULL)",
                           name="ledger_check"),
        sa.CheckConstraint("kind <> 'return' OR (point_cents < 0 AND return_id IS NOT NULL)", name="ledger_check1"),
        sa.CheckConstraint("kind <> 'forfeit' OR point_cents < 0", name="ledger_check2"),
        sa.CheckConstraint(
            "kind NOT IN ('reward_issued', 'reward_redeemed', 'reward_voided') OR reward_id IS NOT NULL",
            name="ledger_check3",
        ),
        sa.CheckConstraint("kind <> 'reward_issued' OR point_cents < 0", name="ledger_check4"),
        sa.CheckConstraint("kind NOT IN ('reward_redeemed', 'reward_voided') OR point_cents = 0",
                           name="ledger_check5"),
    )
    op.create_index("ledger_member", "ledger", ["member_id", "id"])
    op.create_index("ledger_occurred", "ledger", ["occurred_at"])
    op.create_index("ledger_taken_back", "ledger", ["occurred_at"],
                    postgresql_where=sa.text("kind IN ('return', 'forfeit')"))
    op.execute(APPEND_ONLY)
    op.execute("CREATE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE ON ledger"
               " FOR EACH ROW EXECUTE FUNCTION ledger_is_append_only()")

    op.create_table(
        "api_keys",
        _id(),
        sa.Column("token_hash", postgresql.BYTEA(), nullable=False),
        sa.Column("scopes", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("member_id", sa.BigInteger()),
        sa.Column("label", sa.Text()),
        sa.Column("created_at", _timestamptz(), server_default=NOW, nullable=False),
        sa.Column("revoked_at", _timestamptz()),
        sa.PrimaryKeyConstraint("id", name="api_keys_pkey"),
        sa.UniqueConstraint("token_hash", name="api_keys_token_hash_key"),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name="api_keys_member_id_fkey"),
        sa.CheckConstraint(
            "cardinality(scopes) > 0"
            " AND scopes <@ ARRAY['checkout', 'guest_services', 'compliance', 'admin', 'guest']",
            name="api_keys_scopes_check",
        ),
        sa.CheckConstraint("('guest' = ANY (scopes)) = (member_id IS NOT NULL)", name="api_keys_check"),
        sa.CheckConstraint("NOT ('guest' = ANY (scopes)) OR cardinality(scopes) = 1", name="api_keys_scopes_check1"),
    )

    op.create_table(
        "subscriptions",
        _id(),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("address", sa.Text()),
        sa.Column("member_id", sa.BigInteger()),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("subscribed_at", _timestamptz(), server_default=NOW, nullable=False),
        sa.Column("unsubscribed_at", _timestamptz()),
        sa.Column("erased_at", _timestamptz()),
        sa.PrimaryKeyConstraint("id", name="subscriptions_pkey"),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name="subscriptions_member_id_fkey"),
        sa.CheckConstraint("channel IN ('email', 'sms')", name="subscriptions_channel_check"),
        sa.CheckConstraint("status IN ('active', 'unsubscribed')", name="subscriptions_status_check"),
        sa.CheckConstraint("source IN ('store', 'online', 'sms')", name="subscriptions_source_check"),
        sa.CheckConstraint("(status = 'unsubscribed') = (unsubscribed_at IS NOT NULL)", name="subscriptions_check"),
        sa.CheckConstraint("erased_at IS NULL OR address IS NULL", name="subscriptions_check1"),
    )
    op.create_index("subscriptions_address", "subscriptions", ["channel", sa.text("lower(address)")], unique=True,
                    postgresql_where=sa.text("address IS NOT NULL"))
    op.create_index("subscriptions_member", "subscriptions", ["member_id"],
                    postgresql_where=sa.text("member_id IS NOT NULL"))

    op.create_table(
        "subscription_events",
        _id(),
        sa.Column("subscription_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text()),
        sa.Column("occurred_at", _timestamptz(), server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("id", name="subscription_events_pkey"),
        sa.ForeignKeyConstraint(["subscription_id"], ["subscriptions.id"],
                                name="subscription_events_subscription_id_fkey"),
        sa.CheckConstraint("kind IN ('subscribed', 'renewed', 'unsubscribed')", name="subscription_events_kind_check"),
        sa.CheckConstraint("source IN ('store', 'online', 'link', 'sms', 'erasure')",
                           name="subscription_events_source_check"),
    )
    op.create_index("subscription_events_subscription", "subscription_events", ["subscription_id", "id"])
    op.execute("CREATE TRIGGER subscription_events_append_only BEFORE UPDATE OR DELETE ON subscription_events"
               " FOR EACH ROW EXECUTE FUNCTION ledger_is_append_only()")

    op.create_table(
        "offers",
        _id(),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("value_cents", sa.BigInteger(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("created_at", _timestamptz(), server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("id", name="offers_pkey"),
        sa.UniqueConstraint("code", name="offers_code_key"),
        sa.CheckConstraint("value_cents > 0", name="offers_value_cents_check"),
        sa.CheckConstraint("channel IN ('email', 'sms')", name="offers_channel_check"),
    )

    op.create_table(
        "offer_deliveries",
        sa.Column("offer_id", sa.BigInteger(), nullable=False),
        sa.Column("subscription_id", sa.BigInteger(), nullable=False),
        sa.Column("sent_at", _timestamptz(), server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("offer_id", "subscription_id", name="offer_deliveries_pkey"),
        sa.ForeignKeyConstraint(["offer_id"], ["offers.id"], name="offer_deliveries_offer_id_fkey"),
        sa.ForeignKeyConstraint(["subscription_id"], ["subscriptions.id"],
                                name="offer_deliveries_subscription_id_fkey"),
    )

    op.execute(POST_PURCHASES)


def downgrade() -> None:
    op.execute("DROP FUNCTION post_purchases")
    for table in ("offer_deliveries", "offers", "subscription_events", "subscriptions", "api_keys", "ledger",
                  "rewards", "purchase_returns", "purchases", "consents", "members", "program_rules"):
        op.drop_table(table)  # its indexes, triggers and statistics go with it
    op.execute("DROP FUNCTION ledger_is_append_only")
