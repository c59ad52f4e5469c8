"""Posting purchases and returns: one transaction each, idempotent by their keys.

The earning is computed by `rewards.rules`; the purchase is then applied by the
`post_purchases` database function (sql/005_post_purchases.sql), together with the other
postings that arrived in this worker meanwhile: one round trip and one commit for all of
them (`group_commit`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any
from datetime import UTC, datetime, timedelta

import asyncpg
import msgspec

from rewards import bulk, coalescing, errors, rules
from rewards.coalescing import Coalescer
from rewards.db import Database
from rewards.idempotency import canonical, fingerprint
from rewards.rulebook import Rulebook
from rewards.schemas import (
    BalanceBrief,
    PurchaseIn,
    PurchaseOut,
    QuoteOut,
    ReturnIn,
    ReturnOut,
    RewardIssuedOut,
)

# a register's clock may run a little fast; a purchase from further ahead is refused
CLOCK_SKEW = timedelta(minutes=10)


def brief(point_cents: int) -> BalanceBrief:
    return BalanceBrief(points=rules.whole_points(point_cents), point_cents=point_cents)


def check_purchase(purchase: PurchaseIn, now: datetime) -> None:
    """What a purchase must be before it is computed: USD, balanced, rewards named once."""
    if purchase.currency != "USD":
        raise errors.UnsupportedCurrency(f"currency {purchase.currency!r} is not supported; use USD")
    if purchase.occurred_at > now + CLOCK_SKEW:
        raise errors.ValidationFailed("occurred_at is in the future", field="occurred_at")
    lines = sum(line.amount_cents for line in purchase.lines)
    tenders = sum(t.amount_cents for t in purchase.tenders)
    if lines != tenders:
        raise errors.TendersDoNotBalance(f"tenders add up to {tenders} cents but the lines to {lines} cents")
    codes = []
    for i, tender in enumerate(purchase.tenders):
        is_reward = tender.method == rules.REWARD_TENDER
        if is_reward != (tender.reward_code is not None):
            raise errors.ValidationFailed(
                "a reward tender needs its reward_code, and only a reward tender has one",
                field=f"tenders[{i}].reward_code",
            )
        if is_reward:
            if tender.amount_cents == 0:
                raise errors.ValidationFailed("a reward tender pays at least 1 cent", field=f"tenders[{i}].amount_cents")
            codes.append(tender.reward_code)
    if len(set(codes)) != len(codes):
        raise errors.ValidationFailed("a reward can be tendered once", field="tenders")


def purchase_earning(purchase: PurchaseIn, version: rules.Rules) -> rules.Earning:
    return rules.earning(
        version,
        [(line.category, line.amount_cents) for line in purchase.lines],
        [(t.method, t.amount_cents) for t in purchase.tenders],
    )


async def quote(rulebook: Rulebook, purchase: PurchaseIn) -> QuoteOut:
    """What the purchase would earn now, writing nothing."""
    check_purchase(purchase, datetime.now(UTC))
    version = await rulebook.in_force(purchase.occurred_at)
    earned = purchase_earning(purchase, version)
    return QuoteOut(
        purchase_id=purchase.purchase_id,
        member_id=purchase.member_id,
        rules_version=version.version,
        qualifying_cents=earned.qualifying_cents,
        card_cents=earned.card_cents,
        point_cents_earned=earned.point_cents,
        bonus_point_cents=earned.bonus_point_cents,
    )


POST_PURCHASES = "SELECT * FROM post_purchases(" + ", ".join(f"${n}" for n in range(1, 20)) + ")"


def _batch_args(postings: list[bulk.Posting]) -> list[list[Any]]:
    """The arguments of the post_purchases database function: one array per field, item-aligned,
    and the rewards tendered and offers named as (item, …) arrays."""
    items: list[tuple[Any, ...]] = []
    tenders: list[tuple[int, str, int]] = []
    offers: list[tuple[int, str, int]] = []
    for i, posting in enumerate(postings, start=1):
        purchase, version, earned = posting.purchase, posting.version, posting.earned
        items.append((
            purchase.purchase_id, purchase.member_id, purchase.occurred_at, version.version, posting.digest,
            posting.body.decode(), earned.qualifying_cents, earned.card_cents, earned.base_point_cents,
            earned.bonus_point_cents, version.reward_threshold_point_cents, version.reward_value_cents,
            version.reward_validity_days,
        ))
        tenders.extend((i, t.reward_code, t.amount_cents) for t in purchase.tenders if t.reward_code)
        offers.extend((i, o.code, o.discount_cents) for o in purchase.offers)
    columns = [list(column) for column in zip(*items, strict=True)]
    columns += [list(column) for column in zip(*tenders, strict=True)] if tenders else [[], [], []]
    columns += [list(column) for column in zip(*offers, strict=True)] if offers else [[], [], []]
    return columns


async def post_purchase(db: Database, rulebook: Rulebook, purchase: PurchaseIn) -> tuple[bool, PurchaseOut]:
    """Post a purchase; returns (created, answer). A replay returns (False, the first answer)."""
    check_purchase(purchase, datetime.now(UTC))
    version = await rulebook.in_force(purchase.occurred_at)
    earned = purchase_earning(purchase, version)
    posting = bulk.Posting.of(purchase, version, earned)
    row = await group_commit(db).submit(posting)
    outcome = row["outcome"]
    if outcome == "idempotency_conflict":
        raise errors.IdempotencyConflict(f"purchase {purchase.purchase_id} was posted with a different body")
    if outcome == "member_not_found":
        raise errors.NotFound(f"member {purchase.member_id} does not exist")
    if outcome == "member_not_active":
        raise errors.MemberNotActive(f"member {purchase.member_id} is {row['detail']}; purchases are refused")
    if outcome == "reward_not_redeemable":
        raise errors.RewardNotRedeemable(
            f"reward {row['detail']} is not this member's, not issued, expired, or worth less than tendered",
            reward_code=row["detail"],
        )
    if outcome in ("unknown_offer", "offer_exceeds_value"):
        i = next(i for i, offer in enumerate(purchase.offers) if offer.code == row["detail"])
        if outcome == "unknown_offer":
            raise errors.UnknownOffer(f"offer {row['detail']} does not exist", field=f"offers[{i}].code")
        raise errors.ValidationFailed(f"the discount exceeds offer {row['detail']}'s value",
                                      field=f"offers[{i}].discount_cents")
    answer = PurchaseOut(
        purchase_id=purchase.purchase_id,
        member_id=row["member_id"],
        qualifying_cents=row["qualifying_cents"],
        point_cents_earned=row["point_cents"],
        bonus_point_cents=row["bonus_point_cents"],
        rewards_issued=[
            RewardIssuedOut(code=c, value_cents=v, expires_at=e.astimezone(UTC))
            for c, v, e in zip(row["issued_codes"], row["issued_values"], row["issued_expires"], strict=True)
        ],
        rewards_redeemed=list(row["redeemed"]),
        balance=brief(row["balance_after"]),
    )
    return outcome == "created", answer


async def _post_batch(db: Database, postings: list[bulk.Posting]) -> list[Any]:
    """Group commit's batch: one call of the post_purchases database function (sql/005), one
    round trip and one commit for all of it, each refusal just an outcome. A call that fails as
    a whole on a retryable error (a racing twin on another worker) is run again, and the twin
    becomes a replay; on any other database error the postings are posted again one by one,
    each in its own transaction, so one bad posting never fails the others."""

    async def call(batch: list[bulk.Posting]) -> list[asyncpg.Record]:
        args = _batch_args(batch)
        return await db.transaction(lambda conn: conn.fetch(POST_PURCHASES, *args), single_statement=True)

    try:
        return await call(postings)
    except asyncpg.PostgresError as exc:
        if len(postings) == 1:
            return [exc]
    answers: list[Any] = []
    for posting in postings:
        try:
            answers.append((await call([posting]))[0])
        except Exception as exc:  # noqa: BLE001 - handed to the posting's own caller
            answers.append(exc)
    return answers


def group_commit(db: Database) -> Coalescer[bulk.Posting, asyncpg.Record]:
    """The database's group commit: concurrent postings in this worker share one transaction."""
    # A second batch goes while one is in the database only once four postings wait: with one
    # batch at a time the worker and the database took turns waiting, and a second batch for
    # every straggler halved the batches, which cost more per posting on both sides (eight
    # waiting and four measured alike within the machine's noise, four slightly ahead:
    # bench/README.md).
    return coalescing.shared(db, "group_commit", lambda: Coalescer(
        lambda batch: _post_batch(db, batch), in_flight=2, overlap_at=4))


