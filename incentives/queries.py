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

import asyncio
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


# --- digests: a hash of every input row, added up ------------------------------------------

_HASH = {
    "bigint": "hashint8extended({x}, {seed})",
    "integer": "hashint4extended({x}, {seed})",
    "text": "hashtextextended({x}, {seed})",
    "jsonb": "jsonb_hash_extended({x}, {seed})",
    # an instant as its distance from a fixed one: hashes to the value timestamp_hash_extended
    # gives the stored instant, without a cast to timestamp (which breaks the instant down
    # into a calendar date and costs more than the hash)
    "timestamptz": "interval_hash_extended({x}, {seed})",
}
_SINCE = {"timestamptz": "({x}) - '2000-01-01 00:00+00'::timestamptz"}
# What a NULL is hashed as: a value the column never holds (ids and versions are positive;
# no instant lies ten thousand years before 2000)
_NULL_AS = {"bigint": "0", "integer": "0", "jsonb": "'null'::jsonb", "timestamptz": "interval '-9999 years'"}


def _row_hash(*columns: str) -> str:
    """A 64-bit hash of one row: each column ("expr type", or "expr type?" when it may be NULL)
    is hashed by its type's own hash function, seeded with the hash of the columns before it,
    so the row is hashed as a whole (a value moved to another column or another row changes
    it). These are the functions PostgreSQL hashes partitions with, so they stay the same from
    one server and one version to the next; each is a function call, where the SHA-256 of the
    row's text cost more than reading the row."""
    h = "0"
    for column in columns:
        expr, _, kind = column.rpartition(" ")
        nullable = kind.endswith("?")
        kind = kind.rstrip("?")
        expr = _SINCE.get(kind, "{x}").format(x=expr)
        if nullable:
            expr = f"coalesce({expr}, {_NULL_AS[kind]})"
        h = _HASH[kind].format(x=expr, seed=h)
    return h


def _digest_of(n: str, *sums: str) -> str:
    """The digest of a table's rows from their count and the sums of their hashes. A sum does
    not depend on the order rows are read in, needs no sort, is computed in parallel and in
    bounded memory; a changed, added or removed row changes it."""
    parts = " || ':' || ".join(f"coalesce({x}, 0)" for x in sums)
    return f"encode(sha256(convert_to({n} || ':' || {parts}, 'UTF8')), 'hex')"


def _digest(rows: str, row_hash: str) -> str:
    """Row count and digest of the rows `rows` selects (`row_hash` over its columns)."""
    return f"SELECT count(*) AS n, {_digest_of('count(*)', f'sum({row_hash})')} AS digest FROM ({rows}) t"


# --- who is counted, and what each is worth ---------------------------------------------------

# whether the Westique Credit Card paid part of purchase p (a stored column, sql/008)
CARD_PAID = "p.card_paid"

# The rewards program's one pass over the period's purchases: per rules version, the spend,
# the points earned (the earn and card_bonus entries' amounts, kept on the purchase), the
# rows and their hashes, and apart from the others each member who paid with the card (the
# card holders), so the spend and points figures, the card holders, the rules versions and
# the digest all come from a single read of the largest table.
BOUGHT = f"""
bought AS (
    SELECT CASE WHEN {CARD_PAID} THEN p.member_id END AS card_member, p.rules_version, count(*) AS n,
           sum(p.qualifying_cents) AS qualifying_cents, sum(p.card_cents) AS card_cents,
           sum(p.point_cents) AS point_cents, sum(p.bonus_point_cents) AS bonus_point_cents,
           sum({_row_hash("p.id bigint", "p.member_id bigint", "p.rules_version integer",
                          "p.qualifying_cents bigint", "p.card_cents bigint", "p.point_cents bigint",
                          "p.bonus_point_cents bigint")}) AS h
    FROM purchases p WHERE {_in_period("p.occurred_at")}
    GROUP BY 1, 2
)"""

