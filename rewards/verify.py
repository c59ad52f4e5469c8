"""`rewards verify`: recompute every balance and reward from the ledger and say what differs.

Each check is one query that returns the rows that break an invariant (empty when all is
well), plus a recomputation of every purchase's earning with the rules it was posted under.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import asyncpg
import msgspec

from rewards import rules
from rewards.rulebook import rules_from_row

# (what must hold, the query returning each row that breaks it)
CHECKS: list[tuple[str, str]] = [
    (
        "a member's balance equals the sum of their ledger entries",
        """SELECT m.id AS member_id, m.point_cents AS cached, coalesce(l.total, 0) AS ledger
           FROM members m LEFT JOIN (SELECT member_id, sum(point_cents) AS total FROM ledger GROUP BY member_id) l
             ON l.member_id = m.id
           WHERE m.point_cents <> coalesce(l.total, 0)""",
    ),
    (
        "a member's reward count equals their rewards and their reward_issued entries (with those moved in and out)",
        """SELECT m.id AS member_id, m.rewards_issued AS cached, coalesce(r.n, 0) AS held,
                  coalesce(l.issued, 0) AS issued, coalesce(l.moved_in, 0) AS moved_in,
                  coalesce(l.moved_out, 0) AS moved_out
           FROM members m
           LEFT JOIN (SELECT member_id, count(*) AS n FROM rewards GROUP BY member_id) r ON r.member_id = m.id
           LEFT JOIN (SELECT member_id, count(*) FILTER (WHERE kind = 'reward_issued') AS issued,
                             count(*) FILTER (WHERE kind = 'reward_moved_in') AS moved_in,
                             count(*) FILTER (WHERE kind = 'reward_moved_out') AS moved_out
                      FROM ledger WHERE kind IN ('reward_issued', 'reward_moved_in', 'reward_moved_out')
                      GROUP BY member_id) l ON l.member_id = m.id
           WHERE m.rewards_issued <> coalesce(l.issued, 0) + coalesce(l.moved_in, 0)
              OR coalesce(r.n, 0) <> m.rewards_issued - coalesce(l.moved_out, 0)""",
    ),
    (
        "a member's rewards are numbered 1..n without gaps (but for those moved out to another member)",
        """SELECT w.member_id, max(w.ordinal) AS highest, m.rewards_issued FROM rewards w JOIN members m ON m.id = w.member_id
           GROUP BY w.member_id, m.rewards_issued HAVING max(w.ordinal) > m.rewards_issued""",
    ),
    (
        "each reward's state is explained by exactly its ledger entries (and who holds it)",
        """SELECT w.code, w.status, w.member_id, e.issued, e.redeemed, e.reinstated, e.voided, e.issued_points,
                  e.moved_out, e.moved_in, e.holder
           FROM rewards w
           LEFT JOIN (SELECT reward_id,
                             count(*) FILTER (WHERE kind = 'reward_issued') AS issued,
                             count(*) FILTER (WHERE kind = 'reward_redeemed') AS redeemed,
                             count(*) FILTER (WHERE kind = 'reward_reinstated') AS reinstated,
                             count(*) FILTER (WHERE kind = 'reward_voided') AS voided,
                             count(*) FILTER (WHERE kind = 'reward_moved_out') AS moved_out,
                             count(*) FILTER (WHERE kind = 'reward_moved_in') AS moved_in,
                             count(*) FILTER (WHERE kind = 'reward_expired') AS expired,
                             sum(point_cents) FILTER (WHERE kind = 'reward_issued') AS issued_points,
                             -- who holds it: the member it last moved to, or the one it was issued to
                             (array_agg(member_id ORDER BY id DESC)
                                  FILTER (WHERE kind IN ('reward_issued', 'reward_moved_in')))[1] AS holder
                      FROM ledger WHERE reward_id IS NOT NULL GROUP BY reward_id) e ON e.reward_id = w.id
           WHERE coalesce(e.issued, 0) <> 1
              OR e.issued_points <> -w.cost_point_cents
              OR coalesce(e.redeemed, 0) - coalesce(e.reinstated, 0) <> (w.status = 'redeemed')::int
              OR coalesce(e.reinstated, 0) > coalesce(e.redeemed, 0)
              OR coalesce(e.voided, 0) <> (w.status = 'voided')::int
              OR coalesce(e.expired, 0) <> (w.status = 'expired')::int
              OR coalesce(e.moved_out, 0) <> coalesce(e.moved_in, 0)
              OR e.holder IS DISTINCT FROM w.member_id""",
    ),
    (
        "a reward is on the record as expired only once it has expired, as of its expiry",
        """SELECT l.id AS entry_id, w.code, w.expires_at, l.occurred_at, l.created_at
           FROM ledger l JOIN rewards w ON w.id = l.reward_id
           WHERE l.kind = 'reward_expired' AND (l.occurred_at <> w.expires_at OR l.created_at < w.expires_at)""",
    ),
    (
        "a redeemed reward was tendered by a purchase of its own member",
        """SELECT w.code, w.member_id, p.member_id AS purchase_member
           FROM rewards w JOIN purchases p ON p.id = w.redeemed_purchase_id
           WHERE p.member_id <> w.member_id OR NOT (w.code = ANY (p.rewards_redeemed))""",
    ),
    (
        "a purchase's earning equals its earn and card_bonus entries",
        """SELECT p.ext_id, p.point_cents, p.bonus_point_cents, coalesce(l.earned, 0) AS earned,
                  coalesce(l.bonus, 0) AS bonus
           FROM purchases p LEFT JOIN (
               SELECT purchase_id, sum(point_cents) FILTER (WHERE kind IN ('earn', 'card_bonus')) AS earned,
                      sum(point_cents) FILTER (WHERE kind = 'card_bonus') AS bonus
               FROM ledger WHERE purchase_id IS NOT NULL AND kind IN ('earn', 'card_bonus') GROUP BY purchase_id
           ) l ON l.purchase_id = p.id
           WHERE p.point_cents <> coalesce(l.earned, 0) OR p.bonus_point_cents <> coalesce(l.bonus, 0)""",
    ),
    (
        "a return's reversal equals its ledger entry, and a purchase never loses more than it earned",
        """SELECT p.ext_id, p.point_cents, sum(r.point_cents_reversed) AS reversed, t.ledger_reversed
           FROM purchases p JOIN purchase_returns r ON r.purchase_id = p.id
           CROSS JOIN LATERAL (SELECT coalesce(-sum(l.point_cents), 0) AS ledger_reversed FROM ledger l
                               JOIN purchase_returns r2 ON r2.id = l.return_id
                               WHERE r2.purchase_id = p.id AND l.kind = 'return') t
           GROUP BY p.id, t.ledger_reversed
           HAVING sum(r.point_cents_reversed) > p.point_cents OR sum(r.point_cents_reversed) <> t.ledger_reversed""",
    ),
    (
        "a reward voided by a return gives back what it cost, one voided at cancellation nothing",
        """SELECT l.id AS entry_id, w.code, l.point_cents, w.cost_point_cents, l.return_id
           FROM ledger l JOIN rewards w ON w.id = l.reward_id
           WHERE l.kind = 'reward_voided'
             AND l.point_cents <> CASE WHEN l.return_id IS NULL THEN 0 ELSE w.cost_point_cents END""",
    ),
    (
        "a purchase was computed with the rules version in force at its occurred_at, as stored when it was posted",
        """SELECT p.ext_id, p.occurred_at, p.rules_version, v.version AS in_force
           FROM purchases p LEFT JOIN LATERAL (
               SELECT version FROM program_rules r
               WHERE r.effective_from <= p.occurred_at AND r.created_at <= p.created_at
               ORDER BY r.effective_from DESC, r.version DESC LIMIT 1) v ON true
           WHERE v.version IS DISTINCT FROM p.rules_version""",
    ),
    (
        "every ledger entry and member change says who made it: one key, one guest session, or the system",
        """SELECT 'ledger' AS what, id, member_id, kind FROM ledger
           WHERE num_nonnulls(actor_key_id, actor_session_id, actor_system) <> 1
           UNION ALL
           SELECT 'member_changes', id, member_id, kind FROM member_changes
           WHERE num_nonnulls(actor_key_id, actor_session_id, actor_system) <> 1""",
    ),
    (
        "an adjustment's points are exactly its one adjustment entry",
        """SELECT a.ext_id, a.point_cents, coalesce(sum(l.point_cents), 0) AS ledger, count(l.id) AS entries
           FROM adjustments a LEFT JOIN ledger l ON l.adjustment_id = a.id AND l.kind = 'adjustment'
           GROUP BY a.id HAVING count(l.id) <> 1 OR coalesce(sum(l.point_cents), 0) <> a.point_cents""",
    ),
    (
        "points moved from one member to another (a merge, a carried debt) arrive whole",
        """SELECT least(member_id, counterpart_member_id) AS one, greatest(member_id, counterpart_member_id) AS other,
                  sum(point_cents) AS lost
           FROM ledger WHERE kind IN ('merge_out', 'merge_in', 'debt_carried_out', 'debt_carried_in')
           GROUP BY 1, 2 HAVING sum(point_cents) <> 0""",
    ),
    (
        "a merged member holds no points and no open reward, and lives on in a member not merged itself",
        """SELECT m.id AS member_id, m.point_cents, t.id AS merged_into, t.status AS target_status,
                  (SELECT count(*) FROM rewards w WHERE w.member_id = m.id AND w.status = 'issued'
                                                     AND w.expires_at > m.cancelled_at) AS open_rewards
           FROM members m LEFT JOIN members t ON t.id = m.merged_into
           WHERE m.status = 'merged'
             AND (m.point_cents <> 0 OR t.id IS NULL OR t.status = 'merged'
                  OR EXISTS (SELECT 1 FROM rewards w WHERE w.member_id = m.id AND w.status = 'issued'
                                                       AND w.expires_at > m.cancelled_at))""",
    ),
    (
        "a cancelled member holds no open reward and no positive balance from before cancelling",
        """SELECT m.id AS member_id, m.point_cents, count(w.id) AS open_rewards
           FROM members m LEFT JOIN rewards w
             ON w.member_id = m.id AND w.status = 'issued' AND w.expires_at > m.cancelled_at
           WHERE m.status = 'cancelled'
           GROUP BY m.id
           HAVING count(w.id) > 0
               OR m.point_cents > 0 AND NOT EXISTS (SELECT 1 FROM ledger l WHERE l.member_id = m.id
                                                    AND l.created_at > m.cancelled_at)""",
    ),
    (
        "an erased member keeps no personal data",
        """SELECT id AS member_id FROM members WHERE erased_at IS NOT NULL
             AND (name IS NOT NULL OR email IS NOT NULL OR phone IS NOT NULL OR birth_date IS NOT NULL
                  OR email_normalized IS NOT NULL OR phone_normalized IS NOT NULL)""",
    ),
    (
        "a subscription's status is the one its latest consent event gave it",
        """SELECT s.id AS subscription_id, s.status, e.kind AS latest_event
           FROM subscriptions s LEFT JOIN LATERAL (
               SELECT kind FROM subscription_events WHERE subscription_id = s.id ORDER BY id DESC LIMIT 1
           ) e ON true
           WHERE e.kind IS NULL OR (s.status = 'active') <> (e.kind IN ('subscribed', 'renewed'))""",
    ),
    (
        "an erased member keeps no subscription address",
        """SELECT s.id AS subscription_id, m.id AS member_id FROM subscriptions s JOIN members m ON m.id = s.member_id
           WHERE m.erased_at IS NOT NULL AND s.address IS NOT NULL""",
    ),
    (
        "an erased member's privacy requests keep no personal data",
        """SELECT r.id AS request_id, m.id AS member_id FROM privacy_requests r JOIN members m ON m.id = r.member_id
           WHERE m.erased_at IS NOT NULL
             AND (r.address IS NOT NULL OR r.details IS NOT NULL OR r.subject_hash IS NOT NULL)""",
    ),
    (
        "a member's erasure record agrees with the member",
        """SELECT e.member_id, e.erased_at AS recorded, m.erased_at AS member FROM member_erasures e
           JOIN members m ON m.id = e.member_id WHERE e.erased_at IS DISTINCT FROM m.erased_at""",
    ),
    (
        "an erased address kept opted out is active nowhere",
        """SELECT s.id AS opted_in_id, s.channel FROM subscriptions s
           JOIN opt_out_hashes o ON o.channel = s.channel AND o.address_hash = privacy_hash(s.address)
           WHERE s.status = 'active' AND s.address IS NOT NULL""",
    ),
]

# (what must hold, the query returning each row that breaks it, given REWARDS_EXPIRY_INTERVAL as $1)
EXPIRY_CHECK = (
    "a reward past its expiry for longer than REWARDS_EXPIRY_INTERVAL has its reward_expired entry "
    "(the jobs of `rewards serve`, or `rewards jobs run --once`, write them)",
    """SELECT w.code, w.expires_at, i.created_at AS issued_recorded_at
       FROM rewards w JOIN ledger i ON i.reward_id = w.id AND i.kind = 'reward_issued'
       WHERE w.status = 'issued' AND w.expires_at < now() - $1::interval AND i.created_at < now() - $1::interval""",
)
DEFAULT_EXPIRY_INTERVAL = timedelta(hours=1)

RECOMPUTE_BATCH = 5000

RETURNS_BY_PURCHASE = """
    SELECT p.ext_id, p.rules_version, p.body->'lines' AS lines, p.body->'tenders' AS tenders, p.point_cents,
           array_agg(r.ext_id ORDER BY r.id) AS return_ids, array_agg(r.by_units ORDER BY r.id) AS by_units,
           array_agg(r.point_cents_reversed ORDER BY r.id) AS reversed,
           json_agg(r.body->'request'->'lines' ORDER BY r.id)::text AS asked
    FROM purchases p JOIN purchase_returns r ON r.purchase_id = p.id
    GROUP BY p.id ORDER BY p.id"""


async def _purchases(conn: asyncpg.Connection) -> AsyncIterator[asyncpg.Record]:
    async with conn.transaction(readonly=True, isolation="repeatable_read"):
        async for row in conn.cursor(
            """SELECT ext_id, rules_version, body, qualifying_cents, card_cents, point_cents, bonus_point_cents
               FROM purchases ORDER BY id""",
            prefetch=RECOMPUTE_BATCH,
        ):
            yield row


async def recompute_earnings(conn: asyncpg.Connection, limit: int = 100) -> list[str]:
    """Every purchase's earning recomputed from its body with its own rules version."""
    versions = {r["version"]: rules_from_row(r) for r in await conn.fetch("SELECT version, effective_from, body FROM program_rules")}
    problems: list[str] = []
    async for p in _purchases(conn):
        body = p["body"]
        e = rules.earning(
            versions[p["rules_version"]],
            [(line["category"], line["amount_cents"]) for line in body["lines"]],
            [(t["method"], t["amount_cents"]) for t in body["tenders"]],
        )
        stored = (p["qualifying_cents"], p["card_cents"], p["point_cents"], p["bonus_point_cents"])
        if stored != (e.qualifying_cents, e.card_cents, e.point_cents, e.bonus_point_cents) and len(problems) < limit:
            problems.append(f"purchase {p['ext_id']}: stored {stored}, recomputed "
                            f"{(e.qualifying_cents, e.card_cents, e.point_cents, e.bonus_point_cents)}")
    return problems


