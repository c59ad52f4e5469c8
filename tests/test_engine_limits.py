"""The one posting engine through its ways in: returns by units, time that cannot be gamed, limits
that protect the figures, rules published under the rules lock, quotes that check like postings."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from rewards.db import Database
from rewards.engine import Engine, Limits, PostPurchase
from rewards.importer import import_purchases
from rewards.rulebook import Rulebook
from tests.conftest import TESTS, auth, post_purchase, purchase, purchase_in, unique
from tests.databases import scratch_database
from tests.test_api_members import problem, row_counts
from tests.test_api_returns import a_return, post_return
from tests.test_api_rules_and_rewards import DEFAULT_RULES
from tests.test_spec_figures import balance_of

TWO_UNITS_FOR_100 = [{"sku": "A", "category": "apparel", "quantity": 2, "amount_cents": 10000}]
ON_THE_CARD = [{"method": "westique_credit_card", "amount_cents": 10000}]


def two_for_100(member_id: int, **overrides: Any) -> dict[str, Any]:
    return purchase(member_id, 10000, lines=TWO_UNITS_FOR_100, tenders=ON_THE_CARD, **overrides)


async def post(client: Any, keys: dict[str, str], body: dict[str, Any], status: int = 201) -> dict[str, Any]:
    response = await client.post("/v1/purchases", json=body, headers=auth(keys["checkout"]))
    assert response.status_code == status, response.text
    return response.json()


async def give_back(client: Any, keys: dict[str, str], purchase_id: str, *lines: tuple[str, int, int]
                    ) -> dict[str, Any]:
    response = await post_return(client, keys, purchase_id, a_return(*lines))
    assert response.status_code == 201, response.text
    return response.json()


# --- returns: the points follow the units (the worked cases of the rules) ---------------------------


async def _worked_cases(client: Any, keys: dict[str, str], bought: list[str]) -> list[int]:
    """The worked cases on purchases already posted (by whatever way): what each return takes back."""
    both, split = bought
    return [
        (await give_back(client, keys, both, ("A", 2, 1)))["point_cents_reversed"],    # both units, for a cent
        (await give_back(client, keys, split, ("A", 1, 10000)))["point_cents_reversed"],  # one unit, full price
        (await give_back(client, keys, split, ("A", 1, 0)))["point_cents_reversed"],    # the other, for nothing
    ]


async def test_the_worked_return_cases_through_http_and_through_the_import_give_the_same(
        client, keys, db, make_member, tmp_path: Path):
    by_http, by_import = await make_member(), await make_member()
    http_ids = [(await post(client, keys, two_for_100(by_http)))["purchase_id"] for _ in range(2)]
    bodies = [two_for_100(by_import) for _ in range(2)]
    path = tmp_path / "two.jsonl"
    path.write_text("".join(json.dumps(b) + "\n" for b in bodies))
    assert (await import_purchases(db, path)).imported == 2
    assert await _worked_cases(client, keys, http_ids) == [20000, 10000, 10000]
    assert await _worked_cases(client, keys, [b["purchase_id"] for b in bodies]) == [20000, 10000, 10000]
    assert (await balance_of(client, keys, by_http))["point_cents"] == \
           (await balance_of(client, keys, by_import))["point_cents"] == 0


async def test_a_price_adjustment_takes_back_the_points_of_its_amount(client, keys, member):
    sale = await post(client, keys, two_for_100(member))
    adjusted = await give_back(client, keys, sale["purchase_id"], ("A", 0, 2500))
    assert adjusted["point_cents_reversed"] == 5000  # $25 and its card bonus
    # the units left carry what is left of the line: the last two take back the other 15,000
    rest = await give_back(client, keys, sale["purchase_id"], ("A", 2, 7500))
    assert rest["point_cents_reversed"] == 15000


async def test_a_full_return_refunding_nothing_takes_back_everything(client, keys, member):
    sale = await post(client, keys, purchase(member, 4321))
    assert (await give_back(client, keys, sale["purchase_id"], ("SKU-1", 1, 0)))["point_cents_reversed"] == 4321


async def test_units_and_refunds_are_capped_apart_and_a_refused_return_writes_nothing(client, keys, db, member):
    sale = await post(client, keys, two_for_100(member))
    await give_back(client, keys, sale["purchase_id"], ("A", 1, 9000))
    before = await row_counts(db)
    for lines in ([("A", 2, 0)], [("A", 1, 1001)]):  # a unit too many; a refund beyond what the sku cost
        problem(await post_return(client, keys, sale["purchase_id"], a_return(*lines)), 422,
                "return_exceeds_purchase")
    assert await row_counts(db) == before


async def test_returning_a_purchase_voids_its_rewards_before_the_balance_goes_negative(client, keys, db, member):
    sale = await post(client, keys, purchase(member, 60000))  # $600: two rewards
    codes = [r["code"] for r in sale["rewards_issued"]]
    body = a_return(("SKU-1", 1, 60000))
    answered = await post_return(client, keys, sale["purchase_id"], body)
    assert answered.status_code == 201, answered.text
    back = answered.json()
    assert back["point_cents_reversed"] == 60000
    assert back["rewards_voided"] == list(reversed(codes))  # newest first
    assert back["balance"] == {"points": 0, "point_cents": 0}
    for code in codes:  # the $20 cannot be spent on goods that came back
        assert (await post(client, keys, purchase(member, 1000, tenders=[
            {"method": "reward", "amount_cents": 1000, "reward_code": code}]), 409))["code"] == "reward_not_redeemable"
    voided = [e for e in await db.run("SELECT * FROM ledger WHERE member_id = $1 AND kind = 'reward_voided' "
                                       "ORDER BY id", member)]
    assert [e["point_cents"] for e in voided] == [30000, 30000]
    replay = await post_return(client, keys, sale["purchase_id"], body)  # a retry answers the same, voids included
    assert (replay.status_code, replay.json()) == (200, back)
    problem(await post_return(client, keys, sale["purchase_id"], a_return(("SKU-1", 1, 0))), 422,
            "return_exceeds_purchase")


async def test_a_spent_reward_stays_spent_and_the_balance_goes_negative(client, keys, member):
    sale = await post(client, keys, purchase(member, 30000))
    code = sale["rewards_issued"][0]["code"]
    await post(client, keys, purchase(member, 1000, tenders=[{"method": "reward", "amount_cents": 1000,
                                                                "reward_code": code}]))
    back = await give_back(client, keys, sale["purchase_id"], ("SKU-1", 1, 30000))
    assert (back["rewards_voided"], back["balance"]["point_cents"]) == ([], -30000)


# --- time -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("occurred_at", [
    datetime.now(UTC) - timedelta(days=8),  # older than REWARDS_MAX_BACKDATE
    datetime(2001, 1, 1, tzinfo=UTC),
    datetime(1, 1, 1, tzinfo=UTC),
    datetime(9999, 12, 31, tzinfo=UTC),
    datetime.now(UTC) + timedelta(hours=1),
])
async def test_a_posting_outside_its_time_is_a_validation_error_on_occurred_at(client, keys, db, member,
                                                                                 occurred_at):
    before = await row_counts(db)
    answer = problem(await client.post("/v1/purchases", json=purchase(member, 30000, occurred_at=occurred_at),
                                       headers=auth(keys["checkout"])), 422, "validation_error")
    assert answer["field"] == "occurred_at"
    assert await row_counts(db) == before


async def test_the_same_instant_written_with_another_offset_is_a_replay(client, keys, member):
    when = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    body = purchase(member, 2000, occurred_at=when)
    first = await post(client, keys, body)
    elsewhere = {**body, "occurred_at": when.astimezone(__import__("zoneinfo").ZoneInfo("America/New_York"))
                 .isoformat()}
    assert elsewhere["occurred_at"].endswith("-05:00")
    again = await client.post("/v1/purchases", json=elsewhere, headers=auth(keys["checkout"]))
    assert again.status_code == 200, again.text
    assert again.json() == first


async def test_history_is_imported_with_the_rules_of_its_day_and_rewards_born_expired(db, client, keys,
                                                                                      make_member, tmp_path):
    member_id = await make_member()
    old = purchase(member_id, 30000, occurred_at=datetime.now(UTC) - timedelta(days=120))
    path = tmp_path / "old.jsonl"
    path.write_text(json.dumps(old) + "\n")
    refused = await import_purchases(db, path, rejected_path=tmp_path / "r.jsonl")
    assert (refused.imported, refused.reasons) == (0, {"validation_error": 1})
    assert "--history" in json.loads((tmp_path / "r.jsonl").read_text())["reason"]
    taken = await import_purchases(db, path, history=True)
    assert (taken.imported, taken.rewards_issued) == (1, 1)
    balance = await balance_of(client, keys, member_id)
    assert [r["status"] for r in balance["rewards"]] == ["expired"]


async def test_reward_expiry_is_whole_days_in_utc_whatever_the_session_time_zone(database_url):
    """A database whose sessions default to New York time: the expiry across daylight saving is still
    90 × 24 hours after the purchase (the connections set UTC, the engine computes in UTC)."""
    async with scratch_database(database_url, "rewards_tz") as url:
        name = url.rsplit("/", 1)[1].split("?")[0]
        admin = Database(url, pool_size=2)
        try:
            await admin.run(f"ALTER DATABASE \"{name}\" SET timezone = 'America/New_York'")
            await admin.close()
            db = Database(url, pool_size=2)
            engine = Engine(db, Rulebook(db), Limits())
            member_id = (await db.run(
                "INSERT INTO members (name, state) VALUES ('Tz', 'NY') RETURNING id"))[0]["id"]
            when = datetime(2026, 1, 15, 17, 0, tzinfo=UTC)  # +90 days crosses 8 March 2026
            _, out = await post_purchase(engine, purchase_in(member_id, 30000, occurred_at=when), history=True)
            assert out.rewards_issued[0].expires_at == when + timedelta(days=90)
            stored = (await db.run("SELECT expires_at FROM rewards WHERE member_id = $1", member_id))[0]
            assert stored["expires_at"] == when + timedelta(days=90)
            await db.close()
        finally:
            await admin.close()


# --- limits that protect the figures ------------------------------------------------------------


async def test_an_offer_counts_once_a_purchase_and_never_more_than_its_lines(client, keys, db, member):
    await client.post("/v1/offers", json={"code": "ONCE10", "value_cents": 1000, "channel": "email"},
                      headers=auth(keys["admin"]))
    before = await row_counts(db)
    repeated = problem(await client.post("/v1/purchases", json=purchase(
        member, 100, offers=[{"code": "ONCE10", "discount_cents": 1}] * 20), headers=auth(keys["checkout"])),
        422, "validation_error")
    assert repeated["field"] == "offers[1].code"
    too_much = problem(await client.post("/v1/purchases", json=purchase(
        member, 100, offers=[{"code": "ONCE10", "discount_cents": 101}]), headers=auth(keys["checkout"])),
        422, "validation_error")
    assert too_much["field"] == "offers"
    assert await row_counts(db) == before


async def test_a_purchase_above_the_limit_is_refused_so_one_body_cannot_issue_thousands_of_rewards(
        client, keys, db, member):
    before = await row_counts(db)
    answer = problem(await client.post("/v1/purchases", json=purchase(member, 5_000_001),
                                       headers=auth(keys["checkout"])), 422, "validation_error")
    assert answer["field"] == "lines" and "5000000" in answer["detail"]
    assert await row_counts(db) == before
    at_the_limit = await post(client, keys, purchase(member, 5_000_000))
    assert len(at_the_limit["rewards_issued"]) == 166


async def test_the_purchase_limit_is_a_setting(db, make_member):
    engine = Engine(db, Rulebook(db), Limits(max_purchase_cents=10_000))
    member_id = await make_member()
    outcome = await engine.submit(PostPurchase.of(purchase_in(member_id, 10_001), TESTS))
    assert outcome.error is not None and outcome.error.code == "validation_error"


async def test_a_quote_makes_every_check_a_purchase_makes_and_writes_nothing(client, keys, db, make_member):
    member, other, cancelled = await make_member(), await make_member(), await make_member()
    others_reward = (await post(client, keys, purchase(other, 30000)))["rewards_issued"][0]["code"]
    await client.post(f"/v1/members/{cancelled}/cancel", headers=auth(keys["guest_services"]))
    used = await post(client, keys, purchase(member, 100))
    before = await row_counts(db)
    cases = [
        (purchase(2**40, 100), 404, "not_found"),
        (purchase(cancelled, 100), 409, "member_not_active"),
        (purchase(member, 1000, tenders=[{"method": "reward", "amount_cents": 1000, "reward_code": others_reward}]),
         409, "reward_not_redeemable"),
        ({**purchase(member, 100), "purchase_id": used["purchase_id"]}, 409, "idempotency_conflict"),
        (purchase(member, 100, occurred_at=datetime.now(UTC) - timedelta(days=30)), 422, "validation_error"),
    ]
    for body, status, code in cases:
        problem(await client.post("/v1/purchases/quote", json=body, headers=auth(keys["checkout"])), status, code)
    assert await row_counts(db) == before


# --- rules: published under the rules lock ------------------------------------------------------


async def test_a_rules_version_dated_in_the_past_is_refused_once_there_are_postings(client, keys, db, member):
    await post(client, keys, purchase(member, 100))
    before = await row_counts(db)
    for when in ("2024-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "9999-12-31T00:00:00Z",
                 (datetime.now(UTC) - timedelta(minutes=1)).isoformat()):
        answer = problem(await client.put("/v1/program/rules", json=DEFAULT_RULES | {"effective_from": when},
                                          headers=auth(keys["admin"])), 422, "validation_error")
        assert answer["field"] == "effective_from", when
    assert await row_counts(db) == before


async def test_rules_published_at_once_all_get_a_version(client, keys):
    instant = (datetime.now(UTC) + timedelta(days=3000)).isoformat()
    answers = await asyncio.gather(*(client.put("/v1/program/rules", json=DEFAULT_RULES | {
        "effective_from": instant}, headers=auth(keys["admin"])) for _ in range(6)))
    assert [a.status_code for a in answers] == [201] * 6, [a.text for a in answers]
    versions = sorted(a.json()["version"] for a in answers)
    assert versions == list(range(versions[0], versions[0] + 6))


async def test_a_version_published_a_moment_ago_applies_at_once_on_every_worker(client, keys, db, make_member):
    """Another worker's rulebook (another Engine, its cache loaded before the publish) posts with it."""
    other_worker = Engine(db, Rulebook(db), Limits())
    await other_worker.rulebook.load()
    member_id = await make_member()
    instant = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
    doubled = await client.put("/v1/program/rules", json=DEFAULT_RULES | {
        "points_per_dollar": 2, "effective_from": instant.isoformat()}, headers=auth(keys["admin"]))
    restored = await client.put("/v1/program/rules", json=DEFAULT_RULES | {
        "effective_from": (instant + timedelta(microseconds=1)).isoformat()}, headers=auth(keys["admin"]))
    assert doubled.status_code == restored.status_code == 201
    await asyncio.sleep(max(0.0, (instant - datetime.now(UTC)).total_seconds()))
    _, out = await post_purchase(other_worker, purchase_in(member_id, 1000, occurred_at=instant))
    assert out.point_cents_earned == 2000
    stored = await db.run("SELECT rules_version FROM purchases WHERE ext_id = $1", out.purchase_id)
    assert stored[0]["rules_version"] == doubled.json()["version"]


async def test_every_ledger_entry_says_who_made_it(client, keys, db, member):
    sale = await post(client, keys, purchase(member, 30000))
    await give_back(client, keys, sale["purchase_id"], ("SKU-1", 1, 30000))
    key_id = (await db.run("SELECT id FROM api_keys WHERE token_hash = sha256($1::text::bytea)", keys["checkout"]))
    entries = await db.run("SELECT kind, actor_key_id, actor_session_id, actor_system FROM ledger "
                           "WHERE member_id = $1", member)
    assert {e["actor_key_id"] for e in entries} == {key_id[0]["id"]}
    assert all(e["actor_session_id"] is None and e["actor_system"] is None for e in entries)

