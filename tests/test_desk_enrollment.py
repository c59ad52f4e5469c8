"""Enrollment at the desk: retries with an Idempotency-Key, a clash that names the member who has
the email or phone, and no way out of a debt of points by cancelling and joining again."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar.testing import AsyncTestClient

from rewards.auth import create_key
from rewards.verify import find_problems
from tests.conftest import auth, enrollment, unique
from tests.desk_support import enroll, enrolled, entries_of, events_of, fresh_phone, key_id_of, owing


async def test_the_same_key_and_body_again_answer_200_with_the_first_answer_card_number_included(
        client: AsyncTestClient, keys: dict[str, str], db: Any) -> None:
    body, key = enrollment(), {"Idempotency-Key": unique("enroll")}
    headers = {**auth(keys["guest_services"]), **key}
    first = await client.post("/v1/members", json=body, headers=headers)
    again = await client.post("/v1/members", json=body, headers=headers)
    assert (first.status_code, again.status_code) == (201, 200), again.text
    assert again.json() == first.json() and again.json()["card_number"]
    assert (await db.run("SELECT count(*) AS n FROM members WHERE email = $1", body["email"]))[0]["n"] == 1


async def test_the_same_key_with_another_body_is_an_idempotency_conflict(client: AsyncTestClient,
                                                                         keys: dict[str, str], db: Any) -> None:
    key = {"Idempotency-Key": unique("enroll")}
    first = await enroll(client, keys, headers=key)
    other = enrollment()
    clash = await client.post("/v1/members", json=other, headers={**auth(keys["guest_services"]), **key})
    assert first.status_code == 201 and clash.status_code == 409, clash.text
    assert clash.json()["code"] == "idempotency_conflict"
    assert not await db.run("SELECT 1 FROM members WHERE email = $1", other["email"])


async def test_twin_requests_with_one_key_enroll_one_member(client: AsyncTestClient, keys: dict[str, str]) -> None:
    body, headers = enrollment(), {**auth(keys["guest_services"]), "Idempotency-Key": unique("enroll")}
    answers = await asyncio.gather(*(client.post("/v1/members", json=body, headers=headers) for _ in range(4)))
    assert sorted(a.status_code for a in answers) == [200, 200, 200, 201]
    assert len({a.json()["member_id"] for a in answers}) == 1


async def test_a_key_is_its_callers_own(client: AsyncTestClient, keys: dict[str, str], db: Any) -> None:
    """Another register's same key is another enrollment: here the same guest, so a duplicate that
    names the member the first register enrolled."""
    body, key = enrollment(), unique("enroll")
    other_desk = await create_key(db, ["guest_services"], label="store 40")
    first = await client.post("/v1/members", json=body, headers={**auth(keys["guest_services"]), "Idempotency-Key": key})
    second = await client.post("/v1/members", json=body, headers={**auth(other_desk), "Idempotency-Key": key})
    assert (first.status_code, second.status_code) == (201, 409)
    assert second.json()["member_id"] == first.json()["member_id"]


async def test_a_duplicate_without_a_key_names_the_member_who_has_the_email(
        client: AsyncTestClient, keys: dict[str, str]) -> None:
    first = await enrolled(client, keys)
    clash = await enroll(client, keys, email=(await client.get(
        f"/v1/members/{first['member_id']}", headers=auth(keys["guest_services"]))).json()["email"].upper())
    assert clash.status_code == 409
    problem = clash.json()
    assert (problem["code"], problem["member_id"], problem["field"]) == (
        "duplicate_member", first["member_id"], "email")
    # it names the member, nothing the caller did not send: no name, no phone, no card
    assert not {"name", "phone", "card_number"} & set(problem)


async def test_a_phone_that_is_not_a_phone_is_refused_and_nothing_is_stored(
        client: AsyncTestClient, keys: dict[str, str], db: Any) -> None:
    body = enrollment(phone="555-0123")
    answer = await client.post("/v1/members", json=body, headers=auth(keys["guest_services"]))
    assert answer.status_code == 422 and answer.json()["field"] == "phone", answer.text
    assert not await db.run("SELECT 1 FROM members WHERE email = $1", body["email"])


async def test_the_phone_is_kept_in_e164_and_the_email_as_given(client: AsyncTestClient,
                                                                keys: dict[str, str]) -> None:
    number, tag = fresh_phone(), unique("mixed")
    member = await enrolled(client, keys, phone=f"({number[:3]}) {number[3:6]}-{number[6:]}",
                            email=f" {tag}@Example.com ")
    profile = (await client.get(f"/v1/members/{member['member_id']}", headers=auth(keys["guest_services"]))).json()
    assert (profile["phone"], profile["email"]) == (f"+1{number}", f"{tag}@Example.com")
    assert profile["card_number"] == member["card_number"]


async def test_a_guest_who_cancelled_owing_points_starts_from_that_debt(
        client: AsyncTestClient, keys: dict[str, str], db: Any) -> None:
    number = fresh_phone()
    old = await enrolled(client, keys, phone=number)
    debt = await owing(client, keys, old["member_id"])
    assert (await client.post(f"/v1/members/{old['member_id']}/cancel",
                              headers=auth(keys["guest_services"]))).status_code == 200

    new = await enroll(client, keys, phone=f"+0 1 {number}")  # another spelling of the same number
    assert new.status_code == 201, new.text
    body = new.json()
    assert body["balance"] == {"points": debt // 100, "point_cents": debt}
    assert body["carried_over"] == {"point_cents": debt, "from_member_ids": [old["member_id"]]}
    balance = (await client.get(f"/v1/members/{body['member_id']}/balance", headers=auth(keys["checkout"]))).json()
    assert balance["point_cents"] == debt
    before = (await client.get(f"/v1/members/{old['member_id']}/balance", headers=auth(keys["checkout"]))).json()
    assert before["point_cents"] == 0, "the debt moved: it is owed once"

    desk = await key_id_of(db, keys["guest_services"])
    assert (await entries_of(db, old["member_id"]))[-1] == {
        "kind": "debt_carried_out", "point_cents": -debt, "counterpart_member_id": body["member_id"],
        "actor_key_id": desk, "actor_system": None, "reward_id": None}
    assert await entries_of(db, body["member_id"]) == [{
        "kind": "debt_carried_in", "point_cents": debt, "counterpart_member_id": old["member_id"],
        "actor_key_id": desk, "actor_system": None, "reward_id": None}]
    assert await events_of(db, body["member_id"], "points.carried") == [
        {"point_cents": debt, "from_member_id": old["member_id"], "balance_point_cents": debt}]
    async with db.connection() as conn:
        assert await find_problems(conn, recompute=False) == []


async def test_a_cancelled_member_with_points_left_gives_no_debt_and_a_new_email_nothing(
        client: AsyncTestClient, keys: dict[str, str]) -> None:
    owes = await enrolled(client, keys)
    await owing(client, keys, owes["member_id"])
    await client.post(f"/v1/members/{owes['member_id']}/cancel", headers=auth(keys["guest_services"]))
    stranger = await enrolled(client, keys)  # another email and phone
    assert stranger["carried_over"] is None and stranger["balance"] == {"points": 0, "point_cents": 0}


async def test_erasure_forgets_the_enrollments_retry_key(client: AsyncTestClient, keys: dict[str, str],
                                                         db: Any) -> None:
    key = unique("enroll")
    member = (await enroll(client, keys, headers={"Idempotency-Key": key})).json()["member_id"]
    assert await db.run("SELECT 1 FROM enrollment_keys WHERE key = $1", key)
    erased = await client.delete(f"/v1/members/{member}/personal-data?immediate=true&reason=consumer_confirmed", headers=auth(keys["guest_services"]))
    assert erased.status_code == 200
    assert not await db.run("SELECT 1 FROM enrollment_keys WHERE key = $1", key)
