"""Retries are safe: purchase_id and return_id are idempotency keys, sequentially and concurrently."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import httpx

from tests.conftest import auth, purchase, unique
from tests.test_api_members import earn, ledger_of, problem, row_counts
from tests.test_api_returns import a_return


async def post(client: Any, keys: dict[str, str], body: dict[str, Any]) -> Any:
    return await client.post("/v1/purchases", json=body, headers=auth(keys["checkout"]))


async def concurrently(client: Any, token: str, posts: list[tuple[str, dict[str, Any]]]) -> list[httpx.Response]:
    """POST each (path, body) at once, really overlapping, and return the answers in order.

    The AsyncTestClient runs the app on its own event loop behind a blocking portal and waits
    for each answer there, so `asyncio.gather` over the client sends one request at a time.
    Here the gather runs on the app's loop itself, through the full ASGI app.
    """

    async def send_all() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver.local") as http:
            return list(await asyncio.gather(*(http.post(path, json=body, headers=auth(token))
                                               for path, body in posts)))

    return await asyncio.to_thread(client.blocking_portal.call, send_all)


async def test_same_purchase_again_answers_200_with_the_first_answer_byte_for_byte(client, keys, db, member):
    code = (await earn(client, keys, member, 30000))["rewards_issued"][0]["code"]
    body = purchase(member, 31000, tenders=[
        {"method": "reward", "amount_cents": 1000, "reward_code": code},
        {"method": "westique_credit_card", "amount_cents": 30000},
    ])
    first = await post(client, keys, body)
    assert first.status_code == 201, first.text
    assert first.json()["rewards_redeemed"] == [code]
    assert len(first.json()["rewards_issued"]) == 2
    counts = await row_counts(db)
    entries = await ledger_of(db, member)

    again = await post(client, keys, body)
    assert again.status_code == 200
    assert again.content == first.content
    # later postings and a cancellation change the balance, not the replayed answer
    await earn(client, keys, member, 777)
    await client.post(f"/v1/members/{member}/cancel", headers=auth(keys["guest_services"]))
    later = await post(client, keys, body)
    assert (later.status_code, later.content) == (200, first.content)
    assert (await row_counts(db))["purchases"] == counts["purchases"] + 1  # the 777 only
    assert (await ledger_of(db, member))[: len(entries)] == entries


async def test_the_same_body_in_another_key_order_is_a_replay(client, keys, member):
    body = purchase(member, 2500)
    first = await post(client, keys, body)
    reordered = json.dumps(dict(reversed(list(body.items()))), indent=2)
    again = await client.post("/v1/purchases", content=reordered.encode(),
                              headers=auth(keys["checkout"]) | {"content-type": "application/json"})
    assert (again.status_code, again.content) == (200, first.content)


async def test_same_purchase_id_with_another_body_is_a_conflict_and_writes_nothing(client, keys, db, make_member):
    member, other = await make_member(), await make_member()
    body = purchase(member, 2500)
    assert (await post(client, keys, body)).status_code == 201
    before = await row_counts(db)
    balance = (await client.get(f"/v1/members/{member}/balance", headers=auth(keys["checkout"]))).json()
    for changed in (
        body | {"member_id": other},
        body | {"store_id": "S999"},
        body | {"lines": [{"sku": "SKU-1", "category": "apparel", "quantity": 1, "amount_cents": 2600}],
                "tenders": [{"method": "cash", "amount_cents": 2600}]},
        body | {"tenders": [{"method": "westique_credit_card", "amount_cents": 2500}]},
    ):
        problem(await post(client, keys, changed), 409, "idempotency_conflict")
    assert await row_counts(db) == before
    assert (await client.get(f"/v1/members/{member}/balance", headers=auth(keys["checkout"]))).json() == balance


async def test_same_return_again_answers_200_with_the_first_answer(client, keys, db, member):
    sale = await earn(client, keys, member, 9000, lines=[
        {"sku": "A", "category": "apparel", "quantity": 3, "amount_cents": 9000}])
    body = a_return(("A", 1, 3000))
    first = await client.post(f"/v1/purchases/{sale['purchase_id']}/returns", json=body,
                              headers=auth(keys["checkout"]))
    assert first.status_code == 201, first.text
    counts = await row_counts(db)
    await earn(client, keys, member, 100)  # the balance moves on; the replayed answer does not
    for _ in range(2):
        again = await client.post(f"/v1/purchases/{sale['purchase_id']}/returns", json=body,
                                  headers=auth(keys["checkout"]))
        assert (again.status_code, again.content) == (200, first.content)
    assert (await row_counts(db))["purchase_returns"] == counts["purchase_returns"]
    assert [e["kind"] for e in await ledger_of(db, member)].count("return") == 1


async def test_same_return_id_with_another_body_or_purchase_is_a_conflict_and_writes_nothing(client, keys, db, member):
    lines = [{"sku": "A", "category": "apparel", "quantity": 3, "amount_cents": 9000}]
    sale = await earn(client, keys, member, 9000, lines=lines)
    other_sale = await earn(client, keys, member, 9000, lines=lines)
    body = a_return(("A", 1, 3000))
    first = await client.post(f"/v1/purchases/{sale['purchase_id']}/returns", json=body,
                              headers=auth(keys["checkout"]))
    assert first.status_code == 201
    before = await row_counts(db)
    changed = body | {"lines": [{"sku": "A", "quantity": 2, "amount_cents": 6000}]}
    problem(await client.post(f"/v1/purchases/{sale['purchase_id']}/returns", json=changed,
                              headers=auth(keys["checkout"])), 409, "idempotency_conflict")
    problem(await client.post(f"/v1/purchases/{other_sale['purchase_id']}/returns", json=body,
                              headers=auth(keys["checkout"])), 409, "idempotency_conflict")
    assert await row_counts(db) == before


async def test_twenty_concurrent_identical_purchases_apply_once(client, keys, db, member):
    body = purchase(member, 31234, method="westique_credit_card")
    answers = await concurrently(client, keys["checkout"], [("/v1/purchases", body)] * 20)
    assert Counter(a.status_code for a in answers) == {201: 1, 200: 19}
    assert len({a.content for a in answers}) == 1
    assert len(await db.run("SELECT 1 FROM purchases WHERE ext_id = $1", body["purchase_id"])) == 1
    balance = (await client.get(f"/v1/members/{member}/balance", headers=auth(keys["checkout"]))).json()
    assert balance["point_cents"] == 2 * 31234 - 2 * 30000  # earned once, bonus included: two rewards
    assert len(balance["rewards"]) == 2
    assert sum(e["point_cents"] for e in await ledger_of(db, member)) == balance["point_cents"]


async def test_concurrent_same_key_with_different_bodies_applies_exactly_one(client, keys, db, member):
    purchase_id = unique("p")
    bodies = [purchase(member, 1000 + i, purchase_id=purchase_id) for i in range(10)]
    answers = await concurrently(client, keys["checkout"], [("/v1/purchases", b) for b in bodies])
    assert Counter(a.status_code for a in answers) == {201: 1, 409: 9}
    winner = next(a.json() for a in answers if a.status_code == 201)
    stored = await db.run("SELECT point_cents FROM purchases WHERE ext_id = $1", purchase_id)
    assert [r["point_cents"] for r in stored] == [winner["point_cents_earned"]]
    balance = (await client.get(f"/v1/members/{member}/balance", headers=auth(keys["checkout"]))).json()
    assert balance["point_cents"] == winner["point_cents_earned"]


async def test_concurrent_identical_returns_apply_once(client, keys, db, member):
    sale = await earn(client, keys, member, 9000, method="westique_credit_card", lines=[
        {"sku": "A", "category": "apparel", "quantity": 3, "amount_cents": 9000}])
    body = a_return(("A", 2, 6000))
    path = f"/v1/purchases/{sale['purchase_id']}/returns"
    answers = await concurrently(client, keys["checkout"], [(path, body)] * 10)
    assert Counter(a.status_code for a in answers) == {201: 1, 200: 9}
    assert len({a.content for a in answers}) == 1
    assert answers[0].json()["point_cents_reversed"] == 12000
    assert [e["point_cents"] for e in await ledger_of(db, member) if e["kind"] == "return"] == [-12000]


async def test_concurrent_distinct_purchases_for_one_member_lose_nothing(client, keys, db, member):
    bodies = [purchase(member, 4000 + i) for i in range(20)]  # 818.90 points in all
    answers = await concurrently(client, keys["checkout"], [("/v1/purchases", b) for b in bodies])
    assert all(a.status_code == 201 for a in answers), [a.text for a in answers if a.status_code != 201]
    total = sum(4000 + i for i in range(20))
    issued = [r["code"] for a in answers for r in a.json()["rewards_issued"]]
    assert len(issued) == len(set(issued)) == total // 30000
    balance = (await client.get(f"/v1/members/{member}/balance", headers=auth(keys["checkout"]))).json()
    assert balance["point_cents"] == total - 30000 * (total // 30000)
    ordinals = await db.run("SELECT ordinal FROM rewards WHERE member_id = $1 ORDER BY ordinal", member)
    assert [r["ordinal"] for r in ordinals] == list(range(1, total // 30000 + 1))
