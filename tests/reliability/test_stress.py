"""Concurrency at scale: thousands of postings from many clients over a few members.

Purchases are sent twice at once (a checkout retrying on a timeout), returns race the
member's new purchases and each other, and a reused purchase_id with another body must be
refused. Afterwards the totals are exact: each key counted once, every balance what its
purchases earned less what their returns took back (worked out by the test itself: the points follow the
units), `rewards verify` clean.
CI runs it smaller (REWARDS_STRESS_POSTINGS); it still fails on a lost or doubled posting.
"""

from __future__ import annotations

import asyncio
import os
import random
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.reliability.harness import (
    THRESHOLD,
    Service,
    bearer,
    drop_database,
    earned,
    earned_after_returning,
    enroll_members,
    fresh_database,
    ledger_state,
    make_keys,
    purchase_body,
    run_verify,
    running,
)

POSTINGS = int(os.environ.get("REWARDS_STRESS_POSTINGS", "1500" if os.environ.get("CI") else "3000"))
CLIENTS = 24
MEMBERS = 4
SEED = int(os.environ.get("REWARDS_STRESS_SEED", "11"))


@pytest.fixture
async def stress_db(database_url: str) -> AsyncIterator[str]:
    """A database of its own on this session's server (nothing here restarts a server)."""
    url = await fresh_database(database_url, "stress")
    yield url
    await drop_database(url)


class Tally:
    def __init__(self) -> None:
        self.created: Counter[str] = Counter()         # 201s per key: must be exactly 1 each
        self.purchases: dict[str, dict[str, Any]] = {}  # purchase_id -> body, once answered
        self.returned: dict[str, list[tuple[int, int]]] = defaultdict(list)  # purchase -> accepted (qty, cents)
        self.reversed: dict[str, int] = {}              # return_id -> point-cents the answer says
        self.return_of: dict[str, str] = {}
        self.refused_returns = 0
        self.conflicts = 0
        self.unexpected: list[str] = []
        self.postings = 0


@pytest.mark.slow
async def test_thousands_of_racing_postings_add_up_exactly(stress_db: str) -> None:
    rng = random.Random(SEED)
    print(f"seed: REWARDS_STRESS_SEED={SEED}, postings: {POSTINGS}")
    service = Service(stress_db, workers=2, env={"REWARDS_POOL_SIZE": "8"})
    tally = Tally()
    with running(service):
        await service.wait_up()
        keys = await make_keys(stress_db)
        members = await enroll_members(service.base_url, keys["guest_services"], MEMBERS)
        token = keys["checkout"]
        limits = httpx.Limits(max_connections=CLIENTS * 3)
        async with httpx.AsyncClient(base_url=service.base_url, timeout=60, limits=limits) as http:

            async def post(path: str, body: dict[str, Any]) -> httpx.Response:
                tally.postings += 1
                return await http.post(path, json=body, headers=bearer(token))

            async def buy() -> None:
                amount = rng.randrange(2, 60_000)
                body = purchase_body(rng.choice(members), amount, card_cents=rng.choice([0, amount // 2, amount]),
                                     gift_card_cents=rng.choice([0, 0, 0, 5_000]))
                twins = 2 if rng.random() < 0.3 else 1  # a retry racing the original
                answers = await asyncio.gather(*(post("/v1/purchases", body) for _ in range(twins)))
                for answer in answers:
                    if answer.status_code == 201:
                        tally.created[body["purchase_id"]] += 1
                    elif answer.status_code != 200:
                        tally.unexpected.append(f"purchase {answer.status_code} {answer.text[:200]}")
                    elif answer.json()["point_cents_earned"] != earned(body):
                        tally.unexpected.append(f"replay answered differently: {answer.text[:200]}")
                tally.purchases[body["purchase_id"]] = body
                if rng.random() < 0.05:  # the same key with another body: refused, changes nothing
                    other = {**body, "store_id": "S-OTHER"}
                    conflict = await post("/v1/purchases", other)
                    if conflict.status_code == 409 and conflict.json()["code"] == "idempotency_conflict":
                        tally.conflicts += 1
                    else:
                        tally.unexpected.append(f"conflict {conflict.status_code} {conflict.text[:200]}")

            async def give_back() -> None:
                purchase_id = rng.choice(list(tally.purchases))
                body = tally.purchases[purchase_id]
                half = body["lines"][0]["amount_cents"] // 2
                # up to three returns of one item each race for the purchase's two items
                returns = [{"return_id": f"r-{uuid.uuid4().hex}", "occurred_at": body["occurred_at"],
                            "lines": [{"sku": "SKU-A", "quantity": 1, "amount_cents": half}]}
                           for _ in range(rng.choice([1, 2, 3]))]
                path = f"/v1/purchases/{purchase_id}/returns"
                answers = await asyncio.gather(*(post(path, r) for r in returns))
                for ret, answer in zip(returns, answers, strict=True):
                    if answer.status_code == 201:
                        tally.created[ret["return_id"]] += 1
                        tally.returned[purchase_id].append((1, half))
                        tally.reversed[ret["return_id"]] = answer.json()["point_cents_reversed"]
                        tally.return_of[ret["return_id"]] = purchase_id
                        again = await post(path, ret)  # a retry of an accepted return replays it
                        if again.status_code != 200 or again.json() != answer.json():
                            tally.unexpected.append(f"return replay {again.status_code} {again.text[:200]}")
                    elif answer.status_code == 422 and answer.json()["code"] == "return_exceeds_purchase":
                        tally.refused_returns += 1
                    else:
                        tally.unexpected.append(f"return {answer.status_code} {answer.text[:200]}")

            async def client() -> None:
                while tally.postings < POSTINGS:
                    if tally.purchases and rng.random() < 0.2:
                        await give_back()
                    else:
                        await buy()

            await asyncio.gather(*(client() for _ in range(CLIENTS)))

    assert not tally.unexpected, tally.unexpected[:10]
    assert all(n == 1 for n in tally.created.values()), [k for k, n in tally.created.items() if n != 1][:10]
    state = await ledger_state(stress_db)
    assert not state["duplicates"]
    assert set(state["purchases"]) == set(tally.purchases), "a purchase was lost or invented"
    assert set(state["returns"]) == set(tally.reversed), "a return was lost or invented"
    for return_id, points in tally.reversed.items():
        assert state["returns"][return_id]["point_cents_reversed"] == points

    # what each member must hold: earned, less what the accepted returns take back in all
    expected: dict[int, int] = defaultdict(int)
    for purchase_id, body in tally.purchases.items():
        taken = tally.returned.get(purchase_id, [])
        units = sum(q for q, _ in taken)
        assert units <= 2, f"{purchase_id}: more items returned than bought"
        reversed_points = earned(body) - earned_after_returning(body, units)
        assert reversed_points == sum(p for r, p in tally.reversed.items() if tally.return_of[r] == purchase_id)
        expected[body["member_id"]] += earned(body) - reversed_points
    for member_id, total in expected.items():
        row = state["members"][member_id]
        kept = row["rewards_issued"] - row["voided_by_returns"]  # a reward a return voided gave its points back
        assert row["point_cents"] + kept * THRESHOLD == total, (member_id, dict(row), total)
    verify = run_verify(stress_db)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    print(f"{tally.postings} postings: {len(tally.purchases)} purchases, {len(tally.reversed)} returns accepted, "
          f"{tally.refused_returns} refused as exceeding, {tally.conflicts} conflicts refused")
