"""The reports' SQL: static statements, each with its own numbered parameters, read in one snapshot.

Each report reads one `REPEATABLE READ`, read-only transaction (`read_valuation`,
`read_liability`), so its figures describe one consistent state of the ledger even while
purchases are being posted. Every statement below is complete as written: a `Statement`
names the values of its `$1`, `$2`, … in order, taken from the report's parameters:
`lower` (the period's first instant), `upper` (the first instant after it), `as_of` (the
report's as-of time, never after `upper`), `zone` (the program's time zone) and `method`.

The population ("counted", the denominator) and each member's value are added up in one
statement per program (`REWARDS_DISTRIBUTION`, `MAILING_DISTRIBUTION`), which returns the
members counted at each value: the percentiles and the chart are worked out from those
counts (`incentives.distribution`), so the figures reconcile by construction: the sum of
the members' values under the default method is the `redeemed_cents` figure.

Digests. Each table's rows read are digested in SQL: every row is hashed by its columns'
own hash functions (`hashint8extended`, `hashtextextended`, `jsonb_hash_extended`, and for
an instant `interval_hash_extended` of its distance from 2000-01-01, which hashes as the
instant itself without breaking it down into a calendar date), each seeded with the hash
of the columns before it, so a value moved to another column or row changes the hash;
NULL is hashed as a value the column never holds. The hashes are added up: a sum does not
depend on the order rows are read in, needs no sort, is computed in parallel and in
bounded memory; a changed, added or removed row changes it. These are the functions
PostgreSQL hashes partitions with, stable from one server and version to the next. The
rows digested never depend on `as_of`, so an unfinished period's digest stays the same
while no row changes.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any

import asyncpg
import msgspec

from incentives import distribution
from incentives.disclosures import Disclosures
from incentives.valuation import Read, ReportRequest, as_of
from rewards import rules
from rewards.rulebook import rules_from_row
from rewards.rules import Rules


@dataclass(frozen=True)
class Statement:
    sql: str
    params: tuple[str, ...]  # the report parameter passed as $1, $2, …


# --- the rewards program -------------------------------------------------------------------

# One pass over the period's purchases, grouped by rules version and, apart from the
# others, by each member who paid with the Westique Credit Card (the card holders): the
# spend and points figures, the card holders, the rules versions, the first and last
# purchase and the purchases' digest all come from a single read of the largest table (the
# CASE expression is the one sql/008's statistics describe). The population: members
# enrolled at any time in the period, and anyone with a purchase in it (a purchase imported
# from before the enrollment was recorded still makes its buyer a member of that period, so
# every Reward redeemed belongs to someone counted). Each member's value: the Rewards they
# redeemed in the period, or those issued to them under `rewards_issued` ($3); one
# aggregate by member over the population, the values and the card holders together.
REWARDS_DISTRIBUTION = Statement("""
WITH bought AS (
    SELECT CASE WHEN p.card_paid THEN p.member_id END AS card_member, p.rules_version, count(*) AS n,
           sum(p.qualifying_cents) AS qualifying_cents, sum(p.card_cents) AS card_cents,
           sum(p.point_cents) AS point_cents, sum(p.bonus_point_cents) AS bonus_point_cents,
           min(p.occurred_at) AS first_at, max(p.occurred_at) AS last_at,
           sum(hashint8extended(p.bonus_point_cents, hashint8extended(p.point_cents,
               hashint8extended(p.card_cents, hashint8extended(p.qualifying_cents,
               hashint4extended(p.rules_version, hashint8extended(p.member_id, hashint8extended(p.id, 0)))))))) AS h
    FROM purchases p WHERE p.occurred_at >= $1 AND p.occurred_at < $2
    GROUP BY 1, 2
),
population AS (
    SELECT m.id AS unit FROM members m WHERE m.enrolled_at < $2 AND (m.cancelled_at IS NULL OR m.cancelled_at >= $1)
    UNION ALL
    SELECT m.id FROM members m
    WHERE NOT coalesce(m.enrolled_at < $2 AND (m.cancelled_at IS NULL OR m.cancelled_at >= $1), false)
      AND EXISTS (SELECT 1 FROM purchases p WHERE p.member_id = m.id AND p.occurred_at >= $1 AND p.occurred_at < $2)
),
member_values AS (
    SELECT member_id AS unit, value_cents AS cents FROM rewards
    WHERE $3::text <> 'rewards_issued' AND redeemed_at >= $1 AND redeemed_at < $2
    UNION ALL
    SELECT member_id, value_cents FROM rewards
    WHERE $3::text = 'rewards_issued' AND issued_at >= $1 AND issued_at < $2
),
per_member AS (
    SELECT unit, coalesce(sum(cents), 0)::bigint AS cents, bool_or(card_holder) AS card_holder
    FROM (SELECT unit, NULL::bigint AS cents, false AS card_holder, true AS counted FROM population
          UNION ALL
          SELECT unit, cents, false, false FROM member_values
          UNION ALL
          SELECT card_member, NULL, true, false FROM bought WHERE card_member IS NOT NULL) rows
    GROUP BY unit HAVING bool_or(counted)
),
dist AS (SELECT card_holder, cents, count(*) AS members FROM per_member GROUP BY card_holder, cents)
SELECT
    (SELECT coalesce(array_agg(card_holder), '{}') FROM dist) AS card_holder,
    (SELECT coalesce(array_agg(cents), '{}') FROM dist) AS cents,
    (SELECT coalesce(array_agg(members), '{}') FROM dist) AS members,
    (SELECT coalesce(sum(qualifying_cents), 0)::bigint FROM bought) AS qualifying_cents,
    (SELECT coalesce(sum(card_cents), 0)::bigint FROM bought) AS card_cents,
    (SELECT coalesce(sum(point_cents), 0)::bigint FROM bought) AS earned_point_cents,
    (SELECT coalesce(sum(bonus_point_cents), 0)::bigint FROM bought) AS bonus_point_cents,
    (SELECT min(first_at) FROM bought) AS first_purchase,
    (SELECT max(last_at) FROM bought) AS last_purchase,
    (SELECT coalesce(array_agg(DISTINCT rules_version ORDER BY rules_version), '{}') FROM bought)
        AS purchase_rules_versions,
    (SELECT coalesce(sum(n), 0)::bigint FROM bought) AS purchases_n,
    (SELECT encode(sha256(convert_to(coalesce(sum(n), 0) || ':'
                                     || coalesce(sum(h) FILTER (WHERE card_member IS NOT NULL), 0) || ':'
                                     || coalesce(sum(h) FILTER (WHERE card_member IS NULL), 0), 'UTF8')), 'hex')
     FROM bought) AS purchases_digest
