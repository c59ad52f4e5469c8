"""Merging a duplicate member into another: POST /v1/members/{target}/merge."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient

from rewards.verify import find_problems
from tests.conftest import auth, purchase
from tests.desk_support import buy, enroll, enrolled, entries_of, events_of, fresh_phone, give_back, key_id_of


async def merge(client: AsyncTestClient, keys: dict[str, str], target: int, duplicate: int) -> Any:
    return await client.post(f"/v1/members/{target}/merge", json={"from_member_id": duplicate},
                             headers=auth(keys["guest_services"]))


async def balance(client: AsyncTestClient, keys: dict[str, str], member_id: int) -> dict[str, Any]:
    body: dict[str, Any] = (await client.get(f"/v1/members/{member_id}/balance",
                                             headers=auth(keys["checkout"]))).json()
    return body


async def test_a_merge_moves_the_balance_and_the_open_rewards_and_the_duplicate_becomes_merged(
        client: AsyncTestClient, keys: dict[str, str], db: Any) -> None:
    target = (await enrolled(client, keys))["member_id"]
    duplicate = (await enrolled(client, keys))["member_id"]
    own = (await buy(client, keys, target, 31_000))["rewards_issued"][0]["code"]  # one reward, 10.00 points left
    bought = await buy(client, keys, duplicate, 64_550)  # two rewards, 45.50 points left
    codes = sorted(r["code"] for r in bought["rewards_issued"])

    merged = await merge(client, keys, target, duplicate)
    assert merged.status_code == 201, merged.text
    body = merged.json()
    assert (body["member_id"], body["from_member_id"], body["point_cents_moved"]) == (target, duplicate, 4_550)
    assert sorted(body["rewards_moved"]) == codes
    assert body["balance"] == {"points": 55, "point_cents": 5_550}

    after = await balance(client, keys, target)
    assert after["point_cents"] == 5_550
    assert sorted(r["code"] for r in after["rewards"] if r["status"] == "issued") == sorted([*codes, own])
    ordinals = await db.run("SELECT code, ordinal, expires_at FROM rewards WHERE member_id = $1 ORDER BY ordinal",
                            target)
    assert [r["ordinal"] for r in ordinals] == [1, 2, 3], "moved rewards take the target's next ordinals"
    assert {r["code"]: r["expires_at"].isoformat().replace("+00:00", "Z") for r in ordinals if r["code"] in codes} \
        == {r["code"]: r["expires_at"].replace("+00:00", "Z") for r in bought["rewards_issued"]}
    gone = await balance(client, keys, duplicate)
    assert (gone["status"], gone["point_cents"], [r["status"] for r in gone["rewards"]]) == ("merged", 0, [])
    profile = (await client.get(f"/v1/members/{duplicate}", headers=auth(keys["guest_services"]))).json()
    assert (profile["status"], profile["merged_into"]) == ("merged", target)

    desk = await key_id_of(db, keys["guest_services"])
    moved = [e for e in await entries_of(db, duplicate) if e["kind"] in ("merge_out", "reward_moved_out")]
    assert [(e["kind"], e["point_cents"], e["counterpart_member_id"], e["actor_key_id"]) for e in moved] == [
        ("merge_out", -4_550, target, desk), ("reward_moved_out", 0, target, desk),
        ("reward_moved_out", 0, target, desk)]
    into = [e for e in await entries_of(db, target) if e["kind"] in ("merge_in", "reward_moved_in")]
    assert [(e["kind"], e["point_cents"], e["counterpart_member_id"]) for e in into] == [
        ("merge_in", 4_550, duplicate), ("reward_moved_in", 0, duplicate), ("reward_moved_in", 0, duplicate)]
    [event] = await events_of(db, target, "member.merged")
    assert (event["from_member_id"], event["point_cents_moved"], sorted(event["rewards_moved"])) == (
        duplicate, 4_550, codes)
    changes = (await client.get(f"/v1/members/{target}", headers=auth(keys["guest_services"]))).json()["changes"]
    assert (changes[0]["kind"], changes[0]["counterpart_member_id"], changes[0]["actor"]["key_id"]) == (
        "merged_in", duplicate, desk)


async def test_a_moved_reward_is_redeemed_by_the_target_and_refused_to_the_duplicate(
        client: AsyncTestClient, keys: dict[str, str]) -> None:
    target, duplicate = (await enrolled(client, keys))["member_id"], (await enrolled(client, keys))["member_id"]
    code = (await buy(client, keys, duplicate, 30_000))["rewards_issued"][0]["code"]
    assert (await merge(client, keys, target, duplicate)).status_code == 201
    tender = [{"method": "reward", "amount_cents": 1000, "reward_code": code}]
    refused = await client.post("/v1/purchases", json=purchase(duplicate, 1000, tenders=tender),
                                headers=auth(keys["checkout"]))
    assert refused.status_code == 409
    assert (refused.json()["code"], refused.json()["merged_into"]) == ("member_merged", target)
    redeemed = await buy(client, keys, target, 1000, tenders=tender)
    assert redeemed["rewards_redeemed"] == [code]


async def test_a_merge_followed_by_a_return_of_the_duplicates_purchase_takes_the_points_from_the_target(
        client: AsyncTestClient, keys: dict[str, str], db: Any) -> None:
    target, duplicate = (await enrolled(client, keys))["member_id"], (await enrolled(client, keys))["member_id"]
    before = await buy(client, keys, duplicate, 12_000, method="westique_credit_card")  # 240 points
    await buy(client, keys, target, 5_000)
    assert (await merge(client, keys, target, duplicate)).json()["balance"]["point_cents"] == 29_000
    back = await give_back(client, keys, before["purchase_id"])
    assert back.status_code == 201, back.text
    assert back.json()["point_cents_reversed"] == 24_000
    assert back.json()["balance"] == {"points": 50, "point_cents": 5_000}
    assert (await balance(client, keys, target))["point_cents"] == 5_000
    assert (await balance(client, keys, duplicate))["point_cents"] == 0
    [row] = await db.run("SELECT member_id FROM purchase_returns WHERE purchase_id = "
                         "(SELECT id FROM purchases WHERE ext_id = $1)", before["purchase_id"])
    assert row["member_id"] == target
    async with db.connection() as conn:
        assert await find_problems(conn) == []


async def test_merging_again_answers_the_same_and_other_merges_are_refused(
        client: AsyncTestClient, keys: dict[str, str], db: Any) -> None:
    target, duplicate = (await enrolled(client, keys))["member_id"], (await enrolled(client, keys))["member_id"]
    await buy(client, keys, duplicate, 2_000)
    first = await merge(client, keys, target, duplicate)
    again = await merge(client, keys, target, duplicate)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.content == first.content
    other = (await enrolled(client, keys))["member_id"]
    elsewhere = await merge(client, keys, other, duplicate)
    assert elsewhere.status_code == 409
    assert (elsewhere.json()["code"], elsewhere.json()["merged_into"]) == ("member_merged", target)
    into_merged = await merge(client, keys, duplicate, other)
    assert (into_merged.status_code, into_merged.json()["merged_into"]) == (409, target)
    itself = await merge(client, keys, target, target)
    assert itself.status_code == 422 and itself.json()["field"] == "from_member_id"
    assert (await merge(client, keys, target, 2**40)).status_code == 404
    cancelled = (await enrolled(client, keys))["member_id"]
    await client.post(f"/v1/members/{cancelled}/cancel", headers=auth(keys["guest_services"]))
    into_cancelled = await merge(client, keys, cancelled, other)
    assert into_cancelled.status_code == 409 and into_cancelled.json()["code"] == "member_not_active"
    moves = await db.run("SELECT count(*) AS n FROM ledger WHERE member_id = $1 AND kind = 'merge_in'", target)
    assert moves[0]["n"] == 1


async def test_the_duplicates_email_and_phone_are_free_again(client: AsyncTestClient, keys: dict[str, str]) -> None:
    number = fresh_phone()
    duplicate = await enrolled(client, keys, phone=number)
    target = await enrolled(client, keys)
    assert (await enroll(client, keys, phone=number)).status_code == 409
    assert (await merge(client, keys, target["member_id"], duplicate["member_id"])).status_code == 201
    corrected = await client.patch(f"/v1/members/{target['member_id']}", json={"phone": number},
                                   headers=auth(keys["guest_services"]))
    assert corrected.status_code == 200, corrected.text
    assert corrected.json()["phone"] == f"+1{number}"


async def test_a_member_merged_into_a_duplicate_follows_it_into_the_next_target(
        client: AsyncTestClient, keys: dict[str, str], db: Any) -> None:
    first, second, third = [(await enrolled(client, keys))["member_id"] for _ in range(3)]
    old = await buy(client, keys, first, 8_000)
    assert (await merge(client, keys, second, first)).status_code == 201
    assert (await merge(client, keys, third, second)).status_code == 201
    assert (await db.run("SELECT merged_into FROM members WHERE id = $1", first))[0]["merged_into"] == third
    assert (await balance(client, keys, third))["point_cents"] == 8_000
    back = await give_back(client, keys, old["purchase_id"])
    assert back.status_code == 201 and back.json()["balance"]["point_cents"] == 0
    refused = await client.post("/v1/purchases", json=purchase(first, 100), headers=auth(keys["checkout"]))
    assert refused.json()["merged_into"] == third


async def test_a_debt_moves_too(client: AsyncTestClient, keys: dict[str, str]) -> None:
    from tests.desk_support import owing

    target, duplicate = (await enrolled(client, keys))["member_id"], (await enrolled(client, keys))["member_id"]
    await buy(client, keys, target, 10_000)
    debt = await owing(client, keys, duplicate)
    body = (await merge(client, keys, target, duplicate)).json()
    assert (body["point_cents_moved"], body["balance"]["point_cents"]) == (debt, 10_000 + debt)


async def test_erasing_a_member_erases_the_duplicates_merged_into_it(client: AsyncTestClient, keys: dict[str, str],
                                                                     db: Any) -> None:
    duplicate, target = await enrolled(client, keys), await enrolled(client, keys)
    assert (await merge(client, keys, target["member_id"], duplicate["member_id"])).status_code == 201
    erased = await client.delete(f"/v1/members/{target['member_id']}/personal-data?immediate=true&reason=consumer_confirmed",
                                 headers=auth(keys["guest_services"]))
    assert erased.status_code == 200, erased.text
    rows = await db.run("SELECT id, status, name, email, phone, erased_at FROM members WHERE id = ANY($1::bigint[]) "
                        "ORDER BY id", [duplicate["member_id"], target["member_id"]])
    assert [(r["status"], r["name"], r["email"], r["phone"]) for r in rows] == [
        ("merged", None, None, None), ("cancelled", None, None, None)]
    assert all(r["erased_at"] is not None for r in rows)
    # an erased duplicate is no one to merge
    other = (await enrolled(client, keys))["member_id"]
    erased_alone = (await enrolled(client, keys))["member_id"]
    await client.delete(f"/v1/members/{erased_alone}/personal-data?immediate=true&reason=consumer_confirmed", headers=auth(keys["guest_services"]))
    refused = await merge(client, keys, other, erased_alone)
    assert refused.status_code == 409 and refused.json()["code"] == "member_not_active"


async def test_cancelling_a_merged_member_names_its_target(client: AsyncTestClient, keys: dict[str, str]) -> None:
    duplicate, target = (await enrolled(client, keys))["member_id"], (await enrolled(client, keys))["member_id"]
    await merge(client, keys, target, duplicate)
    refused = await client.post(f"/v1/members/{duplicate}/cancel", headers=auth(keys["guest_services"]))
    assert refused.status_code == 409 and refused.json()["merged_into"] == target


async def test_verify_is_clean_after_merges(db: Any) -> None:
    async with db.connection() as conn:
        assert await find_problems(conn) == []
