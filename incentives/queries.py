"""The reports' SQL: every sum, count and percentile is computed here, in one snapshot.

Each report reads one `REPEATABLE READ`, read-only transaction (`read_valuation`,
`read_liability`), so its figures describe one consistent state of the ledger even while
purchases are being posted. Parameters are always: $1 the period's first instant, $2 the
first instant after it, $3 the report's as-of time (never after $2).

The population ("counted", the denominator) and each member's value are CTEs shared by
the distribution, the histogram and the totals, so the figures reconcile by construction:
the sum of the members' values under the default method is the `redeemed_cents` figure.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import asyncpg

from incentives.valuation import PERCENTILES, Bin, Read, ReportRequest, SegmentFigures, as_of
from rewards import rules
from rewards.rulebook import rules_from_row
from rewards.rules import Rules

CARD_TENDER = "westique_credit_card"
HISTOGRAM_EXACT_VALUES = 24  # up to this many distinct values, one bar each; more: equal-width bins
HISTOGRAM_BINS = 20

IN_PERIOD = "{col} >= $1 AND {col} < $2"


def _in_period(column: str) -> str:
    return IN_PERIOD.format(col=column)


# --- who is counted, and what each is worth ---------------------------------------------------

# The rewards program: members enrolled at any time in the period; also anyone with a
# purchase in it (a purchase imported from before the enrollment was recorded still makes
# its buyer a member of that period, so every Reward redeemed belongs to someone counted).
REWARDS_POPULATION = f"""
population AS (
    SELECT m.id AS unit, m.id AS member_id FROM members m
    WHERE m.enrolled_at < $2 AND (m.cancelled_at IS NULL OR m.cancelled_at >= $1)
    UNION
    SELECT p.member_id, p.member_id FROM purchases p WHERE {_in_period("p.occurred_at")}
)"""


def _subscription_active_before(t: str) -> str:
    """Whether subscription `s` was active just before instant `t`: its last opt-in or opt-out
    event before `t` says so (the consent record); a subscription without any event falls back
    on its own columns. Erasure ends it."""
    return f"""(NOT coalesce(s.erased_at < {t}, false) AND coalesce(
        (SELECT e.kind <> 'unsubscribed' FROM subscription_events e
         WHERE e.subscription_id = s.id AND e.occurred_at < {t}
         ORDER BY e.occurred_at DESC, e.id DESC LIMIT 1),
        NOT EXISTS (SELECT 1 FROM subscription_events e WHERE e.subscription_id = s.id)
            AND s.subscribed_at < {t} AND (s.unsubscribed_at IS NULL OR s.unsubscribed_at >= {t})))"""


# The mailing list: a subscriber is a member (all of their subscriptions together), or an
# address not linked to any member (unit = minus the subscription's id). Counted: subscribed
# at any time in the period.
MAILING_POPULATION = f"""
subscription_state AS (
    SELECT s.id, coalesce(s.member_id, -s.id) AS unit, s.member_id,
        {_subscription_active_before("$1")} AS at_start,
        {_subscription_active_before("$2")} AS at_end,
        (EXISTS (SELECT 1 FROM subscription_events e WHERE e.subscription_id = s.id
                 AND e.kind IN ('subscribed', 'renewed') AND {_in_period("e.occurred_at")})
         OR (NOT EXISTS (SELECT 1 FROM subscription_events e WHERE e.subscription_id = s.id)
             AND {_in_period("s.subscribed_at")})) AS opted_in,
        (EXISTS (SELECT 1 FROM subscription_events e WHERE e.subscription_id = s.id
                 AND e.kind = 'unsubscribed' AND {_in_period("e.occurred_at")})
         OR coalesce({_in_period("s.erased_at")}, false)
         OR (NOT EXISTS (SELECT 1 FROM subscription_events e WHERE e.subscription_id = s.id)
             AND coalesce({_in_period("s.unsubscribed_at")}, false))) AS opted_out,
        coalesce({_in_period("s.erased_at")}, false) AS erased
    FROM subscriptions s
    WHERE EXISTS (SELECT 1 FROM subscription_events e WHERE e.subscription_id = s.id AND e.occurred_at < $2)
       OR (NOT EXISTS (SELECT 1 FROM subscription_events e WHERE e.subscription_id = s.id) AND s.subscribed_at < $2)
),
units AS (
    SELECT unit, max(member_id) AS member_id, bool_or(at_start) AS at_start, bool_or(at_end) AS at_end,
           bool_or(opted_in) AS opted_in, bool_or(opted_out) AS opted_out, bool_or(erased) AS erased,
           bool_or(at_start OR opted_in) AS counted
    FROM subscription_state GROUP BY unit
),
population AS (SELECT unit, member_id FROM units WHERE counted)"""

CARD_HOLDERS = f"""
card_holders AS (
    SELECT DISTINCT p.member_id FROM purchases p
    WHERE {_in_period("p.occurred_at")} AND p.body->'tenders' @> '[{{"method": "{CARD_TENDER}"}}]'
)"""

# Offer discounts on purchases in the period, each matched to an offer the business sent.
OFFER_USES = f"""
offer_uses AS (
    SELECT p.id AS purchase_id, p.member_id, f.id AS offer_id, u.discount_cents
    FROM purchases p
    CROSS JOIN LATERAL jsonb_to_recordset(coalesce(p.body->'offers', '[]')) AS u(code text, discount_cents bigint)
    JOIN offers f ON f.code = u.code
    WHERE {_in_period("p.occurred_at")}
)"""

# Each unit's value under each method: (program, method) -> SELECT unit, cents.
VALUES = {
    ("rewards", "expenses"): f"""SELECT member_id AS unit, sum(value_cents) AS cents FROM rewards
        WHERE {_in_period("redeemed_at")} GROUP BY member_id""",
    ("rewards", "rewards_issued"): f"""SELECT member_id AS unit, sum(value_cents) AS cents FROM rewards
        WHERE {_in_period("issued_at")} GROUP BY member_id""",
    ("mailing_list", "expenses"): """SELECT member_id AS unit, sum(discount_cents) AS cents FROM offer_uses
        GROUP BY member_id""",
    ("mailing_list", "rewards_issued"): f"""SELECT coalesce(s.member_id, -s.id) AS unit, sum(f.value_cents) AS cents
        FROM offer_deliveries d JOIN offers f ON f.id = d.offer_id JOIN subscriptions s ON s.id = d.subscription_id
        WHERE {_in_period("d.sent_at")} GROUP BY 1""",
}
# the program expense is added in incentives.valuation: the same amount for every member
VALUES[("rewards", "expenses_plus_program")] = VALUES[("rewards", "expenses")]
VALUES[("mailing_list", "expenses_plus_program")] = VALUES[("mailing_list", "expenses")]


def per_member(program: str, method: str) -> str:
    """The WITH clause ending in `per_member(unit, cents, card_holder)`: everyone counted, once."""
    population = REWARDS_POPULATION if program == "rewards" else MAILING_POPULATION + "," + OFFER_USES
    return f"""WITH {population}, {CARD_HOLDERS},