# The rewards program: members enrolled at any time in the period; also anyone with a
# purchase in it (a purchase imported from before the enrollment was recorded still makes
# its buyer a member of that period, so every Reward redeemed belongs to someone counted).
# Only a member not enrolled in the period is looked up among the purchases (by index).
_ENROLLED_IN_PERIOD = "m.enrolled_at < $2 AND (m.cancelled_at IS NULL OR m.cancelled_at >= $1)"
REWARDS_POPULATION = f"""
population AS (
    SELECT m.id AS unit, m.id AS member_id FROM members m WHERE {_ENROLLED_IN_PERIOD}
    UNION ALL
    SELECT m.id, m.id FROM members m
    WHERE NOT coalesce({_ENROLLED_IN_PERIOD}, false)
      AND EXISTS (SELECT 1 FROM purchases p WHERE p.member_id = m.id AND {_in_period("p.occurred_at")})
),
card_holders AS (SELECT card_member AS member_id FROM bought WHERE card_member IS NOT NULL)"""


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
    SELECT DISTINCT p.member_id FROM purchases p WHERE {_in_period("p.occurred_at")} AND {CARD_PAID}
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

# What each unit is worth under each method, as rows to add up: (program, method) -> SELECT unit, cents.
VALUES = {
    ("rewards", "expenses"): f"SELECT member_id AS unit, value_cents AS cents FROM rewards WHERE {_in_period('redeemed_at')}",
    ("rewards", "rewards_issued"): f"SELECT member_id AS unit, value_cents AS cents FROM rewards WHERE {_in_period('issued_at')}",
    ("mailing_list", "expenses"): "SELECT member_id AS unit, discount_cents AS cents FROM offer_uses",
    ("mailing_list", "rewards_issued"): f"""SELECT coalesce(s.member_id, -s.id) AS unit, f.value_cents AS cents
        FROM offer_deliveries d JOIN offers f ON f.id = d.offer_id JOIN subscriptions s ON s.id = d.subscription_id
        WHERE {_in_period("d.sent_at")}""",
}
# the program expense is added in incentives.valuation: the same amount for every member
VALUES[("rewards", "expenses_plus_program")] = VALUES[("rewards", "expenses")]
VALUES[("mailing_list", "expenses_plus_program")] = VALUES[("mailing_list", "expenses")]


def per_member(program: str, method: str) -> str:
    """The WITH clause ending in `per_member(unit, cents, card_holder)`: everyone counted, once.

    One aggregate by unit over the population, the rows of value and the card holders
    together (a card holder's unit is their member id, as a member's is), keeping the units
    counted: cheaper than joining a million members to their values and to the card holders.
    """
    if program == "rewards":
        inputs = f"{BOUGHT}, {REWARDS_POPULATION}"
    else:
        inputs = f"{MAILING_POPULATION}, {OFFER_USES}, {CARD_HOLDERS}"
    return f"""WITH {inputs},
per_member AS (
    SELECT unit, coalesce(sum(cents), 0)::bigint AS cents, bool_or(card_holder) AS card_holder
    FROM (SELECT unit, NULL::bigint AS cents, false AS card_holder, true AS counted FROM population
          UNION ALL
          SELECT unit, cents, false, false FROM ({VALUES[(program, method)]}) v
          UNION ALL
          SELECT member_id, NULL, true, false FROM card_holders) rows
    GROUP BY unit HAVING bool_or(counted)
)"""


def _percentile(p: float) -> str:
    # percentile_disc(p): the value at rank ceil(p × N) (the first at rank 1), the same float8
    # arithmetic as PostgreSQL's own; found here from the members counted at each value
    return f"min(cents) FILTER (WHERE upto >= greatest(1, ceil({p}::float8 * counted::float8)))"