""", ("lower", "upper", "method"))

# One pass over the members: the counts, the time enrolled in the period up to as-of on the
# program's clock (wall-clock time in its zone, so every day of the period counts a whole
# day, whatever daylight saving does; whole seconds), the first enrollment of all, and the
# digest of every member enrolled before the period's end.
REWARDS_MEMBERS = Statement("""
SELECT count(*) FILTER (WHERE enrolled_at < $1 AND (cancelled_at IS NULL OR cancelled_at >= $1)) AS at_start,
       count(*) FILTER (WHERE enrolled_at < $2 AND (cancelled_at IS NULL OR cancelled_at >= $2)) AS at_end,
       count(*) FILTER (WHERE enrolled_at >= $1 AND enrolled_at < $2) AS enrolled,
       count(*) FILTER (WHERE cancelled_at >= $1 AND cancelled_at < $2) AS cancelled,
       count(*) FILTER (WHERE erased_at >= $1 AND erased_at < $2) AS erased,
       count(*) FILTER (WHERE enrolled_at < $2 AND (cancelled_at IS NULL OR cancelled_at >= $1)) AS enrolled_counted,
       coalesce(sum(greatest(0, date_part('epoch',
                    (least(coalesce(cancelled_at, $3), $3) AT TIME ZONE $4)
                    - (greatest(enrolled_at, $1) AT TIME ZONE $4)))::bigint)
                FILTER (WHERE enrolled_at < $3 AND (cancelled_at IS NULL OR cancelled_at > $1)), 0)::bigint
           AS member_seconds,
       min(enrolled_at) AS first_joined,
       count(*) FILTER (WHERE enrolled_at < $2) AS n,
       encode(sha256(convert_to(count(*) FILTER (WHERE enrolled_at < $2) || ':' || coalesce(sum(
           interval_hash_extended(coalesce((CASE WHEN erased_at < $2 THEN erased_at END)
                                           - '2000-01-01 00:00+00'::timestamptz, interval '-9999 years'),
           interval_hash_extended(coalesce((CASE WHEN cancelled_at < $2 THEN cancelled_at END)
                                           - '2000-01-01 00:00+00'::timestamptz, interval '-9999 years'),
           interval_hash_extended(enrolled_at - '2000-01-01 00:00+00'::timestamptz, hashint8extended(id, 0)))))
           FILTER (WHERE enrolled_at < $2), 0), 'UTF8')), 'hex') AS digest
