-- Posting a purchase in one round trip: lock the member, answer a replay, check the
-- rewards tendered, then write the purchase, its ledger entries, the rewards it issues
-- and the new balance. The earning itself is computed by rewards/rules.py and passed in;
-- this function only applies it. Errors come back as an outcome, before anything is
-- written, so a refused posting writes nothing. Offer codes named on the purchase
-- (`offers` in the body) must exist (sql/003_mailing.sql), so the mailing list's value
-- counts only offers this service sent.
CREATE FUNCTION post_purchase(
    p_ext_id          text,
    p_member_id       bigint,
    p_occurred_at     timestamptz,
    p_rules_version   integer,
    p_fingerprint     bytea,
    p_body            jsonb,
    p_qualifying      bigint,
    p_card            bigint,
    p_base            bigint,
    p_bonus           bigint,
    p_reward_codes    text[],
    p_reward_amounts  bigint[],
    p_threshold       bigint,     -- point-cents a reward costs
    p_reward_value    bigint,
    p_validity_days   integer
) RETURNS TABLE (
    outcome          text,
    detail           text,
    member_id        bigint,
    qualifying_cents bigint,
    point_cents      bigint,
    bonus_point_cents bigint,
    balance_after    bigint,
    issued_codes     text[],
    issued_values    bigint[],
    issued_expires   timestamptz[],
    redeemed         text[]
) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    m            members%ROWTYPE;
    prior        purchases%ROWTYPE;
    r            rewards%ROWTYPE;
    pid          bigint;
    new_balance  bigint;
    n_issued     integer;
    i            integer;
    redeemed_ids bigint[] := '{}';
    bad_offer    record;