def distribution_sql(program: str, method: str) -> str:
    """One statement: the members counted at each value and segment (`dist`, a few rows: values
    are whole Rewards), and from it, per segment ("all", "card_holders", "others") the counted,
    total, percentile_disc at PERCENTILES, max and zeros, and both histograms (exact values,
    and equal-width bins). For the rewards program also the purchases' figures and digest,
    from the same single pass over them."""
    purchases = ""
    if program == "rewards":
        purchases = f""",
    (SELECT coalesce(sum(qualifying_cents), 0)::bigint FROM bought) AS qualifying_cents,
    (SELECT coalesce(sum(card_cents), 0)::bigint FROM bought) AS card_cents,
    (SELECT coalesce(sum(point_cents), 0)::bigint FROM bought) AS earned_point_cents,
    (SELECT coalesce(sum(bonus_point_cents), 0)::bigint FROM bought) AS bonus_point_cents,
    (SELECT coalesce(array_agg(DISTINCT rules_version ORDER BY rules_version), '{{}}') FROM bought)
        AS purchase_rules_versions,
    (SELECT coalesce(sum(n), 0)::bigint FROM bought) AS purchases_n,
    (SELECT {_digest_of("coalesce(sum(n), 0)", "sum(h) FILTER (WHERE card_member IS NOT NULL)",
                        "sum(h) FILTER (WHERE card_member IS NULL)")} FROM bought) AS purchases_digest"""
    return per_member(program, method) + f""",
dist AS (SELECT card_holder, cents, count(*) AS members FROM per_member GROUP BY card_holder, cents),
by_segment AS (
    SELECT CASE WHEN card_holder THEN 'card_holders' ELSE 'others' END AS segment, cents, members FROM dist
    UNION ALL
    SELECT 'all', cents, sum(members) FROM dist GROUP BY cents
),
ranked AS (
    SELECT segment, cents, members, sum(members) OVER (PARTITION BY segment ORDER BY cents) AS upto,
           sum(members) OVER (PARTITION BY segment) AS counted
    FROM by_segment
),
segments AS (
    SELECT segment, max(counted)::bigint AS counted, sum(cents * members)::bigint AS total_cents,
           ARRAY[{", ".join(_percentile(p) for p in PERCENTILES)}] AS percentiles,
           max(cents) AS max_cents, coalesce(sum(members) FILTER (WHERE cents = 0), 0)::bigint AS zero
    FROM ranked GROUP BY segment
),
top AS (SELECT max(cents) AS m FROM dist)
SELECT
    (SELECT coalesce(jsonb_agg(s), '[]') FROM segments s) AS segments,
    (SELECT coalesce(jsonb_agg(v ORDER BY v.cents), '[]') FROM (
        SELECT cents, sum(members)::bigint AS members FROM dist GROUP BY cents ORDER BY cents
        LIMIT {HISTOGRAM_EXACT_VALUES + 1}) v) AS histogram_values,
    (SELECT coalesce(jsonb_agg(b ORDER BY b.bin), '[]') FROM (
        SELECT CASE WHEN cents = 0 THEN 0 ELSE (cents * {HISTOGRAM_BINS} + top.m - 1) / top.m END AS bin,
               sum(members)::bigint AS members, top.m AS max_cents
        FROM dist, top GROUP BY 1, top.m) b) AS histogram_bins{purchases}"""


# --- the period's figures ----------------------------------------------------------------

# expired in the period (up to the as-of time): it reached its expiry neither redeemed nor voided
_EXPIRED = ("expires_at >= $1 AND expires_at < $3 AND (redeemed_at IS NULL OR redeemed_at >= expires_at)"
            " AND (voided_at IS NULL OR voided_at >= expires_at)")
_NOT_LATER = "CASE WHEN {col} < $2 THEN {col} END"  # a later change is not an input of this period