FROM members
""", ("lower", "upper", "as_of", "zone"))

# The period's ledger entries that take points back (returns, forfeits at cancellation), by
# index: the points earned are read with the purchases.
REWARDS_LEDGER = Statement("""
SELECT coalesce(-sum(point_cents) FILTER (WHERE kind = 'return'), 0)::bigint AS reversed_point_cents,
       coalesce(-sum(point_cents) FILTER (WHERE kind = 'forfeit'), 0)::bigint AS forfeited_point_cents,
       coalesce(array_agg(DISTINCT rules_version ORDER BY rules_version) FILTER (WHERE rules_version IS NOT NULL),
                '{}') AS rules_versions,
       count(*) AS n,
       encode(sha256(convert_to(count(*) || ':' || coalesce(sum(
           hashint4extended(coalesce(rules_version, 0), hashint8extended(point_cents,
           hashtextextended(kind, hashint8extended(id, 0))))), 0), 'UTF8')), 'hex') AS digest
FROM ledger WHERE kind IN ('return', 'forfeit') AND occurred_at >= $1 AND occurred_at < $2
""", ("lower", "upper"))

# One pass over the rewards: the figures, and the digest of every reward the period touches
# (issued, redeemed, voided or expiring in it). Expired: it reached its expiry, up to the
# as-of time ($3), neither redeemed nor voided. A change after the period is not an input.
REWARDS_REWARDS = Statement("""
SELECT count(*) FILTER (WHERE issued) AS issued_count,
       coalesce(sum(value_cents) FILTER (WHERE issued), 0)::bigint AS issued_cents,
       count(*) FILTER (WHERE redeemed) AS redeemed_count,
       coalesce(sum(value_cents) FILTER (WHERE redeemed), 0)::bigint AS redeemed_cents,
       count(*) FILTER (WHERE expired) AS expired_count,
       coalesce(sum(value_cents) FILTER (WHERE expired), 0)::bigint AS expired_cents,
       count(*) FILTER (WHERE voided) AS voided_count,
       coalesce(sum(value_cents) FILTER (WHERE voided), 0)::bigint AS voided_cents,
       count(*) AS n, encode(sha256(convert_to(count(*) || ':' || coalesce(sum(h), 0), 'UTF8')), 'hex') AS digest
FROM (SELECT value_cents,
             issued_at >= $1 AND issued_at < $2 AS issued,
             redeemed_at >= $1 AND redeemed_at < $2 AS redeemed,
             expires_at >= $1 AND expires_at < $3 AND (redeemed_at IS NULL OR redeemed_at >= expires_at)
                 AND (voided_at IS NULL OR voided_at >= expires_at) AS expired,
             voided_at >= $1 AND voided_at < $2 AS voided,
             interval_hash_extended(coalesce((CASE WHEN voided_at < $2 THEN voided_at END)
                                             - '2000-01-01 00:00+00'::timestamptz, interval '-9999 years'),
             interval_hash_extended(coalesce((CASE WHEN redeemed_at < $2 THEN redeemed_at END)
                                             - '2000-01-01 00:00+00'::timestamptz, interval '-9999 years'),
             interval_hash_extended(expires_at - '2000-01-01 00:00+00'::timestamptz,
             interval_hash_extended(issued_at - '2000-01-01 00:00+00'::timestamptz,
             hashint8extended(value_cents, hashint8extended(member_id, hashint8extended(id, 0))))))) AS h
      FROM rewards
      WHERE issued_at >= $1 AND issued_at < $2 OR redeemed_at >= $1 AND redeemed_at < $2
         OR voided_at >= $1 AND voided_at < $2 OR expires_at >= $1 AND expires_at < $2) touched