# --- returns ---------------------------------------------------------------------------------


def _by_sku(lines: Iterable[dict | msgspec.Struct]) -> dict[str, tuple[int, int]]:
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for line in lines:
        item = line if isinstance(line, dict) else msgspec.structs.asdict(line)
        totals[item["sku"]][0] += item["quantity"]
        totals[item["sku"]][1] += item["amount_cents"]
    return {sku: (q, a) for sku, (q, a) in totals.items()}


def check_return(bought: dict[str, tuple[int, int]], before: dict[str, tuple[int, int]],
                 now: dict[str, tuple[int, int]]) -> None:
    for sku, (quantity, amount) in now.items():
        q_bought, a_bought = bought.get(sku, (0, 0))
        q_before, a_before = before.get(sku, (0, 0))
        if q_before + quantity > q_bought or a_before + amount > a_bought:
            raise errors.ReturnExceedsPurchase(
                f"sku {sku}: {q_bought} bought for {a_bought} cents, {q_before} returned for {a_before} cents "
                f"before; {quantity} for {amount} cents more is too much",
                sku=sku,
            )


def check_return_time(returned_at: datetime, bought_at: datetime, now: datetime) -> None:
    if returned_at > now + CLOCK_SKEW:
        raise errors.ValidationFailed("occurred_at is in the future", field="occurred_at")
    if returned_at < bought_at:
        raise errors.ValidationFailed("a return cannot occur before its purchase", field="occurred_at")