# One pass over the members: the counts and the digest.
MEMBERS_FIGURES = f"""
SELECT count(*) FILTER (WHERE enrolled_at < $1 AND (cancelled_at IS NULL OR cancelled_at >= $1)) AS at_start,
       count(*) FILTER (WHERE enrolled_at < $2 AND (cancelled_at IS NULL OR cancelled_at >= $2)) AS at_end,
       count(*) FILTER (WHERE {_in_period("enrolled_at")}) AS enrolled,
       count(*) FILTER (WHERE {_in_period("cancelled_at")}) AS cancelled,
       count(*) FILTER (WHERE {_in_period("erased_at")}) AS erased,
       count(*) FILTER (WHERE enrolled_at < $2) AS n,
       {_digest_of("count(*) FILTER (WHERE enrolled_at < $2)", "sum(" + _row_hash(
           "id bigint", "enrolled_at timestamptz", f"{_NOT_LATER.format(col='cancelled_at')} timestamptz?",
           f"{_NOT_LATER.format(col='erased_at')} timestamptz?")
           + ") FILTER (WHERE enrolled_at < $2)")} AS digest
FROM members"""

# The period's ledger entries that take points back (returns, forfeits at cancellation), by
# index: the points earned are read with the purchases (BOUGHT).
LEDGER_FIGURES = f"""
SELECT coalesce(-sum(point_cents) FILTER (WHERE kind = 'return'), 0)::bigint AS reversed_point_cents,
       coalesce(-sum(point_cents) FILTER (WHERE kind = 'forfeit'), 0)::bigint AS forfeited_point_cents,
       coalesce(array_agg(DISTINCT rules_version ORDER BY rules_version) FILTER (WHERE rules_version IS NOT NULL),
                '{{}}') AS rules_versions,
       count(*) AS n,
       {_digest_of("count(*)", "sum(" + _row_hash("id bigint", "kind text", "point_cents bigint",
                                                 "rules_version integer?") + ")")} AS digest
FROM ledger WHERE kind IN ('return', 'forfeit') AND {_in_period("occurred_at")}"""

# One pass over the rewards: the rewards figures and the digest of every reward the period
# touched (issued, redeemed, voided or expired in it), aggregated in parallel workers.
_TOUCHED = (f"{_in_period('issued_at')} OR {_in_period('redeemed_at')} OR {_in_period('voided_at')}"
            " OR (expires_at >= $1 AND expires_at < $3)")
REWARDS_FIGURES = f"""
SELECT count(*) FILTER (WHERE issued) AS issued_count,
       coalesce(sum(value_cents) FILTER (WHERE issued), 0)::bigint AS issued_cents,
       count(*) FILTER (WHERE redeemed) AS redeemed_count,
       coalesce(sum(value_cents) FILTER (WHERE redeemed), 0)::bigint AS redeemed_cents,
       count(*) FILTER (WHERE expired) AS expired_count,
       coalesce(sum(value_cents) FILTER (WHERE expired), 0)::bigint AS expired_cents,
       count(*) FILTER (WHERE voided) AS voided_count,
       coalesce(sum(value_cents) FILTER (WHERE voided), 0)::bigint AS voided_cents,
       count(*) AS n, {_digest_of("count(*)", "sum(h)")} AS digest
FROM (SELECT value_cents, {_in_period("issued_at")} AS issued, {_in_period("redeemed_at")} AS redeemed,
             {_EXPIRED} AS expired, {_in_period("voided_at")} AS voided,
             {_row_hash("id bigint", "member_id bigint", "value_cents bigint", "issued_at timestamptz",
                        "expires_at timestamptz", f"{_NOT_LATER.format(col='redeemed_at')} timestamptz?",
                        f"{_NOT_LATER.format(col='voided_at')} timestamptz?")} AS h
      FROM rewards WHERE {_TOUCHED}) touched"""

RULES_DIGEST = _digest("SELECT version, effective_from, body FROM program_rules WHERE effective_from < $2",
                       _row_hash("version integer", "effective_from timestamptz", "body jsonb"))

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

MAILING_RULES_VERSIONS = f"""
SELECT coalesce(array_agg(DISTINCT rules_version ORDER BY rules_version), '{{}}')
FROM purchases WHERE {_in_period("occurred_at")}"""