async def recompute_returns(conn: asyncpg.Connection, limit: int = 100) -> list[str]:
    """Every return's reversal recomputed from its purchase and the purchase's rules version, the
    returns before it replayed in order (points follow the units); and a purchase whose every
    unit came back has given back exactly what it earned."""
    versions = {r["version"]: rules_from_row(r) for r in await conn.fetch(
        "SELECT version, effective_from, body FROM program_rules")}
    problems: list[str] = []
    async with conn.transaction(readonly=True, isolation="repeatable_read"):
        async for p in conn.cursor(RETURNS_BY_PURCHASE, prefetch=RECOMPUTE_BATCH):
            if len(problems) >= limit:
                break
            if not all(p["by_units"]):  # returns posted before points followed the units: not recomputable
                continue
            lines = [rules.BoughtLine(x["sku"], x["category"], x["quantity"], x["amount_cents"]) for x in p["lines"]]
            tenders = [(t["method"], t["amount_cents"]) for t in p["tenders"]]
            version = versions[p["rules_version"]]
            left = rules.nothing_returned(lines)
            for return_id, stored, asked in zip(p["return_ids"], p["reversed"], msgspec.json.decode(p["asked"]),
                                                strict=True):
                try:
                    after = rules.take_back(lines, left, [rules.ReturnedLine(x["sku"], x["quantity"],
                                                                             x["amount_cents"]) for x in asked])
                except rules.ReturnRefused as refused:
                    problems.append(f"return {return_id} of purchase {p['ext_id']}: {refused}")
                    break
                expected = rules.point_cents_reversed(version, lines, tenders, left, after)
                if expected != stored:
                    problems.append(f"return {return_id} of purchase {p['ext_id']}: took back {stored} point-cents, "
                                    f"recomputed {expected}")
                left = after
            if all(x.units == 0 for x in left.lines) and sum(p["reversed"]) != p["point_cents"]:
                problems.append(f"purchase {p['ext_id']}: every unit returned, {sum(p['reversed'])} point-cents "
                                f"taken back of the {p['point_cents']} it earned")
    return problems


async def find_problems(
    conn: asyncpg.Connection, *, recompute: bool = True, progress: Callable[[str], None] | None = None,
    expiry_interval: timedelta = DEFAULT_EXPIRY_INTERVAL,
) -> list[str]:
    """Every broken invariant, one line each; an empty list means the ledger is sound.

    `expiry_interval`: REWARDS_EXPIRY_INTERVAL, how long a reward may stay past its expiry (or
    past being recorded, for history imported already expired) without its `reward_expired` entry.
    """
    problems: list[str] = []
    checks: list[tuple[str, str, tuple[object, ...]]] = [(what, query, ()) for what, query in CHECKS]
    checks.append((*EXPIRY_CHECK, (expiry_interval,)))
    for what, query, args in checks:
        if progress:
            progress(what)
        for row in await conn.fetch(query + " LIMIT 100", *args):
            problems.append(f"{what}: " + ", ".join(f"{k}={v}" for k, v in row.items()))
    if recompute:
        if progress:
            progress("each purchase's earning, recomputed with its rules version")
        problems.extend(await recompute_earnings(conn))
        if progress:
            progress("each return's reversal, recomputed by units with its purchase's rules version")
        problems.extend(await recompute_returns(conn))
    return problems