BEGIN
    SELECT * INTO m FROM members WHERE id = p_member_id FOR UPDATE;

    SELECT * INTO prior FROM purchases WHERE ext_id = p_ext_id;
    IF FOUND THEN
        IF prior.fingerprint <> p_fingerprint THEN
            RETURN QUERY SELECT 'idempotency_conflict', p_ext_id, NULL::bigint, NULL::bigint, NULL::bigint,
                NULL::bigint, NULL::bigint, NULL::text[], NULL::bigint[], NULL::timestamptz[], NULL::text[];
            RETURN;
        END IF;
        RETURN QUERY SELECT 'replay', NULL::text, prior.member_id, prior.qualifying_cents, prior.point_cents,
            prior.bonus_point_cents, prior.balance_after,
            coalesce(array_agg(w.code ORDER BY w.ordinal), '{}'),
            coalesce(array_agg(w.value_cents ORDER BY w.ordinal), '{}'),
            coalesce(array_agg(w.expires_at ORDER BY w.ordinal), '{}'),
            prior.rewards_redeemed
        FROM rewards w WHERE w.purchase_id = prior.id;
        RETURN;
    END IF;

    IF m.id IS NULL THEN
        RETURN QUERY SELECT 'member_not_found', p_member_id::text, NULL::bigint, NULL::bigint, NULL::bigint,
            NULL::bigint, NULL::bigint, NULL::text[], NULL::bigint[], NULL::timestamptz[], NULL::text[];
        RETURN;
    END IF;
    IF m.status <> 'active' THEN
        RETURN QUERY SELECT 'member_not_active', m.status, NULL::bigint, NULL::bigint, NULL::bigint,
            NULL::bigint, NULL::bigint, NULL::text[], NULL::bigint[], NULL::timestamptz[], NULL::text[];
        RETURN;
    END IF;

    -- an offer named on the purchase must be one that was sent, and give no more than its value;
    -- one index probe per offer named, and nothing at all for a purchase without offers
    IF jsonb_array_length(coalesce(p_body->'offers', '[]')) > 0 THEN
        SELECT u.code, f.id IS NULL AS unknown INTO bad_offer
        FROM jsonb_to_recordset(p_body->'offers') AS u(code text, discount_cents bigint)
        LEFT JOIN offers f ON f.code = u.code
        WHERE f.id IS NULL OR u.discount_cents > f.value_cents
        LIMIT 1;
        IF FOUND THEN
            RETURN QUERY SELECT CASE WHEN bad_offer.unknown THEN 'unknown_offer' ELSE 'offer_exceeds_value' END,
                bad_offer.code, NULL::bigint, NULL::bigint, NULL::bigint, NULL::bigint, NULL::bigint,
                NULL::text[], NULL::bigint[], NULL::timestamptz[], NULL::text[];
            RETURN;
        END IF;
    END IF;

    FOR i IN 1 .. coalesce(array_length(p_reward_codes, 1), 0) LOOP
        SELECT * INTO r FROM rewards WHERE code = p_reward_codes[i] FOR UPDATE;
        IF NOT FOUND OR r.member_id <> p_member_id OR r.status <> 'issued'
           OR p_occurred_at >= r.expires_at OR p_occurred_at < r.issued_at  -- not before it existed
           OR p_reward_amounts[i] > r.value_cents THEN
            RETURN QUERY SELECT 'reward_not_redeemable', p_reward_codes[i], NULL::bigint, NULL::bigint,
                NULL::bigint, NULL::bigint, NULL::bigint, NULL::text[], NULL::bigint[], NULL::timestamptz[],
                NULL::text[];
            RETURN;
        END IF;
        redeemed_ids := redeemed_ids || r.id;
    END LOOP;

    new_balance := m.point_cents + p_base + p_bonus;
    -- a negative balance (after returns) is repaid before any reward is issued
    n_issued := CASE WHEN new_balance >= p_threshold THEN (new_balance / p_threshold)::integer ELSE 0 END;
    new_balance := new_balance - n_issued * p_threshold;

    INSERT INTO purchases (ext_id, member_id, occurred_at, rules_version, fingerprint, body, qualifying_cents,
                           card_cents, point_cents, bonus_point_cents, balance_after, rewards_redeemed)
    VALUES (p_ext_id, p_member_id, p_occurred_at, p_rules_version, p_fingerprint, p_body, p_qualifying,
            p_card, p_base + p_bonus, p_bonus, new_balance, coalesce(p_reward_codes, '{}'))
    RETURNING id INTO pid;

    IF cardinality(redeemed_ids) > 0 THEN
        UPDATE rewards SET status = 'redeemed', redeemed_at = p_occurred_at, redeemed_purchase_id = pid
        WHERE id = ANY (redeemed_ids);
    END IF;

    IF n_issued > 0 THEN
        INSERT INTO rewards (code, member_id, ordinal, value_cents, issued_at, expires_at, purchase_id)
        SELECT 'WR' || upper(substr(md5(gen_random_uuid()::text), 1, 16)), p_member_id,
               m.rewards_issued + g, p_reward_value, p_occurred_at,
               p_occurred_at + make_interval(days => p_validity_days), pid
        FROM generate_series(1, n_issued) g;
    END IF;

    INSERT INTO ledger (member_id, kind, point_cents, purchase_id, reward_id, rules_version, occurred_at)
    SELECT p_member_id, e.kind, e.point_cents, pid, e.reward_id, p_rules_version, p_occurred_at
    FROM (
        SELECT 1 AS o, 'earn' AS kind, p_base AS point_cents, NULL::bigint AS reward_id WHERE p_base > 0
        UNION ALL SELECT 2, 'card_bonus', p_bonus, NULL WHERE p_bonus > 0
        UNION ALL SELECT 3, 'reward_redeemed', 0, x FROM unnest(redeemed_ids) x
        UNION ALL SELECT 4, 'reward_issued', -p_threshold, w.id FROM rewards w WHERE w.purchase_id = pid
    ) e ORDER BY e.o, e.reward_id;

    UPDATE members SET point_cents = new_balance, rewards_issued = m.rewards_issued + n_issued
    WHERE id = p_member_id;

    RETURN QUERY SELECT 'created', NULL::text, p_member_id, p_qualifying, p_base + p_bonus, p_bonus,
        new_balance,
        coalesce(array_agg(w.code ORDER BY w.ordinal), '{}'),
        coalesce(array_agg(w.value_cents ORDER BY w.ordinal), '{}'),
        coalesce(array_agg(w.expires_at ORDER BY w.ordinal), '{}'),
        coalesce(p_reward_codes, '{}')
    FROM rewards w WHERE w.purchase_id = pid;
END $$;