member_values AS ({VALUES[(program, method)]}),
per_member AS (
    SELECT pop.unit, coalesce(v.cents, 0)::bigint AS cents, (h.member_id IS NOT NULL) AS card_holder
    FROM population pop
    LEFT JOIN member_values v ON v.unit = pop.unit
    LEFT JOIN card_holders h ON h.member_id = pop.member_id
)"""


_PERCENTILES = ", ".join(str(p) for p in PERCENTILES)


def distribution_sql(program: str, method: str) -> str:
    """Counted, total, percentiles, max and zeros: for everyone and for each segment (ROLLUP)."""
    return per_member(program, method) + f"""
SELECT CASE WHEN grouping(card_holder) = 1 THEN 'all' WHEN card_holder THEN 'card_holders' ELSE 'others' END
           AS segment,
       count(*) AS counted,
       coalesce(sum(cents), 0)::bigint AS total_cents,
       percentile_disc(ARRAY[{_PERCENTILES}]) WITHIN GROUP (ORDER BY cents) AS percentiles,
       coalesce(max(cents), 0)::bigint AS max_cents,
       count(*) FILTER (WHERE cents = 0) AS zero
FROM per_member GROUP BY ROLLUP (card_holder)"""


def histogram_values_sql(program: str, method: str) -> str:
    return per_member(program, method) + f"""
SELECT cents, count(*) AS members FROM per_member GROUP BY cents ORDER BY cents LIMIT {HISTOGRAM_EXACT_VALUES + 1}"""


def histogram_bins_sql(program: str, method: str) -> str:
    """Members at $0, then HISTOGRAM_BINS equal-width bins over (0, max]: bin k holds ((k-1)max/n, k max/n]."""
    return per_member(program, method) + f"""
