"""`find_problems` finds nothing on a sound ledger and names each kind of tampering.

Every tampering happens on a scratch member inside a transaction that is rolled back,
so the session's database stays sound for the other tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from rewards.db import Database
from rewards.schemas import PurchaseIn, ReturnIn
from rewards.verify import find_problems
from tests.conftest import auth, cancel, enrollment, post_purchase, post_return, purchase, unique


class Scratch(msgspec.Struct):
    member_id: int
    purchase_id: str      # a card purchase that issued one reward
    reward_code: str
    redeeming_id: str     # a purchase that redeemed nothing (for a forged redemption)
    return_id: str        # a partial return of the first purchase
    cancelled_id: int     # a cancelled member whose one reward was voided
    voided_code: str


def _purchase(member_id: int, amount: int, method: str = "cash", units: int = 1) -> PurchaseIn:
    lines = [{"sku": "SKU-1", "category": "apparel", "quantity": units, "amount_cents": amount}]
    return msgspec.convert(purchase(member_id, amount, method=method, lines=lines), PurchaseIn, strict=False)


@pytest.fixture(scope="module")
async def scratch(engine: Any, make_member: Any) -> Scratch:
    member_id = await make_member()
    _, first = await post_purchase(engine, _purchase(member_id, 20000, "westique_credit_card", units=4))
    _, second = await post_purchase(engine, _purchase(member_id, 1500))
    ret = msgspec.convert({"return_id": unique("r"), "occurred_at": datetime.now(UTC).isoformat(),
                           "lines": [{"sku": "SKU-1", "quantity": 1, "amount_cents": 5000}]}, ReturnIn, strict=False)
    await post_return(engine, first.purchase_id, ret)
    cancelled_id = await make_member()
    _, third = await post_purchase(engine, _purchase(cancelled_id, 30000))
    await cancel(engine, cancelled_id)
    return Scratch(member_id, first.purchase_id, first.rewards_issued[0].code, second.purchase_id, ret.return_id,
                   cancelled_id, third.rewards_issued[0].code)


# make_member is function-scoped upstream; a module-scoped scratch needs a module-scoped maker
@pytest.fixture(scope="module")
def make_member(client: Any, keys: dict[str, str]) -> Any:
    async def make() -> int:
        response = await client.post("/v1/members", json=enrollment(), headers=auth(keys["guest_services"]))
        assert response.status_code == 201, response.text
        return response.json()["member_id"]

    return make


@pytest.fixture
async def conn(db: Database) -> AsyncIterator[Any]:
    """A connection inside a transaction that is always rolled back: tampering never outlives the test."""
    async with db.connection() as connection:
        tx = connection.transaction(isolation="repeatable_read")
        await tx.start()
        try:
            yield connection
        finally:
            await tx.rollback()


async def test_find_problems_is_empty_on_a_sound_ledger(conn: Any, scratch: Scratch) -> None:
    assert await find_problems(conn) == []
    # and it did read the scratch member's postings: a purchase, a reward, a return
    n = await conn.fetchval("SELECT count(*) FROM ledger WHERE member_id = $1", scratch.member_id)
    assert n >= 4


TAMPERINGS: list[tuple[str, str, str, str]] = [
    # (name, SQL with $1 = the scratch, what the problem says, what it names)
    ("cached balance changed",
     "UPDATE members SET point_cents = point_cents + 1 WHERE id = {member_id}",
     "a member's balance equals the sum of their ledger entries", "member_id={member_id},"),
    ("cached reward count changed",
     "UPDATE members SET rewards_issued = rewards_issued + 1 WHERE id = {member_id}",
     "a member's reward count equals their rewards", "member_id={member_id},"),
    ("reward voided without a ledger entry",
     "UPDATE rewards SET status = 'voided', voided_at = now() WHERE code = '{reward_code}'",
     "each reward's state is explained by exactly its ledger entries", "code={reward_code},"),
    ("reward marked redeemed without a ledger entry",
     """UPDATE rewards SET status = 'redeemed', redeemed_at = now(),
            redeemed_purchase_id = (SELECT id FROM purchases WHERE ext_id = '{redeeming_id}')
        WHERE code = '{reward_code}'""",
     "each reward's state is explained by exactly its ledger entries", "code={reward_code},"),
    ("voided reward of a cancelled member reopened",
     "UPDATE rewards SET status = 'issued', voided_at = NULL WHERE code = '{voided_code}'",
     "a cancelled member holds no open reward", "member_id={cancelled_id},"),
    ("reward ordinal moved, leaving a gap",
     "UPDATE rewards SET ordinal = ordinal + 1 WHERE code = '{reward_code}'",
     "a member's rewards are numbered 1..n without gaps", "member_id={member_id},"),
    ("purchase's stored earning changed",
     "UPDATE purchases SET point_cents = point_cents + 100 WHERE ext_id = '{purchase_id}'",
     "a purchase's earning equals its earn and card_bonus entries", "ext_id={purchase_id},"),
    ("purchase's stored earning changed (recomputed from its body)",
     """UPDATE purchases SET qualifying_cents = qualifying_cents - 1, card_cents = card_cents - 1
        WHERE ext_id = '{purchase_id}'""",
     "purchase {purchase_id}: stored", "recomputed"),
    ("purchase's body changed after posting",
     """UPDATE purchases SET body = jsonb_set(body, '{{tenders,0,method}}', '"cash"')
        WHERE ext_id = '{purchase_id}'""",
     "purchase {purchase_id}: stored", "recomputed"),
    ("an earn entry appended with its balance, for no purchase earning",
     """WITH p AS (SELECT id, member_id FROM purchases WHERE ext_id = '{redeeming_id}'),
             e AS (INSERT INTO ledger (member_id, kind, point_cents, purchase_id, occurred_at, actor_system)
                   SELECT member_id, 'earn', 500, id, now(), 'tampering' FROM p RETURNING member_id)
        UPDATE members SET point_cents = point_cents + 500 WHERE id IN (SELECT member_id FROM e)""",
     "a purchase's earning equals its earn and card_bonus entries", "ext_id={redeeming_id},"),
    ("a return's recorded reversal changed",
     "UPDATE purchase_returns SET point_cents_reversed = point_cents_reversed + 7 WHERE ext_id = '{return_id}'",
     "a return's reversal equals its ledger entry", "ext_id={purchase_id},"),
]


@pytest.mark.parametrize(("statement", "what", "names"), [t[1:] for t in TAMPERINGS], ids=[t[0] for t in TAMPERINGS])
async def test_find_problems_reports_tampering(conn: Any, scratch: Scratch, statement: str, what: str,
                                                 names: str) -> None:
    fields = msgspec.structs.asdict(scratch)
    await conn.execute(statement.format(**fields))
    problems = await find_problems(conn)
    what, names = what.format(**fields), names.format(**fields)
    assert any(p.startswith(what) and names in p for p in problems), problems


async def test_find_problems_without_recompute_still_sees_the_cached_balance(conn: Any, scratch: Scratch) -> None:
    await conn.execute("UPDATE members SET point_cents = -5 WHERE id = $1", scratch.member_id)
    problems = await find_problems(conn, recompute=False)
    assert [p for p in problems if f"member_id={scratch.member_id}," in p] == [
        f"a member's balance equals the sum of their ledger entries: member_id={scratch.member_id}, cached=-5, "
        f"ledger={await conn.fetchval('SELECT sum(point_cents) FROM ledger WHERE member_id = $1', scratch.member_id)}"
    ]


# --- the desk's postings: merges, moved rewards, adjustments ------------------------------------------


class Desk(msgspec.Struct):
    target: int           # a member a duplicate was merged into, with the duplicate's reward
    duplicate: int
    moved_code: str
    adjustment_id: str    # an adjustment of the target's


@pytest.fixture(scope="module")
async def desk(engine: Any, make_member: Any) -> Desk:
    from rewards.engine import Adjust, Merge, unwrap
    from rewards.schemas import AdjustmentIn
    from tests.conftest import TESTS

    target, duplicate = await make_member(), await make_member()
    _, bought = await post_purchase(engine, _purchase(duplicate, 31_000))
    unwrap(await engine.submit(Merge(target, duplicate, TESTS)))
    adjustment = AdjustmentIn(adjustment_id=unique("adj"), point_cents=700, reason="goodwill", note="sorry")
    unwrap(await engine.submit(Adjust.of(target, adjustment, TESTS)))
    return Desk(target, duplicate, bought.rewards_issued[0].code, adjustment.adjustment_id)


DESK_TAMPERINGS: list[tuple[str, str, str, str]] = [
    ("a merged member's balance changed with an entry",
     """WITH e AS (INSERT INTO ledger (member_id, kind, point_cents, occurred_at, counterpart_member_id, actor_system)
                   VALUES ({duplicate}, 'merge_in', 500, now(), {target}, 'tampering') RETURNING member_id)
        UPDATE members SET point_cents = point_cents + 500 WHERE id IN (SELECT member_id FROM e)""",
     "a merged member holds no points and no open reward", "member_id={duplicate},"),
    ("a merge's points half moved",
     """WITH e AS (INSERT INTO ledger (member_id, kind, point_cents, occurred_at, counterpart_member_id, actor_system)
                   VALUES ({target}, 'merge_in', 500, now(), {duplicate}, 'tampering') RETURNING member_id)
        UPDATE members SET point_cents = point_cents + 500 WHERE id IN (SELECT member_id FROM e)""",
     "points moved from one member to another (a merge, a carried debt) arrive whole", "lost=500"),
    ("a moved reward handed back to the duplicate without an entry",
     """UPDATE rewards SET member_id = {duplicate}, ordinal = 99 WHERE code = '{moved_code}'""",
     "each reward's state is explained by exactly its ledger entries (and who holds it)", "code={moved_code},"),
    ("an adjustment's recorded points changed",
     "UPDATE adjustments SET point_cents = point_cents + 1 WHERE ext_id = '{adjustment_id}'",
     "an adjustment's points are exactly its one adjustment entry", "ext_id={adjustment_id},"),
    ("a merged member made to live in another merged member",
     "UPDATE members SET merged_into = {duplicate}, status = 'merged', cancelled_at = now() WHERE id = {target}",
     "a merged member holds no points and no open reward", "member_id={duplicate},"),
]


@pytest.mark.parametrize(("statement", "what", "names"), [t[1:] for t in DESK_TAMPERINGS],
                         ids=[t[0] for t in DESK_TAMPERINGS])
async def test_find_problems_reports_tampering_with_the_desks_postings(conn: Any, desk: Desk, statement: str,
                                                                        what: str, names: str) -> None:
    fields = msgspec.structs.asdict(desk)
    assert await find_problems(conn, recompute=False) == []
    await conn.execute(statement.format(**fields))
    problems = await find_problems(conn, recompute=False)
    what, names = what.format(**fields), names.format(**fields)
    assert any(p.startswith(what) and names in p for p in problems), problems
