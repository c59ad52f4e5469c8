"""Concurrent postings over separate pooled connections, on committed data.

Every test races real transactions against one member (asyncio.gather over the
service functions, and over the HTTP client), then checks the outcome exactly and
that `find_problems` finds nothing wrong.
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec
import pytest

from rewards import errors
from rewards.db import Database
from rewards.schemas import PurchaseIn, ReturnIn
from rewards.verify import find_problems
from tests.conftest import auth, cancel, post_purchase, post_return, purchase, unique

THRESHOLD = 30000  # point-cents a reward costs under the default rules


def purchase_in(member_id: int, amount_cents: int, **overrides: Any) -> PurchaseIn:
    return msgspec.json.decode(msgspec.json.encode(purchase(member_id, amount_cents, **overrides)), type=PurchaseIn)


def return_in(lines: list[dict[str, Any]], return_id: str | None = None) -> ReturnIn:
    body = {"return_id": return_id or unique("r"), "occurred_at": datetime.now(UTC).isoformat(), "lines": lines}
    return msgspec.json.decode(msgspec.json.encode(body), type=ReturnIn)


async def outcome(work: Any) -> Any:
    """The result of a posting, or the domain error it raised (so gather never cancels the others)."""
    try:
        return await work
    except errors.DomainError as exc:
        return exc


async def ledger_state(db: Database, member_id: int) -> asyncpg.Record:
    rows = await db.run(
        """SELECT m.point_cents, m.rewards_issued, m.status,
                  (SELECT coalesce(sum(point_cents), 0) FROM ledger WHERE member_id = m.id) AS ledger_sum,
                  (SELECT count(*) FROM rewards WHERE member_id = m.id) AS rewards,
                  (SELECT count(*) FROM rewards WHERE member_id = m.id AND status = 'voided') AS voided,
                  (SELECT coalesce(array_agg(ordinal ORDER BY ordinal), '{}') FROM rewards WHERE member_id = m.id)
                      AS ordinals,
                  (SELECT count(*) FROM purchases WHERE member_id = m.id) AS purchases
           FROM members m WHERE m.id = $1""",
        member_id,
    )
    return rows[0]


async def assert_sound(db: Database) -> None:
    async with db.connection() as conn:
        assert await find_problems(conn) == []


# --- many purchases, one member -------------------------------------------------------------------


async def test_forty_concurrent_purchases_issue_exactly_floor_total_over_300_rewards(db, engine, make_member):
    member_id = await make_member()
    rng = random.Random(40)
    amounts = [rng.randint(1, 40000) for _ in range(40)]
    results = await asyncio.gather(*(post_purchase(engine, purchase_in(member_id, a)) for a in amounts))

    total = sum(amounts)
    assert all(created for created, _ in results)
    issued = [r.code for _, out in results for r in out.rewards_issued]
    assert len(issued) == len(set(issued)) == total // THRESHOLD
    state = await ledger_state(db, member_id)
    assert state["point_cents"] == state["ledger_sum"] == total % THRESHOLD
    assert state["rewards_issued"] == state["rewards"] == total // THRESHOLD
    assert list(state["ordinals"]) == list(range(1, total // THRESHOLD + 1))
    # the postings were serialized: the last one committed answered with the final balance
    last = await db.run("SELECT balance_after FROM purchases WHERE member_id = $1 ORDER BY id DESC LIMIT 1", member_id)
    assert last[0]["balance_after"] == total % THRESHOLD
    await assert_sound(db)


async def test_forty_concurrent_purchases_over_http_issue_exactly_floor_total_over_300_rewards(
    client, keys, db, make_member
):
    member_id = await make_member()
    rng = random.Random(41)
    amounts = [rng.randint(1, 40000) for _ in range(40)]
    methods = ["westique_credit_card", "cash", "debit_card"]
    bodies = [purchase(member_id, a, method=methods[i % 3]) for i, a in enumerate(amounts)]
    responses = await asyncio.gather(
        *(client.post("/v1/purchases", json=body, headers=auth(keys["checkout"])) for body in bodies)
    )
    assert [r.status_code for r in responses] == [201] * 40, [r.text for r in responses if r.status_code != 201]

    earned = sum(a * (2 if methods[i % 3] == "westique_credit_card" else 1) for i, a in enumerate(amounts))
    assert sum(r.json()["point_cents_earned"] for r in responses) == earned
    assert sum(len(r.json()["rewards_issued"]) for r in responses) == earned // THRESHOLD
    balance = (await client.get(f"/v1/members/{member_id}/balance", headers=auth(keys["checkout"]))).json()
    assert balance["point_cents"] == earned % THRESHOLD
    assert len(balance["rewards"]) == earned // THRESHOLD
    state = await ledger_state(db, member_id)
    assert state["ledger_sum"] == earned % THRESHOLD
    await assert_sound(db)


# --- duplicates of one key ---------------------------------------------------------------------


async def test_concurrent_duplicates_of_one_purchase_apply_once(db, engine, make_member):
    member_id = await make_member()
    body = purchase_in(member_id, 45000, method="westique_credit_card")
    results = await asyncio.gather(*(post_purchase(engine, body) for _ in range(20)))

    assert sorted(created for created, _ in results) == [False] * 19 + [True]
    answers = {msgspec.json.encode(out) for _, out in results}
    assert len(answers) == 1, "every duplicate answers exactly as the first posting"
    state = await ledger_state(db, member_id)
    assert state["purchases"] == 1
    assert state["rewards"] == 90000 // THRESHOLD
    assert state["point_cents"] == state["ledger_sum"] == 0
    await assert_sound(db)


async def test_concurrent_duplicates_over_http_answer_201_once_and_200_byte_for_byte(client, keys, db, make_member):
    member_id = await make_member()
    body = purchase(member_id, 31234)
    responses = await asyncio.gather(
        *(client.post("/v1/purchases", json=body, headers=auth(keys["checkout"])) for _ in range(12))
    )
    assert sorted(r.status_code for r in responses) == [200] * 11 + [201]
    assert len({r.content for r in responses}) == 1
    state = await ledger_state(db, member_id)
    assert (state["purchases"], state["rewards"], state["point_cents"]) == (1, 1, 1234)


async def test_concurrent_same_key_with_other_bodies_applies_exactly_one(db, engine, make_member):
    one, other = await make_member(), await make_member()
    key = unique("p")
    bodies = [purchase_in(one if i % 2 else other, 1000 + i, purchase_id=key) for i in range(10)]
    results = await asyncio.gather(*(outcome(post_purchase(engine, b)) for b in bodies))

    created = [r for r in results if isinstance(r, tuple) and r[0]]
    conflicts = [r for r in results if isinstance(r, errors.IdempotencyConflict)]
    assert len(created) == 1 and len(conflicts) == 9, results
    winner = created[0][1]
    states = [await ledger_state(db, m) for m in (one, other)]
    assert sum(s["purchases"] for s in states) == 1
    assert sum(s["ledger_sum"] for s in states) == winner.point_cents_earned
    await assert_sound(db)


# --- returns ------------------------------------------------------------------------------------


async def test_concurrent_returns_never_exceed_what_was_bought(db, engine, make_member):
    member_id = await make_member()
    body = purchase_in(member_id, 0, lines=[
        {"sku": "SHIRT", "category": "apparel", "quantity": 5, "amount_cents": 5000},
        {"sku": "TAX", "category": "tax", "quantity": 1, "amount_cents": 400},
    ], tenders=[{"method": "westique_credit_card", "amount_cents": 5400}])
    _, bought = await post_purchase(engine, body)
    assert bought.point_cents_earned == 10000

    attempts = [return_in([{"sku": "SHIRT", "quantity": 1, "amount_cents": 1000}]) for _ in range(12)]
    results = await asyncio.gather(
        *(outcome(post_return(engine, body.purchase_id, r)) for r in attempts)
    )
    accepted = [out for r in results if isinstance(r, tuple) for out in [r[1]]]
    refused = [r for r in results if isinstance(r, errors.ReturnExceedsPurchase)]
    assert (len(accepted), len(refused)) == (5, 7), results
    assert all(out.point_cents_reversed >= 0 for out in accepted)
    # every shirt back: the shirts' earning is gone, bonus included; only the tax line's share stays unearned
    assert sum(out.point_cents_reversed for out in accepted) == bought.point_cents_earned
    state = await ledger_state(db, member_id)
    assert state["point_cents"] == state["ledger_sum"] == 0
    await assert_sound(db)


async def test_concurrent_duplicates_of_one_return_apply_once(db, engine, make_member):
    member_id = await make_member()
    body = purchase_in(member_id, 20000, lines=[{"sku": "SKU-1", "category": "apparel", "quantity": 4,
                                                 "amount_cents": 20000}])
    await post_purchase(engine, body)
    ret = return_in([{"sku": "SKU-1", "quantity": 1, "amount_cents": 5000}])  # one unit of four: 5000 of 20000
    results = await asyncio.gather(*(post_return(engine, body.purchase_id, ret) for _ in range(10)))
    assert sorted(created for created, _ in results) == [False] * 9 + [True]
    assert len({msgspec.json.encode(out) for _, out in results}) == 1
    state = await ledger_state(db, member_id)
    assert state["point_cents"] == state["ledger_sum"] == 15000


async def test_one_return_id_raced_against_two_members_purchases_applies_once(db, engine, make_member):
    """Different members lock different rows, so only the unique key can stop the twin; the loser gets 409."""
    bodies = [purchase_in(await make_member(), 20000) for _ in range(2)]
    for body in bodies:
        await post_purchase(engine, body)
    key = unique("r")
    ret = return_in([{"sku": "SKU-1", "quantity": 1, "amount_cents": 20000}], return_id=key)
    results = await asyncio.gather(
        *(outcome(post_return(engine, body.purchase_id, ret)) for body in bodies for _ in range(3))
    )
    created = [r for r in results if isinstance(r, tuple) and r[0]]
    assert len(created) == 1, results
    winner = created[0][1].purchase_id
    for r in results:
        if isinstance(r, tuple):
            assert r[1].purchase_id == winner
        else:
            assert isinstance(r, errors.IdempotencyConflict), r
    balances = [(await ledger_state(db, body.member_id))["ledger_sum"] for body in bodies]
    assert sorted(balances) == [0, 20000]
    await assert_sound(db)


# --- cancellation races -------------------------------------------------------------------------


async def test_purchases_racing_a_cancellation_leave_a_consistent_ledger(db, engine, make_member):
    member_id = await make_member()
    await post_purchase(engine, purchase_in(member_id, 29000))
    amounts = [3000 + 500 * i for i in range(20)]
    postings = [outcome(post_purchase(engine, purchase_in(member_id, a))) for a in amounts]
    postings.insert(7, outcome(cancel(engine, member_id)))
    results = await asyncio.gather(*postings)

    cancelled = results.pop(7)
    posted = [out for r in results if isinstance(r, tuple) for out in [r[1]]]
    refused = [r for r in results if isinstance(r, errors.MemberNotActive)]
    assert len(posted) + len(refused) == 20, results
    earned = 29000 + sum(out.point_cents_earned for out in posted)
    issued = sum(len(out.rewards_issued) for out in posted)
    assert issued == earned // THRESHOLD
    # what was not converted was forfeited, and every reward issued before cancelling is voided
    assert cancelled.point_cents_forfeited == earned % THRESHOLD
    assert len(cancelled.rewards_voided) == issued
    state = await ledger_state(db, member_id)
    assert (state["status"], state["point_cents"], state["ledger_sum"]) == ("cancelled", 0, 0)
    assert state["voided"] == state["rewards"] == issued
    # afterwards purchases stay refused, and a second cancel answers as the first
    with pytest.raises(errors.MemberNotActive):
        await post_purchase(engine, purchase_in(member_id, 100))
    again = await cancel(engine, member_id)
    assert (again.point_cents_forfeited, sorted(again.rewards_voided)) == (
        cancelled.point_cents_forfeited, sorted(cancelled.rewards_voided))
    await assert_sound(db)


async def test_returns_and_redemptions_racing_a_cancellation_leave_a_consistent_ledger(db, engine, make_member):
    member_id = await make_member()
    _, first = await post_purchase(engine, purchase_in(member_id, 61000, method="debit_card"))
    codes = [r.code for r in first.rewards_issued]
    assert len(codes) == 2
    redeem = purchase_in(member_id, 0, lines=[{"sku": "MUG", "category": "home", "quantity": 1, "amount_cents": 2500}],
                         tenders=[{"method": "reward", "amount_cents": 1000, "reward_code": codes[0]},
                                  {"method": "cash", "amount_cents": 1500}])
    ret = return_in([{"sku": "SKU-1", "quantity": 1, "amount_cents": 61000}])
    results = await asyncio.gather(
        outcome(post_purchase(engine, redeem)),
        outcome(post_return(engine, first.purchase_id, ret)),
        outcome(cancel(engine, member_id)),
    )
    redeemed, returned, cancelled = results
    assert not isinstance(returned, Exception), "returns are accepted even after cancelling"
    assert returned[1].point_cents_reversed == 61000
    state = await ledger_state(db, member_id)
    assert state["status"] == "cancelled"
    assert state["point_cents"] == state["ledger_sum"]
    statuses = {r["code"]: r["status"] for r in await db.run("SELECT code, status FROM rewards WHERE member_id = $1",
                                                                 member_id)}
    if isinstance(redeemed, tuple):
        assert statuses == {codes[0]: "redeemed", codes[1]: "voided"}
    else:
        assert isinstance(redeemed, errors.MemberNotActive)
        assert statuses == {codes[0]: "voided", codes[1]: "voided"}
    await assert_sound(db)


async def test_verify_finds_nothing_wrong_while_postings_are_in_flight(db, engine, make_member):
    """Each check is one statement, so it sees one snapshot: a check racing postings never reports a torn state."""
    member_ids = [await make_member() for _ in range(3)]
    bodies = [purchase_in(member_ids[i // 10], 7000 + 1000 * i, method="westique_credit_card") for i in range(30)]
    done = asyncio.Event()
    seen: list[list[str]] = []

    async def load() -> None:
        try:
            for chunk in range(0, 30, 10):
                await asyncio.gather(*(post_purchase(engine, b) for b in bodies[chunk:chunk + 10]))
                await asyncio.gather(*(post_return(engine, b.purchase_id, return_in(
                    [{"sku": "SKU-1", "quantity": 1, "amount_cents": 3000}])) for b in bodies[chunk:chunk + 10:2]))
                await cancel(engine, member_ids[chunk // 10])
        finally:
            done.set()

    async def check() -> None:
        while not done.is_set():
            async with db.connection() as conn:
                seen.append(await find_problems(conn, recompute=False))

    await asyncio.gather(load(), check())
    assert len(seen) >= 2, "the checks ran while the postings did"
    assert [p for p in seen if p] == []
    assert [(await ledger_state(db, m))["status"] for m in member_ids] == ["cancelled"] * 3
    await assert_sound(db)


# --- the schema itself ----------------------------------------------------------------------------


async def test_schema_refuses_a_second_reward_with_the_same_ordinal(db, engine, make_member):
    member_id = await make_member()
    _, out = await post_purchase(engine, purchase_in(member_id, 30000))
    async with db.connection() as conn:
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(
                """INSERT INTO rewards (code, member_id, ordinal, value_cents, cost_point_cents, issued_at, expires_at,
                                        purchase_id)
                   SELECT $2, member_id, ordinal, value_cents, cost_point_cents, issued_at, expires_at, purchase_id
                   FROM rewards WHERE code = $1""",
                out.rewards_issued[0].code, unique("WRDUP"),
            )
    assert (await ledger_state(db, member_id))["rewards"] == 1


@pytest.mark.parametrize("statement", [
    "UPDATE ledger SET point_cents = point_cents + 1 WHERE member_id = $1",
    "DELETE FROM ledger WHERE member_id = $1",
])
async def test_schema_refuses_to_change_or_delete_ledger_entries(db, engine, make_member, statement):
    member_id = await make_member()
    await post_purchase(engine, purchase_in(member_id, 1234))
    async with db.connection() as conn:
        with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
            await conn.execute(statement, member_id)
    assert (await ledger_state(db, member_id))["ledger_sum"] == 1234


async def test_ledger_stays_sound_after_everything_above(db):
    async with db.connection() as conn:
        problems = await find_problems(conn)
    assert problems == []
    # the checks do look at data: this session posted purchases and rewards
    assert (await db.run("SELECT count(*) AS n FROM purchases"))[0]["n"] > 0


async def test_a_connection_left_in_a_transaction_is_not_handed_out_again(db):
    async with db.connection() as conn:
        await conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        await conn.fetchval("SELECT count(*) FROM members")
        left_open = conn
    # whoever comes next gets a connection outside any transaction, seeing committed data
    for _ in range(25):
        async with db.connection() as conn:
            assert not conn.is_in_transaction()
            assert conn is not left_open or not left_open.is_in_transaction()


async def test_a_posting_waiting_for_a_member_another_holds_still_locks_and_reads_it(db, make_member):
    """The engine's lock statement under contention: each batch gets back every member it names,
    once the postings holding them commit (an earlier form, with a join, dropped such members and
    answered not_found for them)."""
    from rewards.engine.posting import BEGIN, SNAPSHOT

    members = [await make_member() for _ in range(12)]
    missing: list[set[int]] = []

    async def batches(seed: int) -> None:
        rng = random.Random(seed)
        async with db.connection() as conn:
            for _ in range(40):
                mine = rng.sample(members, 5)
                await conn.execute(BEGIN)
                got = {m["id"] for m in msgspec.json.decode(await conn.fetchval(
                    SNAPSHOT, mine, [unique("lock") for _ in mine], [], [], [], [], [], 0, 0, 0, None, True, [], [], [], 0, []))["members"]}
                if got != set(mine):
                    missing.append(set(mine) - got)
                # a new version of each row (the same balance), committed: what a posting leaves behind
                await conn.execute("UPDATE members SET point_cents = point_cents WHERE id = ANY($1::bigint[])", mine)
                await asyncio.sleep(rng.random() / 500)
                await conn.execute("COMMIT")

    await asyncio.gather(*(batches(seed) for seed in range(6)))
    assert missing == []
