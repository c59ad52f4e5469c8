"""Correcting a member (PATCH /v1/members/{id}) and who changed a member: member_changes."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from litestar.testing import AsyncTestClient

from rewards.auth import GUEST, create_key
from tests.conftest import auth, enrollment, purchase, unique
from tests.desk_support import enrolled, events_of, fresh_phone, key_id_of


async def patch(client: AsyncTestClient, token: str, member_id: int, body: dict[str, Any]) -> Any:
    return await client.patch(f"/v1/members/{member_id}", json=body, headers=auth(token))


async def test_a_correction_changes_the_fields_and_records_their_names_not_their_values(
        client: AsyncTestClient, keys: dict[str, str], db: Any) -> None:
    member = await enrolled(client, keys, name="Jamie Rivera")
    number, email = fresh_phone(), f"{unique('new')}@Example.com"
    answer = await patch(client, keys["guest_services"], member["member_id"],
                         {"name": "Jamie Rivera-Lopez", "phone": f"({number[:3]}) {number[3:6]}-{number[6:]}",
                          "email": email, "state": "CA"})  # the state as it was: no change
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["name"], body["phone"], body["email"], body["state"]) == (
        "Jamie Rivera-Lopez", f"+1{number}", email, "CA")
    desk = await key_id_of(db, keys["guest_services"])
    newest = body["changes"][0]
    assert (newest["kind"], newest["fields"], newest["actor"]["key_id"]) == (
        "corrected", ["name", "email", "phone"], desk)
    [stored] = await db.run("SELECT details::text AS d FROM member_changes WHERE member_id = $1 AND kind = "
                            "'corrected'", member["member_id"])
    assert "Jamie Rivera" not in stored["d"] and member["card_number"] not in stored["d"]
    assert await events_of(db, member["member_id"], "member.updated") == [{"fields": ["name", "email", "phone"]}]
    found = (await client.get("/v1/members", params={"phone": number}, headers=auth(keys["checkout"]))).json()
    assert [m["member_id"] for m in found["items"]] == [member["member_id"]]
    assert (await client.get("/v1/members", params={"email": email.lower()},
                             headers=auth(keys["checkout"]))).json()["items"]


async def test_a_correction_that_changes_nothing_records_nothing(client: AsyncTestClient, keys: dict[str, str],
                                                                 db: Any) -> None:
    member = await enrolled(client, keys, name="Same Name")
    answer = await patch(client, keys["guest_services"], member["member_id"], {"name": "Same Name"})
    assert answer.status_code == 200
    assert [c["kind"] for c in answer.json()["changes"]] == ["enrolled"]
    assert await events_of(db, member["member_id"], "member.updated") == []
    empty = await patch(client, keys["guest_services"], member["member_id"], {})
    assert empty.status_code == 422


async def test_a_correction_keeps_emails_and_phones_unique_among_active_members(
        client: AsyncTestClient, keys: dict[str, str]) -> None:
    number = fresh_phone()
    holder = await enrolled(client, keys, phone=number)
    other = await enrolled(client, keys)
    clash = await patch(client, keys["guest_services"], other["member_id"], {"phone": f"+1 {number}"})
    assert clash.status_code == 409
    assert (clash.json()["code"], clash.json()["member_id"], clash.json()["field"]) == (
        "duplicate_member", holder["member_id"], "phone")
    bad = await patch(client, keys["guest_services"], other["member_id"], {"phone": "12345"})
    assert bad.status_code == 422 and bad.json()["field"] == "phone"


async def test_a_correction_passes_the_age_gate_again(client: AsyncTestClient, keys: dict[str, str]) -> None:
    member = (await enrolled(client, keys))["member_id"]
    today = datetime.now(UTC).date()
    child = date(today.year - 10, 1, 1).isoformat()
    teen = date(today.year - 15, 1, 1).isoformat()
    refused = await patch(client, keys["guest_services"], member, {"birth_date": child})
    assert refused.status_code == 422 and refused.json()["code"] == "age_restricted"
    refused = await patch(client, keys["guest_services"], member, {"birth_date": teen})
    assert refused.status_code == 422 and refused.json()["code"] == "guardian_consent_required"
    maine = await patch(client, keys["guest_services"], member, {"birth_date": teen, "state": "ME",
                                                                 "guardian_consent": True})
    assert maine.status_code == 422 and maine.json()["code"] == "age_restricted"
    allowed = await patch(client, keys["guest_services"], member, {"birth_date": teen, "guardian_consent": True})
    assert allowed.status_code == 200, allowed.text
    body = allowed.json()
    assert body["birth_date"] == teen and body["consent"]["guardian_consent"] is True
    assert body["changes"][0]["fields"] == ["birth_date", "guardian_consent"]


async def test_merged_and_erased_members_are_not_corrected(client: AsyncTestClient, keys: dict[str, str]) -> None:
    duplicate, target = (await enrolled(client, keys))["member_id"], (await enrolled(client, keys))["member_id"]
    await client.post(f"/v1/members/{target}/merge", json={"from_member_id": duplicate},
                      headers=auth(keys["guest_services"]))
    merged = await patch(client, keys["guest_services"], duplicate, {"name": "X Y"})
    assert merged.status_code == 409 and merged.json()["merged_into"] == target
    erased = (await enrolled(client, keys))["member_id"]
    await client.delete(f"/v1/members/{erased}/personal-data?immediate=true&reason=consumer_confirmed", headers=auth(keys["guest_services"]))
    refused = await patch(client, keys["guest_services"], erased, {"name": "X Y"})
    assert refused.status_code == 409 and refused.json()["code"] == "member_not_active"
    assert (await patch(client, keys["guest_services"], 2**40, {"name": "X Y"})).status_code == 404


async def test_every_change_of_a_member_says_who_made_it_and_staff_see_the_keys_label(
        client: AsyncTestClient, keys: dict[str, str], db: Any) -> None:
    register = await create_key(db, ["checkout", "guest_services"], label="store 12 register 3")
    enrolled_by = await client.post("/v1/members", json=enrollment(),
                                    headers=auth(register))
    member = enrolled_by.json()["member_id"]
    await client.post("/v1/purchases", json=purchase(member, 4_000),
                      headers=auth(register))
    guest = await create_key(db, [GUEST], member_id=member)
    assert (await client.post(f"/v1/members/{member}/cancel", headers=auth(guest))).status_code == 200
    assert (await client.delete(f"/v1/members/{member}/personal-data?immediate=true&reason=consumer_confirmed",
                                headers=auth(keys["guest_services"]))).status_code == 200
    register_id, guest_id, desk_id = (await key_id_of(db, register), await key_id_of(db, guest),
                                      await key_id_of(db, keys["guest_services"]))
    profile = (await client.get(f"/v1/members/{member}", headers=auth(keys["guest_services"]))).json()
    assert [(c["kind"], c["actor"]) for c in profile["changes"]] == [
        ("erased", {"key_id": desk_id}), ("cancelled", {"key_id": guest_id}),
        ("enrolled", {"key_id": register_id, "label": "store 12 register 3"})]
    activity = (await client.get(f"/v1/members/{member}/activity", headers=auth(keys["guest_services"]))).json()
    by_kind = {e["kind"]: e["actor"] for e in activity["entries"]}
    assert by_kind["earn"] == {"key_id": register_id, "label": "store 12 register 3"}
    assert by_kind["forfeit"] == {"key_id": guest_id}
    assert [e["store_id"] for e in activity["entries"] if e["kind"] == "earn"] == ["S001"]


async def test_a_guest_sees_their_changes_and_activity_without_who_made_them(
        client: AsyncTestClient, keys: dict[str, str], db: Any) -> None:
    member = (await enrolled(client, keys))["member_id"]
    await client.post("/v1/purchases", json=purchase(member, 4_000),
                      headers=auth(keys["checkout"]))
    guest = await create_key(db, [GUEST], member_id=member)
    profile = (await client.get(f"/v1/members/{member}", headers=auth(guest))).json()
    assert [(c["kind"], c["actor"]) for c in profile["changes"]] == [("enrolled", None)]
    entries = (await client.get(f"/v1/members/{member}/activity", headers=auth(guest))).json()["entries"]
    assert entries and all(e["actor"] is None for e in entries)
