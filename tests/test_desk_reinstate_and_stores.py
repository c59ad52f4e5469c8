"""Rewards reinstated by a whole return (the rules' `reinstate_rewards_on_return`) and the report by
store, on a database of their own: the rules versions they publish and the figures they add up
are the whole program there."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from rewards.app import create_app
from rewards.auth import create_key
from rewards.config import load_settings
from rewards.db import Database
from rewards.verify import find_problems
from tests.conftest import auth, enrollment, purchase, unique
from tests.databases import scratch_database

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
async def own_url(database_url: str) -> AsyncIterator[str]:
    async with scratch_database(database_url, "rewards_desk") as url:
        yield url


@pytest.fixture(scope="module")
async def own(own_url: str) -> AsyncIterator[tuple[AsyncTestClient, dict[str, str], Database]]:
    before = os.environ.get("DATABASE_URL")
    app = create_app(msgspec.structs.replace(load_settings(), database_url=own_url))
    db = Database(own_url, pool_size=4)
    async with AsyncTestClient(app=app) as client:
        if before is not None:
            os.environ["DATABASE_URL"] = before
        keys = {"staff": await create_key(db, ["checkout", "guest_services", "compliance", "admin"]),
                "admin": await create_key(db, ["admin"]), "compliance": await create_key(db, ["compliance"])}
        yield client, keys, db
    await db.close()


async def member_of(client: AsyncTestClient, keys: dict[str, str]) -> int:
    answer = await client.post("/v1/members", json=enrollment(), headers=auth(keys["staff"]))
    assert answer.status_code == 201, answer.text
    member_id: int = answer.json()["member_id"]
    return member_id


async def post(client: AsyncTestClient, keys: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    answer = await client.post("/v1/purchases", json=body, headers=auth(keys["staff"]))
    assert answer.status_code == 201, answer.text
    out: dict[str, Any] = answer.json()
    return out


async def give_back(client: AsyncTestClient, keys: dict[str, str], purchase_id: str, units: int,
                    return_id: str | None = None) -> Any:
    return await client.post(f"/v1/purchases/{purchase_id}/returns", headers=auth(keys["staff"]), json={
        "return_id": return_id or unique("r"), "occurred_at": datetime.now(UTC).isoformat(),
        "lines": [{"sku": "PAIR", "quantity": units, "amount_cents": 0}]})


async def set_reinstating(client: AsyncTestClient, keys: dict[str, str], on: bool) -> None:
    published = await client.put("/v1/program/rules", json={"reinstate_rewards_on_return": on},
                                 headers=auth(keys["admin"]))
    assert published.status_code == 201, published.text
    assert published.json()["reinstate_rewards_on_return"] is on


async def redeeming_purchase(client: AsyncTestClient, keys: dict[str, str], member: int) -> tuple[str, dict[str, Any]]:
    """A reward earned, then tendered for $10 of a $50 pair (two units); (the reward's code, the purchase)."""
    reward = (await post(client, keys, purchase(member, 30_000)))["rewards_issued"][0]
    pair = purchase(member, 5_000, lines=[{"sku": "PAIR", "category": "apparel", "quantity": 2, "amount_cents": 5_000}],
                    tenders=[{"method": "reward", "amount_cents": 1_000, "reward_code": reward["code"]},
                             {"method": "cash", "amount_cents": 4_000}])
    return reward, await post(client, keys, pair)


async def reward_state(client: AsyncTestClient, keys: dict[str, str], code: str) -> dict[str, Any]:
    body: dict[str, Any] = (await client.get(f"/v1/rewards/{code}", headers=auth(keys["staff"]))).json()
    return body


async def test_by_default_a_reward_tendered_stays_redeemed_when_its_purchase_comes_back(own: Any) -> None:
    client, keys, _ = own
    member = await member_of(client, keys)
    reward, pair = await redeeming_purchase(client, keys, member)
    back = await give_back(client, keys, pair["purchase_id"], 2)
    assert back.status_code == 201 and back.json()["rewards_reinstated"] == []
    assert (await reward_state(client, keys, reward["code"]))["status"] == "redeemed"


async def test_with_the_rule_a_whole_return_reinstates_the_reward_with_its_original_expiry(own: Any) -> None:
    client, keys, db = own
    await set_reinstating(client, keys, True)
    try:
        member = await member_of(client, keys)
        reward, pair = await redeeming_purchase(client, keys, member)
        half = await give_back(client, keys, pair["purchase_id"], 1)
        assert half.status_code == 201 and half.json()["rewards_reinstated"] == []
        assert (await reward_state(client, keys, reward["code"]))["status"] == "redeemed"
        rest_id = unique("r")
        rest = await give_back(client, keys, pair["purchase_id"], 1, return_id=rest_id)
        assert rest.status_code == 201, rest.text
        assert rest.json()["rewards_reinstated"] == [reward["code"]]
        state = await reward_state(client, keys, reward["code"])
        assert (state["status"], state["expires_at"], state["redeemed_at"]) == ("issued", reward["expires_at"], None)
        again = await client.post(f"/v1/purchases/{pair['purchase_id']}/returns", headers=auth(keys["staff"]), json={
            "return_id": rest_id, "occurred_at": (await db.run(
                "SELECT occurred_at FROM purchase_returns WHERE ext_id = $1", rest_id))[0]["occurred_at"].isoformat(),
            "lines": [{"sku": "PAIR", "quantity": 1, "amount_cents": 0}]})
        assert again.status_code == 200 and again.json() == rest.json()
        entries = await db.run("""SELECT l.kind, l.point_cents FROM ledger l JOIN rewards w ON w.id = l.reward_id
                                  WHERE w.code = $1 ORDER BY l.id""", reward["code"])
        assert [(e["kind"], e["point_cents"]) for e in entries] == [
            ("reward_issued", -30_000), ("reward_redeemed", 0), ("reward_reinstated", 0)]
        events = await db.run("SELECT data FROM events WHERE type = 'reward.reinstated' AND member_id = $1", member)
        assert [e["data"]["code"] for e in events] == [reward["code"]]
        # issued again: it can be spent again
        spent = await post(client, keys, purchase(member, 1_000, tenders=[
            {"method": "reward", "amount_cents": 1_000, "reward_code": reward["code"]}]))
        assert spent["rewards_redeemed"] == [reward["code"]]
        async with db.connection() as conn:
            assert await find_problems(conn) == []
    finally:
        await set_reinstating(client, keys, False)


async def test_the_report_by_store_adds_up_each_stores_purchases_points_and_rewards(own: Any, own_url: str) -> None:
    client, keys, db = own
    member = await member_of(client, keys)
    store_a, store_b = unique("SA"), unique("SB")
    first = await post(client, keys, purchase(member, 30_000, store_id=store_a, method="westique_credit_card"))
    await post(client, keys, purchase(member, 2_500, store_id=store_a, category="gift_card"))
    code = first["rewards_issued"][0]["code"]
    await post(client, keys, purchase(member, 4_000, store_id=store_b, tenders=[
        {"method": "reward", "amount_cents": 1_000, "reward_code": code}, {"method": "cash", "amount_cents": 3_000}]))
    local = datetime.now(ZoneInfo(load_settings().timezone)).date()
    # yesterday too: a purchase dated a minute ago may fall on it, just after midnight
    yesterday, today = (local - timedelta(days=1)).isoformat(), local.isoformat()
    answer = await client.get("/v1/reports/stores", params={"from": yesterday, "to": today},
                              headers=auth(keys["compliance"]))
    assert answer.status_code == 200, answer.text
    report = answer.json()
    rows = {r["store_id"]: r for r in report["stores"]}
    assert rows[store_a] == {"store_id": store_a, "purchases": 2, "qualifying_cents": 30_000,
                             "point_cents_earned": 60_000, "bonus_point_cents": 30_000,
                             "rewards_redeemed_count": 0, "rewards_redeemed_cents": 0}
    assert rows[store_b] == {"store_id": store_b, "purchases": 1, "qualifying_cents": 3_000,
                             "point_cents_earned": 3_000, "bonus_point_cents": 0,
                             "rewards_redeemed_count": 1, "rewards_redeemed_cents": 1_000}
    stored = await db.run("""SELECT count(*) AS n, sum(qualifying_cents)::bigint AS q FROM purchases
                             WHERE occurred_at >= now() - interval '1 day'""")
    assert report["totals"]["purchases"] == stored[0]["n"] == sum(r["purchases"] for r in report["stores"])
    assert report["totals"]["qualifying_cents"] == stored[0]["q"]
    assert (report["period"], report["time_zone"]) == ({"from": yesterday, "to": today}, load_settings().timezone)

    as_csv = await client.get("/v1/reports/stores", params={"from": yesterday, "to": today, "format": "csv"},
                              headers=auth(keys["admin"]))
    assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(as_csv.text)))
    [row_b] = [r for r in table if r["store_id"] == store_b]
    assert (row_b["purchases"], row_b["rewards_redeemed_cents"]) == ("1", "1000")
    assert table[-1]["store_id"] == "(all stores)" and int(table[-1]["purchases"]) == report["totals"]["purchases"]

    backwards = await client.get("/v1/reports/stores", params={"from": today, "to": "2020-01-01"},
                                 headers=auth(keys["compliance"]))
    assert backwards.status_code == 422 and backwards.json()["field"] == "to"

    made = await asyncio.to_thread(subprocess.run, [
        sys.executable, "-c", "from rewards.cli import main; main()", "report", "stores", "--from", yesterday, "--to", today],
        env={**os.environ, "DATABASE_URL": own_url}, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["stores"] == report["stores"]