""", ("lower", "upper", "as_of"))

RULES_DIGEST = Statement("""
SELECT count(*) AS n, encode(sha256(convert_to(count(*) || ':' || coalesce(sum(
           jsonb_hash_extended(body, interval_hash_extended(effective_from - '2000-01-01 00:00+00'::timestamptz,
           hashint4extended(version, 0)))), 0), 'UTF8')), 'hex') AS digest
FROM program_rules WHERE effective_from < $1
""", ("upper",))


# --- the mailing list ----------------------------------------------------------------------

# A subscriber is a member (all of their subscriptions together), or an address not linked
# to any member (unit = minus the subscription's id). Whether a subscription was active just
# before an instant: its last opt-in or opt-out event before it says so (the consent
# record); one without any event falls back on its own columns; erasure ends it. Counted:
# subscribed at any time in the period. Time subscribed: each opt-in until the next opt-out
# (or the erasure), the units' spans joined (a member with an email and a text subscription
# is counted once for the same day), within the period up to as-of, on the program's clock.
# Each subscriber's value: the offer discounts on their purchases in the period matched to
# offers sent, or, under `rewards_issued` ($3), the offers sent to them.
MAILING_DISTRIBUTION = Statement("""
WITH subscription_state AS (
    SELECT s.id, coalesce(s.member_id, -s.id) AS unit, s.member_id,
        (NOT coalesce(s.erased_at < $1, false) AND coalesce(
            (SELECT e.kind <> 'unsubscribed' FROM subscription_events e
             WHERE e.subscription_id = s.id AND e.occurred_at < $1 ORDER BY e.occurred_at DESC, e.id DESC LIMIT 1),
            NOT EXISTS (SELECT 1 FROM subscription_events e WHERE e.subscription_id = s.id)
                AND s.subscribed_at < $1 AND (s.unsubscribed_at IS NULL OR s.unsubscribed_at >= $1))) AS at_start,
        (NOT coalesce(s.erased_at < $2, false) AND coalesce(
            (SELECT e.kind <> 'unsubscribed' FROM subscription_events e
             WHERE e.subscription_id = s.id AND e.occurred_at < $2 ORDER BY e.occurred_at DESC, e.id DESC LIMIT 1),
            NOT EXISTS (SELECT 1 FROM subscription_events e WHERE e.subscription_id = s.id)
                AND s.subscribed_at < $2 AND (s.unsubscribed_at IS NULL OR s.unsubscribed_at >= $2))) AS at_end,
        (EXISTS (SELECT 1 FROM subscription_events e WHERE e.subscription_id = s.id
                 AND e.kind IN ('subscribed', 'renewed') AND e.occurred_at >= $1 AND e.occurred_at < $2)
         OR (NOT EXISTS (SELECT 1 FROM subscription_events e WHERE e.subscription_id = s.id)
             AND s.subscribed_at >= $1 AND s.subscribed_at < $2)) AS opted_in,
        (EXISTS (SELECT 1 FROM subscription_events e WHERE e.subscription_id = s.id
                 AND e.kind = 'unsubscribed' AND e.occurred_at >= $1 AND e.occurred_at < $2)
         OR coalesce(s.erased_at >= $1 AND s.erased_at < $2, false)
         OR (NOT EXISTS (SELECT 1 FROM subscription_events e WHERE e.subscription_id = s.id)
             AND coalesce(s.unsubscribed_at >= $1 AND s.unsubscribed_at < $2, false))) AS opted_out,
        coalesce(s.erased_at >= $1 AND s.erased_at < $2, false) AS erased
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
population AS (SELECT unit, member_id FROM units WHERE counted),
spans AS (
    SELECT coalesce(s.member_id, -s.id) AS unit,
           tstzrange(e.occurred_at, greatest(e.occurred_at, least(
               coalesce((SELECT min(o.occurred_at) FROM subscription_events o WHERE o.subscription_id = s.id
                         AND o.kind = 'unsubscribed' AND (o.occurred_at, o.id) > (e.occurred_at, e.id)), 'infinity'),
               coalesce(s.erased_at, 'infinity')))) AS span
    FROM subscriptions s JOIN subscription_events e ON e.subscription_id = s.id AND e.kind IN ('subscribed', 'renewed')
    UNION ALL
    SELECT coalesce(s.member_id, -s.id),
           tstzrange(s.subscribed_at, greatest(s.subscribed_at, least(coalesce(s.unsubscribed_at, 'infinity'),
                                                                      coalesce(s.erased_at, 'infinity'))))
    FROM subscriptions s WHERE NOT EXISTS (SELECT 1 FROM subscription_events e WHERE e.subscription_id = s.id)
),
time_subscribed AS (
    SELECT unit, range_agg(span) * tstzmultirange(tstzrange($1, greatest($1, $4))) AS within FROM spans GROUP BY unit
),
offer_uses AS (
    SELECT p.member_id, u.discount_cents
    FROM purchases p
    CROSS JOIN LATERAL jsonb_to_recordset(coalesce(p.body->'offers', '[]')) AS u(code text, discount_cents bigint)
    JOIN offers f ON f.code = u.code
    WHERE p.occurred_at >= $1 AND p.occurred_at < $2
),
offers_sent AS (
    SELECT coalesce(s.member_id, -s.id) AS unit, f.value_cents
    FROM offer_deliveries d JOIN offers f ON f.id = d.offer_id JOIN subscriptions s ON s.id = d.subscription_id
    WHERE d.sent_at >= $1 AND d.sent_at < $2
),
counted_purchases AS (
    SELECT p.qualifying_cents, p.card_cents, p.card_paid, p.member_id FROM purchases p
    WHERE p.occurred_at >= $1 AND p.occurred_at < $2 AND p.member_id IN (SELECT member_id FROM population)
),
per_member AS (
    SELECT unit, coalesce(sum(cents), 0)::bigint AS cents, bool_or(card_holder) AS card_holder
    FROM (SELECT unit, NULL::bigint AS cents, false AS card_holder, true AS counted FROM population
          UNION ALL
          SELECT member_id, discount_cents, false, false FROM offer_uses WHERE $3::text <> 'rewards_issued'
          UNION ALL
          SELECT unit, value_cents, false, false FROM offers_sent WHERE $3::text = 'rewards_issued'
          UNION ALL
          SELECT DISTINCT member_id, NULL::bigint, true, false FROM counted_purchases WHERE card_paid) rows
    GROUP BY unit HAVING bool_or(counted)
),
dist AS (SELECT card_holder, cents, count(*) AS members FROM per_member GROUP BY card_holder, cents),
counted_uses AS (SELECT u.discount_cents FROM offer_uses u JOIN population pop ON pop.member_id = u.member_id),
counted_sent AS (SELECT o.value_cents FROM offers_sent o JOIN population pop ON pop.unit = o.unit)
SELECT
    (SELECT coalesce(array_agg(card_holder), '{}') FROM dist) AS card_holder,
    (SELECT coalesce(array_agg(cents), '{}') FROM dist) AS cents,
    (SELECT coalesce(array_agg(members), '{}') FROM dist) AS members,
    (SELECT count(*) FILTER (WHERE at_start) FROM units) AS at_start,
    (SELECT count(*) FILTER (WHERE at_end) FROM units) AS at_end,
    (SELECT count(*) FILTER (WHERE opted_in) FROM units) AS enrolled,
    (SELECT count(*) FILTER (WHERE opted_out) FROM units) AS cancelled,
    (SELECT count(*) FILTER (WHERE erased) FROM units) AS erased,
    (SELECT count(*) FROM population WHERE member_id IS NULL) AS unmatched,
    (SELECT coalesce(sum(date_part('epoch', (upper(r) AT TIME ZONE $5) - (lower(r) AT TIME ZONE $5))::bigint), 0)
     FROM time_subscribed, unnest(within) r)::bigint AS member_seconds,
    (SELECT min(coalesce((SELECT min(e.occurred_at) FROM subscription_events e WHERE e.subscription_id = s.id),
                         s.subscribed_at)) FROM subscriptions s) AS first_joined,
    (SELECT coalesce(sum(qualifying_cents), 0)::bigint FROM counted_purchases) AS qualifying_cents,
    (SELECT coalesce(sum(card_cents), 0)::bigint FROM counted_purchases) AS card_cents,
    (SELECT count(*) FROM counted_sent) AS issued_count,
    (SELECT coalesce(sum(value_cents), 0)::bigint FROM counted_sent) AS issued_cents,
    (SELECT count(*) FROM counted_uses) AS redeemed_count,
    (SELECT coalesce(sum(discount_cents), 0)::bigint FROM counted_uses) AS redeemed_cents,
    (SELECT count(*) FROM subscription_state) AS subscriptions_n,
    (SELECT encode(sha256(convert_to(count(*) || ':' || coalesce(sum(
        interval_hash_extended(coalesce(own[2] - '2000-01-01 00:00+00'::timestamptz, interval '-9999 years'),
        interval_hash_extended(coalesce(own[1] - '2000-01-01 00:00+00'::timestamptz, interval '-9999 years'),
        interval_hash_extended(coalesce(erased_at - '2000-01-01 00:00+00'::timestamptz, interval '-9999 years'),
        hashtextextended(channel, hashint8extended(coalesce(member_id, 0), hashint8extended(id, 0))))))), 0),
        'UTF8')), 'hex')
     FROM (SELECT s.id, s.member_id, s.channel, CASE WHEN s.erased_at < $2 THEN s.erased_at END AS erased_at,
                  -- a subscription without events is read from its own columns (with events: from them)
                  CASE WHEN NOT EXISTS (SELECT 1 FROM subscription_events e WHERE e.subscription_id = s.id)
                       THEN ARRAY[s.subscribed_at, CASE WHEN s.unsubscribed_at < $2 THEN s.unsubscribed_at END]
                  END AS own
           FROM subscriptions s JOIN subscription_state st ON st.id = s.id) t) AS subscriptions_digest
""", ("lower", "upper", "method", "as_of", "zone"))

MAILING_EVENTS = Statement("""
SELECT count(*) AS n, encode(sha256(convert_to(count(*) || ':' || coalesce(sum(
           interval_hash_extended(occurred_at - '2000-01-01 00:00+00'::timestamptz,
           hashtextextended(kind, hashint8extended(subscription_id, hashint8extended(id, 0))))), 0), 'UTF8')), 'hex')
           AS digest
FROM subscription_events WHERE occurred_at < $1
""", ("upper",))

MAILING_DELIVERIES = Statement("""
SELECT count(*) AS n, encode(sha256(convert_to(count(*) || ':' || coalesce(sum(
           interval_hash_extended(sent_at - '2000-01-01 00:00+00'::timestamptz,
           hashint8extended(subscription_id, hashint8extended(offer_id, 0)))), 0), 'UTF8')), 'hex') AS digest
FROM offer_deliveries WHERE sent_at >= $1 AND sent_at < $2
""", ("lower", "upper"))

MAILING_OFFERS = Statement("""
SELECT count(*) AS n, encode(sha256(convert_to(count(*) || ':' || coalesce(sum(
           hashtextextended(f.channel, hashint8extended(f.value_cents, hashtextextended(f.code,
           hashint8extended(f.id, 0))))), 0), 'UTF8')), 'hex') AS digest
FROM offers f
WHERE f.id IN (SELECT offer_id FROM offer_deliveries WHERE sent_at >= $1 AND sent_at < $2)
   OR f.code IN (SELECT o->>'code' FROM purchases p, jsonb_array_elements(coalesce(p.body->'offers', '[]')) o
                 WHERE p.occurred_at >= $1 AND p.occurred_at < $2)
""", ("lower", "upper"))

# the period's purchases (of everyone: who is counted is decided above): digest, rules
# versions, first and last
MAILING_PURCHASES = Statement("""
SELECT count(*) AS n,
       coalesce(array_agg(DISTINCT rules_version ORDER BY rules_version), '{}') AS rules_versions,
       min(occurred_at) AS first_purchase, max(occurred_at) AS last_purchase,
       encode(sha256(convert_to(count(*) || ':' || coalesce(sum(
           jsonb_hash_extended(coalesce(body->'offers', 'null'::jsonb), hashint4extended(card_paid::integer,
           hashint8extended(bonus_point_cents, hashint8extended(point_cents, hashint8extended(card_cents,
           hashint8extended(qualifying_cents, hashint4extended(rules_version,
           interval_hash_extended(occurred_at - '2000-01-01 00:00+00'::timestamptz,
           hashint8extended(member_id, hashint8extended(id, 0))))))))))), 0), 'UTF8')), 'hex') AS digest
FROM purchases WHERE occurred_at >= $1 AND occurred_at < $2
""", ("lower", "upper"))

RULES = Statement("SELECT version, effective_from, body FROM program_rules", ())
DISCLOSURES = Statement("SELECT version, body FROM program_disclosures ORDER BY version DESC LIMIT 1", ())


# --- reading a report in one snapshot ------------------------------------------------------


async def _fetch(conn: asyncpg.Connection, statement: Statement, values: dict[str, Any]) -> list[asyncpg.Record]:
    return await conn.fetch(statement.sql, *(values[name] for name in statement.params))


def rules_at(versions: list[Rules], when: datetime) -> Rules:
    """The rules version in force at `when` (the earliest version if none was yet)."""
    try:
        return rules.rules_for(versions, when)
    except LookupError:
        return min(versions, key=lambda r: r.version) if versions else rules.DEFAULT_RULES


async def rules_in_force(conn: asyncpg.Connection, when: datetime) -> Rules:
    return rules_at([rules_from_row(r) for r in await _fetch(conn, RULES, {})], when)


async def current_disclosures(conn: asyncpg.Connection) -> tuple[int, Disclosures]:
    (row,) = await _fetch(conn, DISCLOSURES, {})
    return row["version"], msgspec.convert(row["body"], Disclosures)


# the report's statements in its snapshot: big tables get more memory and parallel workers;
# no JIT, which compiles for longer than it saves on these statements
REPORT_SETTINGS = ("SET LOCAL TIME ZONE 'UTC'", "SET LOCAL jit = off", "SET LOCAL work_mem = '128MB'",
                   "SET LOCAL max_parallel_workers_per_gather = 2", "SET LOCAL parallel_tuple_cost = 0.01")
_SNAPSHOT_ID = re.compile(r"[0-9A-F]+(-[0-9A-F]+)+")
REWARDS_TABLES = {"members": REWARDS_MEMBERS, "ledger": REWARDS_LEDGER, "rewards": REWARDS_REWARDS,
                  "program_rules": RULES_DIGEST}
MAILING_TABLES = {"subscription_events": MAILING_EVENTS, "offer_deliveries": MAILING_DELIVERIES,
                  "offers": MAILING_OFFERS, "purchases": MAILING_PURCHASES}


async def read_valuation(conn: asyncpg.Connection, side: asyncpg.Connection, request: ReportRequest) -> Read:
    """Everything the incentive-value report needs, read in one REPEATABLE READ, read-only snapshot.

    Each large table is read once: the purchases with the distribution (one statement) on
    `conn`, meanwhile the members, the ledger and the rewards on `side`, each one pass giving
    its figures and its digest. `side` reads the very snapshot `conn` exported, so the two
    see one state of the database; the distribution has serial steps (the aggregate of the
    members' values runs in the leader alone) during which the other connection keeps the
    other core busy.
    """
    period = request.period
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        for setting in REPORT_SETTINGS:
            await conn.execute(setting)
        snapshot_time, snapshot = await conn.fetchrow("SELECT transaction_timestamp(), pg_export_snapshot()")
        when = as_of(period, snapshot_time)
        values = {"lower": period.lower, "upper": period.upper, "as_of": when, "zone": period.zone,
                  "method": request.method}
        async with side.transaction(isolation="repeatable_read", readonly=True):
            if not _SNAPSHOT_ID.fullmatch(snapshot):
                raise ValueError(f"unexpected snapshot id {snapshot!r}")
            await side.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")  # first: before any query
            for setting in REPORT_SETTINGS:
                await side.execute(setting)
            tables = REWARDS_TABLES if request.program == "rewards" else MAILING_TABLES
            main = REWARDS_DISTRIBUTION if request.program == "rewards" else MAILING_DISTRIBUTION
            (dist, *_), table_rows = await asyncio.gather(_fetch(conn, main, values), _read_tables(side, tables, values))
            version = await rules_in_force(side, when - timedelta(microseconds=1))
            disclosures_version, disclosures = await current_disclosures(side)
    counts = list(zip(dist["card_holder"], dist["cents"], dist["members"], strict=True))
    table_digests = {table: row["digest"] for table, row in table_rows.items()}
    rows_read = {table: row["n"] for table, row in table_rows.items()}
    shared = dict(segments=distribution.segments(counts), histogram=distribution.histogram(counts),
                  table_digests=table_digests, rows_read=rows_read, rules=version, disclosures=disclosures,
                  disclosures_version=disclosures_version, snapshot_time=snapshot_time)
    counted = sum(m for _, _, m in counts)
    if request.program == "rewards":
        members, entries, rewards_row = table_rows["members"], table_rows["ledger"], table_rows["rewards"]
        table_digests["purchases"], rows_read["purchases"] = dist["purchases_digest"], dist["purchases_n"]
        return Read(
            members={k: members[k] for k in ("at_start", "at_end", "enrolled", "cancelled", "erased")},
            member_seconds=Fraction(members["member_seconds"]),
            counted_without_time=counted - members["enrolled_counted"],
            spend={k: dist[k] for k in ("qualifying_cents", "card_cents")},
            points={k: dist[k] for k in ("earned_point_cents", "bonus_point_cents")}
            | {k: entries[k] for k in ("reversed_point_cents", "forfeited_point_cents")},
            rewards={k: rewards_row[k] for k in ("issued_count", "issued_cents", "redeemed_count", "redeemed_cents",
                                                 "expired_count", "expired_cents", "voided_count", "voided_cents")},
            rules_versions=sorted(set(dist["purchase_rules_versions"]) | set(entries["rules_versions"])),
            first_joined=members["first_joined"], first_purchase=dist["first_purchase"],
            last_purchase=dist["last_purchase"], **shared,
        )
    purchases = table_rows["purchases"]
    table_digests["subscriptions"], rows_read["subscriptions"] = dist["subscriptions_digest"], dist["subscriptions_n"]
    return Read(
        members={k: dist[k] for k in ("at_start", "at_end", "enrolled", "cancelled", "erased")},
        member_seconds=Fraction(dist["member_seconds"]),
        counted_without_time=0,
        spend={k: dist[k] for k in ("qualifying_cents", "card_cents")},
        points=None,
        # offers neither expire nor get voided
        rewards={k: dist[k] for k in ("issued_count", "issued_cents", "redeemed_count", "redeemed_cents")}
        | {"expired_count": 0, "expired_cents": 0, "voided_count": 0, "voided_cents": 0},
        rules_versions=list(purchases["rules_versions"]),
        first_joined=dist["first_joined"], first_purchase=purchases["first_purchase"],
        last_purchase=purchases["last_purchase"], unmatched=dist["unmatched"], **shared,
    )


async def _read_tables(conn: asyncpg.Connection, tables: dict[str, Statement], values: dict[str, Any]
                       ) -> dict[str, asyncpg.Record]:
    """Each side table's one pass: its figures, row count and digest."""
    return {name: (await _fetch(conn, statement, values))[0] for name, statement in tables.items()}


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
