"""`rewards verify`: recompute every balance and reward from the ledger and say what differs.

Each check is one query that returns the rows that break an invariant (empty when all is
well), plus a recomputation of every purchase's earning with the rules it was posted under.
The queries are Core selects over `rewards.tables`, each compiled once into a `Statement`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import asyncpg
import msgspec
from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Integer,
    Interval,
    Select,
    Table,
    Text,
    and_,
    any_,
    bindparam,
    case,
    cast,
    exists,
    func,
    literal,
    not_,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by

from rewards import rules
from rewards.rulebook import rules_from_row
from rewards.statements import Statement
from rewards.tables import (
    adjustments,
    ledger,
    member_changes,
    member_erasures,
    members,
    opt_out_hashes,
    privacy_requests,
    program_rules,
    purchase_returns,
    purchases,
    rewards,
    subscription_events,
    subscriptions,
)

Query = Select | CompoundSelect  # a check's query: the rows that break its invariant


def _counted(kind: str) -> ColumnElement[int]:
    """count(*) FILTER (WHERE kind = …), over ledger entries."""
    return func.count().filter(ledger.c.kind == kind)


def _balance() -> Query:
    entries = (select(ledger.c.member_id, func.sum(ledger.c.point_cents).label("total"))
               .group_by(ledger.c.member_id).subquery("l"))
    total = func.coalesce(entries.c.total, 0)
    return (select(members.c.id.label("member_id"), members.c.point_cents.label("cached"), total.label("ledger"))
            .select_from(members.outerjoin(entries, entries.c.member_id == members.c.id))
            .where(members.c.point_cents != total))


def _reward_count() -> Query:
    held = select(rewards.c.member_id, func.count().label("n")).group_by(rewards.c.member_id).subquery("r")
    entries = (select(ledger.c.member_id, _counted("reward_issued").label("issued"),
                      _counted("reward_moved_in").label("moved_in"), _counted("reward_moved_out").label("moved_out"))
               .where(ledger.c.kind.in_(("reward_issued", "reward_moved_in", "reward_moved_out")))
               .group_by(ledger.c.member_id).subquery("l"))
    n, issued, moved_in, moved_out = (func.coalesce(c, 0) for c in (held.c.n, entries.c.issued, entries.c.moved_in,
                                                                     entries.c.moved_out))
    cached = members.c.rewards_issued
    return (select(members.c.id.label("member_id"), cached.label("cached"), n.label("held"), issued.label("issued"),
                   moved_in.label("moved_in"), moved_out.label("moved_out"))
            .select_from(members.outerjoin(held, held.c.member_id == members.c.id)
                         .outerjoin(entries, entries.c.member_id == members.c.id))
            .where(or_(cached != issued + moved_in, n != cached - moved_out)))


def _reward_ordinals() -> Query:
    highest = func.max(rewards.c.ordinal)
    return (select(rewards.c.member_id, highest.label("highest"), members.c.rewards_issued)
            .select_from(rewards.join(members, members.c.id == rewards.c.member_id))
            .group_by(rewards.c.member_id, members.c.rewards_issued)
            .having(highest > members.c.rewards_issued))


def _reward_state() -> Query:
    entries = (
        select(ledger.c.reward_id,
               _counted("reward_issued").label("issued"),
               _counted("reward_redeemed").label("redeemed"),
               _counted("reward_reinstated").label("reinstated"),
               _counted("reward_voided").label("voided"),
               _counted("reward_moved_out").label("moved_out"),
               _counted("reward_moved_in").label("moved_in"),
               _counted("reward_expired").label("expired"),
               func.sum(ledger.c.point_cents).filter(ledger.c.kind == "reward_issued").label("issued_points"),
               # who holds it: the member it last moved to, or the one it was issued to
               func.array_agg(aggregate_order_by(ledger.c.member_id, ledger.c.id.desc()))
               .filter(ledger.c.kind.in_(("reward_issued", "reward_moved_in")))[1].label("holder"))
        .where(ledger.c.reward_id.is_not(None)).group_by(ledger.c.reward_id).subquery("e")
    )
    e = entries.c
    issued, redeemed, reinstated, voided, expired, moved_out, moved_in = (
        func.coalesce(c, 0) for c in (e.issued, e.redeemed, e.reinstated, e.voided, e.expired, e.moved_out,
                                      e.moved_in))

    def status_is(status: str) -> ColumnElement[int]:  # (w.status = …)::int
        return cast(rewards.c.status == status, Integer)

    return (select(rewards.c.code, rewards.c.status, rewards.c.member_id, e.issued, e.redeemed, e.reinstated,
                   e.voided, e.issued_points, e.moved_out, e.moved_in, e.holder)
            .select_from(rewards.outerjoin(entries, e.reward_id == rewards.c.id))
            .where(or_(issued != 1,
                       e.issued_points != -rewards.c.cost_point_cents,
                       redeemed - reinstated != status_is("redeemed"),
                       reinstated > redeemed,
                       voided != status_is("voided"),
                       expired != status_is("expired"),
                       moved_out != moved_in,
                       e.holder.is_distinct_from(rewards.c.member_id))))


def _expired_as_of_expiry() -> Query:
    return (select(ledger.c.id.label("entry_id"), rewards.c.code, rewards.c.expires_at, ledger.c.occurred_at,
                   ledger.c.created_at)
            .select_from(ledger.join(rewards, rewards.c.id == ledger.c.reward_id))
            .where(ledger.c.kind == "reward_expired",
                   or_(ledger.c.occurred_at != rewards.c.expires_at, ledger.c.created_at < rewards.c.expires_at)))


def _redeemed_by_own_purchase() -> Query:
    return (select(rewards.c.code, rewards.c.member_id, purchases.c.member_id.label("purchase_member"))
            .select_from(rewards.join(purchases, purchases.c.id == rewards.c.redeemed_purchase_id))
            .where(or_(purchases.c.member_id != rewards.c.member_id,
                       not_(rewards.c.code == any_(purchases.c.rewards_redeemed)))))


def _purchase_earning() -> Query:
    points = ledger.c.point_cents
    entries = (select(ledger.c.purchase_id,
                      func.sum(points).filter(ledger.c.kind.in_(("earn", "card_bonus"))).label("earned"),
                      func.sum(points).filter(ledger.c.kind == "card_bonus").label("bonus"))
               .where(ledger.c.purchase_id.is_not(None), ledger.c.kind.in_(("earn", "card_bonus")))
               .group_by(ledger.c.purchase_id).subquery("l"))
    earned, bonus = func.coalesce(entries.c.earned, 0), func.coalesce(entries.c.bonus, 0)
    return (select(purchases.c.ext_id, purchases.c.point_cents, purchases.c.bonus_point_cents, earned.label("earned"),
                   bonus.label("bonus"))
            .select_from(purchases.outerjoin(entries, entries.c.purchase_id == purchases.c.id))
            .where(or_(purchases.c.point_cents != earned, purchases.c.bonus_point_cents != bonus)))


def _return_reversal() -> Query:
    # the purchase's `return` entries, through its returns (a second alias: the outer query has one too)
    its_return = purchase_returns.alias("r2")
    taken = (select(func.coalesce(-func.sum(ledger.c.point_cents), 0).label("ledger_reversed"))
             .select_from(ledger.join(its_return, its_return.c.id == ledger.c.return_id))
             .where(its_return.c.purchase_id == purchases.c.id, ledger.c.kind == "return")
             .lateral("t"))
    reversed_ = func.sum(purchase_returns.c.point_cents_reversed)
    return (select(purchases.c.ext_id, purchases.c.point_cents, reversed_.label("reversed"), taken.c.ledger_reversed)
            .select_from(purchases.join(purchase_returns, purchase_returns.c.purchase_id == purchases.c.id)
                         .join(taken, true()))  # CROSS JOIN LATERAL
            .group_by(purchases.c.id, taken.c.ledger_reversed)
            .having(or_(reversed_ > purchases.c.point_cents, reversed_ != taken.c.ledger_reversed)))


def _voided_refund() -> Query:
    return (select(ledger.c.id.label("entry_id"), rewards.c.code, ledger.c.point_cents, rewards.c.cost_point_cents,
                   ledger.c.return_id)
            .select_from(ledger.join(rewards, rewards.c.id == ledger.c.reward_id))
            .where(ledger.c.kind == "reward_voided",
                   ledger.c.point_cents != case((ledger.c.return_id.is_(None), 0), else_=rewards.c.cost_point_cents)))


def _rules_in_force() -> Query:
    in_force = (select(program_rules.c.version)
                .where(program_rules.c.effective_from <= purchases.c.occurred_at,
                       program_rules.c.created_at <= purchases.c.created_at)
                .order_by(program_rules.c.effective_from.desc(), program_rules.c.version.desc())
                .limit(1).lateral("v"))
    return (select(purchases.c.ext_id, purchases.c.occurred_at, purchases.c.rules_version,
                   in_force.c.version.label("in_force"))
            .select_from(purchases.outerjoin(in_force, true()))
            .where(in_force.c.version.is_distinct_from(purchases.c.rules_version)))


def _actors() -> Query:
    def without_one_actor(table: Table) -> Select:
        return (select(literal(table.name, Text).label("what"), table.c.id, table.c.member_id, table.c.kind)
                .where(func.num_nonnulls(table.c.actor_key_id, table.c.actor_session_id, table.c.actor_system) != 1))

    return union_all(without_one_actor(ledger), without_one_actor(member_changes))


def _adjustment() -> Query:
    total, entries = func.coalesce(func.sum(ledger.c.point_cents), 0), func.count(ledger.c.id)
    return (select(adjustments.c.ext_id, adjustments.c.point_cents, total.label("ledger"), entries.label("entries"))
            .select_from(adjustments.outerjoin(ledger, and_(ledger.c.adjustment_id == adjustments.c.id,
                                                            ledger.c.kind == "adjustment")))
            .group_by(adjustments.c.id)
            .having(or_(entries != 1, total != adjustments.c.point_cents)))


def _points_moved() -> Query:
    one = func.least(ledger.c.member_id, ledger.c.counterpart_member_id)
    other = func.greatest(ledger.c.member_id, ledger.c.counterpart_member_id)
    lost = func.sum(ledger.c.point_cents)
    return (select(one.label("one"), other.label("other"), lost.label("lost"))
            .where(ledger.c.kind.in_(("merge_out", "merge_in", "debt_carried_out", "debt_carried_in")))
            .group_by(one, other)
            .having(lost != 0))


def _merged() -> Query:
    target = members.alias("t")
    open_reward = and_(rewards.c.member_id == members.c.id, rewards.c.status == "issued",
                       rewards.c.expires_at > members.c.cancelled_at)
    return (select(members.c.id.label("member_id"), members.c.point_cents, target.c.id.label("merged_into"),
                   target.c.status.label("target_status"),
                   select(func.count()).where(open_reward).scalar_subquery().label("open_rewards"))
            .select_from(members.outerjoin(target, target.c.id == members.c.merged_into))
            .where(members.c.status == "merged",
                   or_(members.c.point_cents != 0, target.c.id.is_(None), target.c.status == "merged",
                       exists().where(open_reward))))


def _cancelled() -> Query:
    open_rewards = func.count(rewards.c.id)
    # a positive balance is from before cancelling unless an entry was written since
    entry_since = exists().where(ledger.c.member_id == members.c.id, ledger.c.created_at > members.c.cancelled_at)
    return (select(members.c.id.label("member_id"), members.c.point_cents, open_rewards.label("open_rewards"))
            .select_from(members.outerjoin(rewards, and_(rewards.c.member_id == members.c.id,
                                                         rewards.c.status == "issued",
                                                         rewards.c.expires_at > members.c.cancelled_at)))
            .where(members.c.status == "cancelled")
            .group_by(members.c.id)
            .having(or_(open_rewards > 0, and_(members.c.point_cents > 0, not_(entry_since)))))


def _erased_member() -> Query:
    m = members.c
    personal = (m.name, m.email, m.phone, m.birth_date, m.email_normalized, m.phone_normalized)
    return select(m.id.label("member_id")).where(m.erased_at.is_not(None), or_(*(c.is_not(None) for c in personal)))


def _subscription_status() -> Query:
    latest = (select(subscription_events.c.kind).where(subscription_events.c.subscription_id == subscriptions.c.id)
              .order_by(subscription_events.c.id.desc()).limit(1).lateral("e"))
    return (select(subscriptions.c.id.label("subscription_id"), subscriptions.c.status,
                   latest.c.kind.label("latest_event"))
            .select_from(subscriptions.outerjoin(latest, true()))
            .where(or_(latest.c.kind.is_(None),
                       (subscriptions.c.status == "active") != latest.c.kind.in_(("subscribed", "renewed")))))


def _erased_subscription() -> Query:
    return (select(subscriptions.c.id.label("subscription_id"), members.c.id.label("member_id"))
            .select_from(subscriptions.join(members, members.c.id == subscriptions.c.member_id))
            .where(members.c.erased_at.is_not(None), subscriptions.c.address.is_not(None)))


def _erased_privacy_requests() -> Query:
    r = privacy_requests.c
    return (select(r.id.label("request_id"), members.c.id.label("member_id"))
            .select_from(privacy_requests.join(members, members.c.id == r.member_id))
            .where(members.c.erased_at.is_not(None),
                   or_(r.address.is_not(None), r.details.is_not(None), r.subject_hash.is_not(None))))


def _erasure_record() -> Query:
    return (select(member_erasures.c.member_id, member_erasures.c.erased_at.label("recorded"),
                   members.c.erased_at.label("member"))
            .select_from(member_erasures.join(members, members.c.id == member_erasures.c.member_id))
            .where(member_erasures.c.erased_at.is_distinct_from(members.c.erased_at)))


def _opted_out() -> Query:
    s, o = subscriptions.c, opt_out_hashes.c
    return (select(s.id.label("opted_in_id"), s.channel)
            .select_from(subscriptions.join(opt_out_hashes, and_(o.channel == s.channel,
                                                                 o.address_hash == func.privacy_hash(s.address))))
            .where(s.status == "active", s.address.is_not(None)))


# (what must hold, the query returning each row that breaks it)
QUERIES: list[tuple[str, Query]] = [
    ("a member's balance equals the sum of their ledger entries", _balance()),
    ("a member's reward count equals their rewards and their reward_issued entries (with those moved in and out)",
     _reward_count()),
    ("a member's rewards are numbered 1..n without gaps (but for those moved out to another member)",
     _reward_ordinals()),
    ("each reward's state is explained by exactly its ledger entries (and who holds it)", _reward_state()),
    ("a reward is on the record as expired only once it has expired, as of its expiry", _expired_as_of_expiry()),
    ("a redeemed reward was tendered by a purchase of its own member", _redeemed_by_own_purchase()),
    ("a purchase's earning equals its earn and card_bonus entries", _purchase_earning()),
    ("a return's reversal equals its ledger entry, and a purchase never loses more than it earned",
     _return_reversal()),
    ("a reward voided by a return gives back what it cost, one voided at cancellation nothing", _voided_refund()),
    ("a purchase was computed with the rules version in force at its occurred_at, as stored when it was posted",
     _rules_in_force()),
    ("every ledger entry and member change says who made it: one key, one guest session, or the system", _actors()),
    ("an adjustment's points are exactly its one adjustment entry", _adjustment()),
    ("points moved from one member to another (a merge, a carried debt) arrive whole", _points_moved()),
    ("a merged member holds no points and no open reward, and lives on in a member not merged itself", _merged()),
    ("a cancelled member holds no open reward and no positive balance from before cancelling", _cancelled()),
    ("an erased member keeps no personal data", _erased_member()),
    ("a subscription's status is the one its latest consent event gave it", _subscription_status()),
    ("an erased member keeps no subscription address", _erased_subscription()),
    ("an erased member's privacy requests keep no personal data", _erased_privacy_requests()),
    ("a member's erasure record agrees with the member", _erasure_record()),
    ("an erased address kept opted out is active nowhere", _opted_out()),
]


REPORTED = 100  # rows reported a check


def _reported(query: Query) -> Statement:
    """A check as find_problems runs it: compiled once, the first REPORTED rows that break it."""
    return Statement(query.limit(REPORTED))


# (what must hold, the statement returning the first rows that break it)
CHECKS: list[tuple[str, Statement]] = [(what, _reported(query)) for what, query in QUERIES]


def _expired_unrecorded() -> Query:
    # past its expiry for longer than the interval, and recorded longer ago (history imported already expired)
    too_long_ago = func.now() - bindparam("expiry_interval", type_=Interval)
    return (select(rewards.c.code, rewards.c.expires_at, ledger.c.created_at.label("issued_recorded_at"))
            .select_from(rewards.join(ledger, and_(ledger.c.reward_id == rewards.c.id,
                                                   ledger.c.kind == "reward_issued")))
            .where(rewards.c.status == "issued", rewards.c.expires_at < too_long_ago,
                   ledger.c.created_at < too_long_ago))


# (what must hold, the statement returning each row that breaks it, given REWARDS_EXPIRY_INTERVAL as
# expiry_interval)
EXPIRY_CHECK = (
    "a reward past its expiry for longer than REWARDS_EXPIRY_INTERVAL has its reward_expired entry "
    "(the jobs of `rewards serve`, or `rewards jobs run --once`, write them)",
    _reported(_expired_unrecorded()),
)
DEFAULT_EXPIRY_INTERVAL = timedelta(hours=1)

RECOMPUTE_BATCH = 5000

RULE_VERSIONS = Statement(select(program_rules.c.version, program_rules.c.effective_from, program_rules.c.body))

PURCHASES = Statement(
    select(purchases.c.ext_id, purchases.c.rules_version, purchases.c.body, purchases.c.qualifying_cents,
           purchases.c.card_cents, purchases.c.point_cents, purchases.c.bonus_point_cents)
    .order_by(purchases.c.id)
)


def _returns_by_purchase() -> Select:
    r = purchase_returns.c

    def in_order(column: ColumnElement[Any]) -> ColumnElement[Any]:  # array_agg(… ORDER BY r.id)
        return func.array_agg(aggregate_order_by(column, r.id))

    return (select(purchases.c.ext_id, purchases.c.rules_version, purchases.c.body["lines"].label("lines"),
                   purchases.c.body["tenders"].label("tenders"), purchases.c.point_cents,
                   in_order(r.ext_id).label("return_ids"), in_order(r.by_units).label("by_units"),
                   in_order(r.point_cents_reversed).label("reversed"),
                   cast(func.json_agg(aggregate_order_by(r.body["request"]["lines"], r.id)), Text).label("asked"))
            .select_from(purchases.join(purchase_returns, r.purchase_id == purchases.c.id))
            .group_by(purchases.c.id).order_by(purchases.c.id))


RETURNS_BY_PURCHASE = Statement(_returns_by_purchase())


async def _purchases(conn: asyncpg.Connection) -> AsyncIterator[asyncpg.Record]:
    async with conn.transaction(readonly=True, isolation="repeatable_read"):
        async for row in PURCHASES.cursor(conn, prefetch=RECOMPUTE_BATCH):
            yield row


async def recompute_earnings(conn: asyncpg.Connection, limit: int = 100) -> list[str]:
    """Every purchase's earning recomputed from its body with its own rules version."""
    versions = {r["version"]: rules_from_row(r) for r in await RULE_VERSIONS.fetch(conn)}
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
    versions = {r["version"]: rules_from_row(r) for r in await RULE_VERSIONS.fetch(conn)}
    problems: list[str] = []
    async with conn.transaction(readonly=True, isolation="repeatable_read"):
        async for p in RETURNS_BY_PURCHASE.cursor(conn, prefetch=RECOMPUTE_BATCH):
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
    checks: list[tuple[str, Statement, dict[str, object]]] = [(what, statement, {})
                                                               for what, statement in CHECKS]
    checks.append((*EXPIRY_CHECK, {"expiry_interval": expiry_interval}))
    for what, statement, params in checks:
        if progress:
            progress(what)
        for row in await statement.fetch(conn, **params):
            problems.append(f"{what}: " + ", ".join(f"{k}={v}" for k, v in row.items()))
    if recompute:
        if progress:
            progress("each purchase's earning, recomputed with its rules version")
        problems.extend(await recompute_earnings(conn))
        if progress:
            progress("each return's reversal, recomputed by units with its purchase's rules version")
        problems.extend(await recompute_returns(conn))
    return problems