, top AS (SELECT max(cents) AS m FROM per_member)
SELECT CASE WHEN cents = 0 THEN 0 ELSE (cents * {HISTOGRAM_BINS} + top.m - 1) / top.m END AS bin,
       count(*) AS members, top.m AS max_cents
FROM per_member, top GROUP BY bin, top.m ORDER BY bin"""


# --- the period's figures ----------------------------------------------------------------

# expired in the period (up to the as-of time): it reached its expiry neither redeemed nor voided
_EXPIRED = ("expires_at >= $1 AND expires_at < $3 AND (redeemed_at IS NULL OR redeemed_at >= expires_at)"
            " AND (voided_at IS NULL OR voided_at >= expires_at)")

REWARDS_FIGURES = f"""
SELECT
    (SELECT count(*) FROM members WHERE enrolled_at < $1 AND (cancelled_at IS NULL OR cancelled_at >= $1)) AS at_start,
    (SELECT count(*) FROM members WHERE enrolled_at < $2 AND (cancelled_at IS NULL OR cancelled_at >= $2)) AS at_end,
    (SELECT count(*) FROM members WHERE {_in_period("enrolled_at")}) AS enrolled,
    (SELECT count(*) FROM members WHERE {_in_period("cancelled_at")}) AS cancelled,
    (SELECT count(*) FROM members WHERE {_in_period("erased_at")}) AS erased,
    p.*, l.*, r.*
FROM
    (SELECT coalesce(sum(qualifying_cents), 0)::bigint AS qualifying_cents,
            coalesce(sum(card_cents), 0)::bigint AS card_cents
     FROM purchases WHERE {_in_period("occurred_at")}) p,
    (SELECT coalesce(sum(point_cents) FILTER (WHERE kind IN ('earn', 'card_bonus')), 0)::bigint AS earned_point_cents,
            coalesce(sum(point_cents) FILTER (WHERE kind = 'card_bonus'), 0)::bigint AS bonus_point_cents,
            coalesce(-sum(point_cents) FILTER (WHERE kind = 'return'), 0)::bigint AS reversed_point_cents,
            coalesce(-sum(point_cents) FILTER (WHERE kind = 'forfeit'), 0)::bigint AS forfeited_point_cents
     FROM ledger WHERE {_in_period("occurred_at")}) l,
    (SELECT count(*) FILTER (WHERE {_in_period("issued_at")}) AS issued_count,
            coalesce(sum(value_cents) FILTER (WHERE {_in_period("issued_at")}), 0)::bigint AS issued_cents,
            count(*) FILTER (WHERE {_in_period("redeemed_at")}) AS redeemed_count,
            coalesce(sum(value_cents) FILTER (WHERE {_in_period("redeemed_at")}), 0)::bigint AS redeemed_cents,
            count(*) FILTER (WHERE {_EXPIRED}) AS expired_count,
            coalesce(sum(value_cents) FILTER (WHERE {_EXPIRED}), 0)::bigint AS expired_cents,
            count(*) FILTER (WHERE {_in_period("voided_at")}) AS voided_count,
            coalesce(sum(value_cents) FILTER (WHERE {_in_period("voided_at")}), 0)::bigint AS voided_cents
     FROM rewards WHERE issued_at < $2) r"""

MAILING_FIGURES = f"""WITH {MAILING_POPULATION}, {OFFER_USES},
counted_uses AS (SELECT u.* FROM offer_uses u JOIN population pop ON pop.member_id = u.member_id),
counted_deliveries AS (
    SELECT f.value_cents FROM offer_deliveries d
    JOIN offers f ON f.id = d.offer_id JOIN subscriptions s ON s.id = d.subscription_id
    JOIN population pop ON pop.unit = coalesce(s.member_id, -s.id)
    WHERE {_in_period("d.sent_at")}
)
SELECT
    (SELECT count(*) FILTER (WHERE at_start) FROM units) AS at_start,
    (SELECT count(*) FILTER (WHERE at_end) FROM units) AS at_end,
    (SELECT count(*) FILTER (WHERE opted_in) FROM units) AS enrolled,
    (SELECT count(*) FILTER (WHERE opted_out) FROM units) AS cancelled,
    (SELECT count(*) FILTER (WHERE erased) FROM units) AS erased,
    (SELECT coalesce(sum(p.qualifying_cents), 0)::bigint FROM purchases p
     WHERE {_in_period("p.occurred_at")} AND p.member_id IN (SELECT member_id FROM population)) AS qualifying_cents,
    (SELECT coalesce(sum(p.card_cents), 0)::bigint FROM purchases p
     WHERE {_in_period("p.occurred_at")} AND p.member_id IN (SELECT member_id FROM population)) AS card_cents,
    (SELECT count(*) FROM counted_deliveries) AS issued_count,
    (SELECT coalesce(sum(value_cents), 0)::bigint FROM counted_deliveries) AS issued_cents,
    (SELECT count(*) FROM counted_uses) AS redeemed_count,
    (SELECT coalesce(sum(discount_cents), 0)::bigint FROM counted_uses) AS redeemed_cents