MAILING_DIGESTS = {
    "subscriptions": _digest(
        f"""WITH {MAILING_POPULATION}
            SELECT s.id, s.member_id, s.channel, {_NOT_LATER.format(col="s.erased_at")} AS erased_at,
                   -- a subscription without events is read from its own columns (with events: from them)
                   CASE WHEN NOT EXISTS (SELECT 1 FROM subscription_events e WHERE e.subscription_id = s.id)
                        THEN ARRAY[s.subscribed_at, {_NOT_LATER.format(col="s.unsubscribed_at")}] END AS own
            FROM subscriptions s JOIN subscription_state st ON st.id = s.id""",
        _row_hash("id bigint", "member_id bigint?", "channel text", "erased_at timestamptz?",
                  "own[1] timestamptz?", "own[2] timestamptz?")),
    "subscription_events": _digest(
        "SELECT id, subscription_id, kind, occurred_at FROM subscription_events WHERE occurred_at < $2",
        _row_hash("id bigint", "subscription_id bigint", "kind text", "occurred_at timestamptz")),
    "offer_deliveries": _digest(
        f"SELECT offer_id, subscription_id, sent_at FROM offer_deliveries WHERE {_in_period('sent_at')}",
        _row_hash("offer_id bigint", "subscription_id bigint", "sent_at timestamptz")),
    "offers": _digest(
        f"""SELECT f.id, f.code, f.value_cents, f.channel FROM offers f
            WHERE f.id IN (SELECT offer_id FROM offer_deliveries WHERE {_in_period("sent_at")})
               OR f.code IN (SELECT o->>'code' FROM purchases p,
                                    jsonb_array_elements(coalesce(p.body->'offers', '[]')) o
                             WHERE {_in_period("p.occurred_at")})""",
        _row_hash("id bigint", "code text", "value_cents bigint", "channel text")),
    "purchases": _digest(
        f"""SELECT p.id, p.member_id, p.occurred_at, p.rules_version, p.qualifying_cents, p.card_cents,
                   p.point_cents, p.bonus_point_cents, ({CARD_PAID})::integer AS card_paid, p.body->'offers' AS offers
            FROM purchases p WHERE {_in_period("p.occurred_at")}""",
        _row_hash("id bigint", "member_id bigint", "occurred_at timestamptz", "rules_version integer",
                  "qualifying_cents bigint", "card_cents bigint", "point_cents bigint", "bonus_point_cents bigint",
                  "card_paid integer", "offers jsonb?")),
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


def _histogram(values: list[dict], bins: list[dict]) -> list[Bin]:
    """One bar per value when there are few distinct values; otherwise members at $0, then
    HISTOGRAM_BINS equal-width bins over (0, max]: bin k holds ((k-1)max/n, k max/n]."""
    if len(values) <= HISTOGRAM_EXACT_VALUES:
        return [Bin(r["cents"], r["cents"], r["members"]) for r in values]
    top = bins[-1]["max_cents"]
    counts = {r["bin"]: r["members"] for r in bins}
    histogram = [Bin(0, 0, counts.get(0, 0))]
    for k in range(1, HISTOGRAM_BINS + 1):
        low, high = (k - 1) * top // HISTOGRAM_BINS + 1, k * top // HISTOGRAM_BINS
        if high >= low:
            histogram.append(Bin(low, high, counts.get(k, 0)))
    return histogram


# the report's statements in its snapshot: big tables get more memory and parallel workers;
# no JIT, which compiles for longer than it saves on these statements
REPORT_SETTINGS = ("SET LOCAL TIME ZONE 'UTC'", "SET LOCAL jit = off", "SET LOCAL work_mem = '128MB'",
                   "SET LOCAL max_parallel_workers_per_gather = 2", "SET LOCAL parallel_tuple_cost = 0.01")
NO_SEGMENT = SegmentFigures(0, 0, (0,) * len(PERCENTILES), 0, 0)


async def read_valuation(conn: asyncpg.Connection, side: asyncpg.Connection, request: ReportRequest) -> Read:
    """Everything the incentive-value report needs, read in one REPEATABLE READ, read-only snapshot.

    Each large table is read once: the purchases with the distribution (one statement) on
    `conn`, meanwhile the members, the ledger and the rewards on `side`, each one pass giving
    its figures and its digest. `side` reads the very snapshot `conn` exported, so the two
    see one state of the database; the distribution has serial steps (the aggregate of the
    members' values runs in the leader alone) during which the other connection keeps the
    other core busy.
    """
    program, method, period = request.program, request.method, request.period
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        for setting in REPORT_SETTINGS:
            await conn.execute(setting)
        snapshot_time, snapshot = await conn.fetchrow("SELECT transaction_timestamp(), pg_export_snapshot()")
        when = as_of(period, snapshot_time)
        args = (period.lower, period.upper, when)
        async with side.transaction(isolation="repeatable_read", readonly=True):
            if not _SNAPSHOT_ID.fullmatch(snapshot):
                raise ValueError(f"unexpected snapshot id {snapshot!r}")
            await side.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")  # first: before any query
            for setting in REPORT_SETTINGS:
                await side.execute(setting)
            dist_rows, (figures, table_rows, versions) = await asyncio.gather(
                _fetch(conn, distribution_sql(program, method), args), _read_tables(side, program, args))
            version = await rules_in_force(side, period.upper - timedelta(microseconds=1))
    dist = dist_rows[0]
    segments = {
        r["segment"]: SegmentFigures(r["counted"], r["total_cents"], tuple(r["percentiles"]), r["max_cents"], r["zero"])
        for r in dist["segments"]
    }
    segments.setdefault("all", NO_SEGMENT)
    histogram = _histogram(dist["histogram_values"], dist["histogram_bins"])
    table_digests = {table: row["digest"] for table, row in table_rows.items()}
    rows_read = {table: row["n"] for table, row in table_rows.items()}
    if program == "rewards":
        members, entries, rewards = table_rows["members"], table_rows["ledger"], table_rows["rewards"]
        figures = dict(members) | dict(entries) | dict(rewards) | {
            k: dist[k] for k in ("qualifying_cents", "card_cents", "earned_point_cents", "bonus_point_cents")}
        versions = sorted(set(dist["purchase_rules_versions"]) | set(entries["rules_versions"]))
        table_digests["purchases"], rows_read["purchases"] = dist["purchases_digest"], dist["purchases_n"]
    counted = segments["all"].counted
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
_SNAPSHOT_ID = re.compile(r"[0-9A-F]+(-[0-9A-F]+)+")

# the rewards program's tables read apart from the purchases, each one pass: figures and digest
REWARDS_TABLES = {"members": MEMBERS_FIGURES, "ledger": LEDGER_FIGURES, "rewards": REWARDS_FIGURES,
                  "program_rules": RULES_DIGEST}


async def _read_tables(conn: asyncpg.Connection, program: str, args: tuple
                      ) -> tuple[dict, dict[str, asyncpg.Record], list[int]]:
    """What the report reads besides the distribution: (figures, each table's row count and
    digest, rules versions); for the rewards program the figures are in the tables' rows."""
    figures: dict = {}
    versions: list[int] = []
    if program == "mailing_list":
        figures = dict((await _fetch(conn, MAILING_FIGURES, args))[0])
        versions = list((await _fetch(conn, MAILING_RULES_VERSIONS, args))[0][0])
    tables = REWARDS_TABLES if program == "rewards" else MAILING_DIGESTS
    return figures, {name: (await _fetch(conn, sql, args))[0] for name, sql in tables.items()}, versions


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
        # fetch, not fetchrow: asyncpg asks fetchrow's row with a row limit, and PostgreSQL runs
        # no parallel workers for a statement whose rows may be fetched in several goes
        (points,) = await conn.fetch(POINTS_OUTSTANDING, cutoff)
        buckets = await conn.fetch(OPEN_REWARDS, cutoff)
        version = await rules_in_force(conn, cutoff - timedelta(microseconds=1))
    return points, list(buckets), version