async def post_return(
    db: Database, rulebook: Rulebook, purchase_id: str, ret: ReturnIn
) -> tuple[bool, ReturnOut]:
    """Post a return of part of a purchase; returns (created, answer), like `post_purchase`."""
    body = canonical(ret, purchase_id=purchase_id)
    digest = fingerprint(body)

    async def work(conn: asyncpg.Connection) -> tuple[bool, ReturnOut]:
        purchase = await conn.fetchrow(
            "SELECT id, member_id, rules_version, body, occurred_at FROM purchases WHERE ext_id = $1", purchase_id
        )
        if purchase is None:
            raise errors.NotFound(f"purchase {purchase_id} does not exist")
        balance = await conn.fetchval("SELECT point_cents FROM members WHERE id = $1 FOR UPDATE", purchase["member_id"])
        prior = await conn.fetchrow(
            "SELECT fingerprint, point_cents_reversed, balance_after FROM purchase_returns WHERE ext_id = $1",
            ret.return_id,
        )
        if prior is not None:
            if prior["fingerprint"] != digest:
                raise errors.IdempotencyConflict(f"return {ret.return_id} was posted with a different body")
            return False, ReturnOut(
                return_id=ret.return_id,
                purchase_id=purchase_id,
                point_cents_reversed=prior["point_cents_reversed"],
                balance=brief(prior["balance_after"]),
            )
        check_return_time(ret.occurred_at, purchase["occurred_at"], datetime.now(UTC))
        earlier = await conn.fetch("SELECT body FROM purchase_returns WHERE purchase_id = $1", purchase["id"])
        bought_lines = purchase["body"]["lines"]
        before = _by_sku(line for r in earlier for line in r["body"]["request"]["lines"])
        now = _by_sku(ret.lines)
        check_return(_by_sku(bought_lines), before, now)
        version = await rulebook.version(purchase["rules_version"])
        reverse = rules.point_cents_to_reverse(
            version,
            [(line["sku"], line["category"], line["quantity"], line["amount_cents"]) for line in bought_lines],
            [(t["method"], t["amount_cents"]) for t in purchase["body"]["tenders"]],
            before,
            now,
        )
        new_balance = balance - reverse
        return_pk = await conn.fetchval(
            """INSERT INTO purchase_returns (ext_id, purchase_id, member_id, occurred_at, fingerprint, body,
                                             point_cents_reversed, balance_after)
               VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8) RETURNING id""",
            ret.return_id, purchase["id"], purchase["member_id"], ret.occurred_at, digest, body.decode(),
            reverse, new_balance,
        )
        if reverse:
            await conn.execute(
                """INSERT INTO ledger (member_id, kind, point_cents, purchase_id, return_id, rules_version, occurred_at)
                   VALUES ($1, 'return', $2, $3, $4, $5, $6)""",
                purchase["member_id"], -reverse, purchase["id"], return_pk, version.version, ret.occurred_at,
            )
            await conn.execute("UPDATE members SET point_cents = $2 WHERE id = $1", purchase["member_id"], new_balance)
        return True, ReturnOut(
            return_id=ret.return_id, purchase_id=purchase_id, point_cents_reversed=reverse, balance=brief(new_balance)
        )

    return await db.transaction(work)