"""

REWARDS_RULES_VERSIONS = f"""
SELECT coalesce(array_agg(DISTINCT v ORDER BY v), '{{}}') FROM (
    SELECT rules_version FROM purchases WHERE {_in_period("occurred_at")}
    UNION SELECT rules_version FROM ledger WHERE {_in_period("occurred_at")} AND rules_version IS NOT NULL
) t(v)"""

MAILING_RULES_VERSIONS = f"""
SELECT coalesce(array_agg(DISTINCT rules_version ORDER BY rules_version), '{{}}')
FROM purchases WHERE {_in_period("occurred_at")}"""


# --- what makes it reproducible: the rows read, digested in SQL ------------------------------


def _digest(rows: str) -> str:
    """Row count and a digest of the rows' text (`r`), computed by the server in bounded memory.

    Each row is hashed (SHA-256) and the hashes are added up as two 60-bit numbers, so the
    digest does not depend on the order rows are read in, needs no sort, and never builds one
    value out of every row (which passes PostgreSQL's 1 GB limit at ten million purchases).
    Any changed, added or removed row changes the sums.
    """
    return f"""SELECT count(*) AS n,
       encode(sha256(convert_to(count(*) || ':' || coalesce(sum(('x' || substr(h, 1, 15))::bit(60)::bigint::numeric), 0)
                                || ':' || coalesce(sum(('x' || substr(h, 16, 15))::bit(60)::bigint::numeric), 0),
                                'UTF8')), 'hex') AS digest
FROM (SELECT encode(sha256(convert_to(r::text, 'UTF8')), 'hex') AS h FROM ({rows}) t) hashed"""


_CARD_PAID = f"""p.body->'tenders' @> '[{{"method": "{CARD_TENDER}"}}]'"""
_NOT_LATER = "CASE WHEN {col} < $2 THEN {col} END"  # a later change is not an input of this period

RULES_DIGEST = _digest("SELECT version AS k, ROW(version, effective_from, body) AS r FROM program_rules "
                       "WHERE effective_from < $2")
PURCHASES_DIGEST = _digest(
    f"""SELECT p.id AS k, ROW(p.id, p.member_id, p.occurred_at, p.rules_version, p.qualifying_cents, p.card_cents,
                           p.point_cents, p.bonus_point_cents, {_CARD_PAID}, p.body->'offers') AS r
        FROM purchases p WHERE {_in_period("p.occurred_at")}"""
)

REWARDS_DIGESTS = {
    "members": _digest(
        f"""SELECT id AS k, ROW(id, enrolled_at, {_NOT_LATER.format(col="cancelled_at")},
                               {_NOT_LATER.format(col="erased_at")}) AS r
            FROM members WHERE enrolled_at < $2"""
    ),
    "purchases": PURCHASES_DIGEST,
    "ledger": _digest(
        f"""SELECT id AS k, ROW(id, member_id, kind, point_cents, purchase_id, return_id, reward_id, rules_version,
                               occurred_at) AS r
            FROM ledger WHERE {_in_period("occurred_at")}"""
    ),
    "rewards": _digest(
        f"""SELECT id AS k, ROW(id, member_id, value_cents, issued_at, expires_at,
                               {_NOT_LATER.format(col="redeemed_at")}, {_NOT_LATER.format(col="voided_at")}) AS r
            FROM rewards
            WHERE {_in_period("issued_at")} OR {_in_period("redeemed_at")} OR {_in_period("voided_at")}
               OR (expires_at >= $1 AND expires_at < $3)"""
    ),
    "program_rules": RULES_DIGEST,
}

MAILING_DIGESTS = {
    "subscriptions": _digest(
        f"""WITH {MAILING_POPULATION}
            SELECT s.id AS k, ROW(s.id, s.member_id, s.channel, {_NOT_LATER.format(col="s.erased_at")},
                CASE WHEN NOT EXISTS (SELECT 1 FROM subscription_events e WHERE e.subscription_id = s.id)
                     THEN ROW(s.subscribed_at, {_NOT_LATER.format(col="s.unsubscribed_at")}) END) AS r
            FROM subscriptions s JOIN subscription_state st ON st.id = s.id"""
    ),
    "subscription_events": _digest(
        "SELECT id AS k, ROW(id, subscription_id, kind, occurred_at) AS r FROM subscription_events "
        "WHERE occurred_at < $2"
    ),
    "offer_deliveries": _digest(
        f"""SELECT ROW(offer_id, subscription_id, sent_at) AS r, offer_id, subscription_id
            FROM offer_deliveries WHERE {_in_period("sent_at")}"""
    ),
    "offers": _digest(
        f"""SELECT f.id AS k, ROW(f.id, f.code, f.value_cents, f.channel) AS r FROM offers f
            WHERE f.id IN (SELECT offer_id FROM offer_deliveries WHERE {_in_period("sent_at")})
               OR f.code IN (SELECT o->>'code' FROM purchases p,
                                    jsonb_array_elements(coalesce(p.body->'offers', '[]')) o
                             WHERE {_in_period("p.occurred_at")})"""
    ),
    "purchases": PURCHASES_DIGEST,
}


# --- reading a report in one snapshot ------------------------------------------------------


async def rules_in_force(conn: asyncpg.Connection, when: datetime) -> Rules:
    """The rules version in force at `when` (the earliest version if none was yet)."""
    versions = [rules_from_row(r) for r in await conn.fetch("SELECT version, effective_from, body FROM program_rules")]
    try:
        return rules.rules_for(versions, when)
    except LookupError:
        return min(versions, key=lambda r: r.version) if versions else rules.DEFAULT_RULES


def earning_per_100(version: Rules) -> tuple[int, int]:
    """Point-cents that $100 of merchandise earns: paid otherwise, and paid with the Westique Credit Card."""
    lines = [("merchandise", 10_000)]
    return (rules.earning(version, lines, [("cash", 10_000)]).point_cents,
            rules.earning(version, lines, [(CARD_TENDER, 10_000)]).point_cents)


async def _histogram(conn: asyncpg.Connection, program: str, method: str, args: tuple) -> list[Bin]:
    exact = await _fetch(conn, histogram_values_sql(program, method), args)
    if len(exact) <= HISTOGRAM_EXACT_VALUES:
        return [Bin(r["cents"], r["cents"], r["members"]) for r in exact]
    rows = await _fetch(conn, histogram_bins_sql(program, method), args)
    top = rows[-1]["max_cents"]
    counts = {r["bin"]: r["members"] for r in rows}
    bins = [Bin(0, 0, counts.get(0, 0))]
    for k in range(1, HISTOGRAM_BINS + 1):
        low, high = (k - 1) * top // HISTOGRAM_BINS + 1, k * top // HISTOGRAM_BINS
        if high >= low:
            bins.append(Bin(low, high, counts.get(k, 0)))
    return bins


async def read_valuation(conn: asyncpg.Connection, request: ReportRequest) -> Read:
    """Everything the incentive-value report needs, read in one REPEATABLE READ, read-only snapshot."""
    program, method, period = request.program, request.method, request.period
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        await conn.execute("SET LOCAL TIME ZONE 'UTC'")  # timestamps digest as text, the same everywhere
        snapshot_time = await conn.fetchval("SELECT transaction_timestamp()")
        when = as_of(period, snapshot_time)
        args = (period.lower, period.upper, when)
        segments = {
            r["segment"]: SegmentFigures(r["counted"], r["total_cents"], tuple(r["percentiles"] or (0,) * 5),
                                         r["max_cents"], r["zero"])
            for r in await _fetch(conn, distribution_sql(program, method), args)
        }
        histogram = await _histogram(conn, program, method, args)
        if program == "rewards":
            figures = dict((await _fetch(conn, REWARDS_FIGURES, args))[0])
            versions = (await _fetch(conn, REWARDS_RULES_VERSIONS, args))[0][0]
            digests = REWARDS_DIGESTS
        else:
            figures = dict((await _fetch(conn, MAILING_FIGURES, args))[0])
            versions = (await _fetch(conn, MAILING_RULES_VERSIONS, args))[0][0]
            digests = MAILING_DIGESTS
        table_digests, rows_read = {}, {}
        for table, sql in digests.items():
            row = (await _fetch(conn, sql, args))[0]
            table_digests[table], rows_read[table] = row["digest"], row["n"]
        version = await rules_in_force(conn, period.upper - timedelta(microseconds=1))
    counted = segments["all"].counted if "all" in segments else 0
    members = {k: figures[k] for k in ("at_start", "at_end", "enrolled", "cancelled", "erased")} | {"counted": counted}
    rewards_keys = ("issued_count", "issued_cents", "redeemed_count", "redeemed_cents")
    rewards_figures = {k: figures[k] for k in rewards_keys}
    for k in ("expired_count", "expired_cents", "voided_count", "voided_cents"):
        rewards_figures[k] = figures.get(k, 0)  # offers neither expire nor get voided
    points = None
    if program == "rewards":
        points = {k: figures[k] for k in ("earned_point_cents", "bonus_point_cents", "reversed_point_cents",
                                          "forfeited_point_cents")}
    return Read(
        members=members,
        spend={"qualifying_cents": figures["qualifying_cents"], "card_cents": figures["card_cents"]},
        points=points,
        rewards=rewards_figures,
        segments=segments,
        histogram=histogram,
        rules_versions=list(versions),
        rows_read=rows_read,
        table_digests=table_digests,
        earning_per_100=earning_per_100(version),
        reward_threshold_point_cents=version.reward_threshold_point_cents,
        reward_value_cents=version.reward_value_cents,
        snapshot_time=snapshot_time,
    )


_PARAMETER = re.compile(r"\$([1-9])\b")


async def _fetch(conn: asyncpg.Connection, sql: str, args: tuple) -> list[asyncpg.Record]:
    """Run with the parameters the statement names, renumbered in order ($2 alone becomes $1)."""
    used = sorted({int(n) for n in _PARAMETER.findall(sql)})
    number = {old: new for new, old in enumerate(used, start=1)}
    return await conn.fetch(_PARAMETER.sub(lambda m: f"${number[int(m.group(1))]}", sql),
                            *(args[n - 1] for n in used))


# --- the liability report -----------------------------------------------------------------

# $1: the cutoff (the first instant after the as-of date)
POINTS_OUTSTANDING = """
WITH balances AS (SELECT member_id, sum(point_cents) AS pc FROM ledger WHERE occurred_at < $1 GROUP BY member_id)
SELECT coalesce(sum(pc) FILTER (WHERE pc > 0), 0)::bigint AS point_cents,
       count(*) FILTER (WHERE pc > 0) AS members_with_points,
       coalesce(-sum(pc) FILTER (WHERE pc < 0), 0)::bigint AS negative_point_cents,
       count(*) FILTER (WHERE pc < 0) AS members_negative,
       (SELECT count(*) FROM ledger WHERE occurred_at < $1) AS ledger_rows
FROM balances"""

# Rewards issued by the cutoff and neither redeemed nor voided by then, by how soon they expire.
OPEN_REWARDS = """
SELECT CASE WHEN expires_at <= $1 THEN 'expired'
            WHEN expires_at <= $1 + interval '30 days' THEN 'within_30_days'
            WHEN expires_at <= $1 + interval '60 days' THEN 'within_60_days'
            WHEN expires_at <= $1 + interval '90 days' THEN 'within_90_days'
            ELSE 'later' END AS bucket,
       count(*) AS count, coalesce(sum(value_cents), 0)::bigint AS cents
FROM rewards
WHERE issued_at < $1 AND (redeemed_at IS NULL OR redeemed_at >= $1) AND (voided_at IS NULL OR voided_at >= $1)
GROUP BY bucket"""


async def read_liability(
    conn: asyncpg.Connection, cutoff: datetime
) -> tuple[asyncpg.Record, list[asyncpg.Record], Rules]:
    """Balances and open rewards at `cutoff`, and the rules in force then, in one snapshot."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        points = await conn.fetchrow(POINTS_OUTSTANDING, cutoff)
        buckets = await conn.fetch(OPEN_REWARDS, cutoff)
        version = await rules_in_force(conn, cutoff - timedelta(microseconds=1))
    return points, list(buckets), version
