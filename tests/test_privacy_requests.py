"""Consumers' requests through HTTP: intake and its clocks, the verification record, what the record
keeps of the consumer (and forgets at erasure), closing, the list, retention, events."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec
import pytest

from rewards import errors
from rewards.privacy import calendar, requests
from rewards.privacy.schemas import DenyIn, PrivacyRequestIn
from tests.conftest import TESTS, auth, enrollment
from tests.test_mailing import email, phone
from tests.test_security_secrets import personal_data, where_found

LA = "America/Los_Angeles"
VERIFIED = {"method": "sms_code", "verified_at": "2026-01-05T17:00:00Z"}


def body(type: str = "delete", **subject: Any) -> dict[str, Any]:
    return {"type": type, "channel": "phone", "verification": VERIFIED, **subject}


async def file(client: Any, keys: dict[str, str], **fields: Any) -> Any:
    return await client.post("/v1/privacy-requests", json=fields, headers=auth(keys["guest_services"]))


async def events_of(db: Any, request_id: int) -> list[tuple[str, Any, dict[str, Any]]]:
    rows = await db.run("""SELECT type, member_id, data FROM events WHERE type LIKE 'privacy_request.%'
                           AND (data->>'request_id')::bigint = $1 ORDER BY id""", request_id)
    return [(r["type"], r["member_id"], r["data"]) for r in rows]


# --- intake --------------------------------------------------------------------------------------


async def test_a_request_answers_201_with_its_clocks_and_is_recorded_with_an_event(client, keys, db, member):
    before = datetime.now(UTC)
    answer = await file(client, keys, **body("access", member_id=member, details="what do you hold about me?"))
    assert answer.status_code == 201, answer.text
    out = answer.json()
    received = datetime.fromisoformat(out["received_at"])
    assert before - timedelta(seconds=5) < received <= datetime.now(UTC) + timedelta(seconds=5)
    assert (out["status"], out["type"], out["member_id"], out["subject"], out["address"]) == \
        ("open", "access", member, "member", None)
    assert datetime.fromisoformat(out["confirm_by"]) == calendar.confirm_by(received, LA)
    assert datetime.fromisoformat(out["due_at"]) == calendar.due_at(received, LA)
    assert out["verification"] == {"method": "sms_code", "verified_at": "2026-01-05T17:00:00Z"}
    [(kind, member_id, data)] = await events_of(db, out["request_id"])
    assert (kind, member_id) == ("privacy_request.received", member)
    # the event tells what happened and its clocks, not what the consumer wrote
    clocks = {key: datetime.fromisoformat(data.pop(key)) for key in ("confirm_by", "due_at")}
    assert clocks == {key: datetime.fromisoformat(out[key]) for key in ("confirm_by", "due_at")}
    assert data == {"request_id": out["request_id"], "type": "access", "channel": "phone", "subject": "member"}
    read = await client.get(f"/v1/privacy-requests/{out['request_id']}", headers=auth(keys["compliance"]))
    assert read.status_code == 200 and read.json() == out


@pytest.mark.parametrize(("fields", "field"), [
    ({"member_id": 1, "email": "a@example.com"}, None),                  # two subjects
    ({}, None),                                                           # none
    ({"email": "not an email"}, "email"),
    ({"phone": "12"}, "phone"),
    ({"member_id": 1, "verification": {"method": "sms_code"}}, None),    # verified, but when?
    ({"member_id": 1, "verification": {"method": "not_verified", "verified_at": "2026-01-05T17:00:00Z"}}, None),
    ({"member_id": 1, "verification": {"method": "sms_code", "verified_at": "0001-01-01T00:00:00+23:59"}}, None),
    ({"member_id": 1, "verification": {"method": "sms_code", "verified_at": "2999-01-01T00:00:00Z"}}, None),
    ({"member_id": 1, "type": "sell"}, "type"),
    ({"member_id": 1, "channel": "carrier pigeon"}, "channel"),
    ({"member_id": 1, "details": "x" * 2001}, "details"),
])
async def test_a_malformed_request_is_422_and_files_nothing(client, keys, db, fields, field):
    count = (await db.run("SELECT count(*) AS n FROM privacy_requests"))[0]["n"]
    answer = await file(client, keys, **{**body(), **fields})
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == "validation_error"
    if field is not None:
        assert answer.json()["field"] == field, answer.json()
    assert (await db.run("SELECT count(*) AS n FROM privacy_requests"))[0]["n"] == count


async def test_a_request_for_a_member_who_does_not_exist_is_404(client, keys):
    answer = await file(client, keys, **body(member_id=2**40))
    assert answer.status_code == 404 and answer.json()["code"] == "not_found"


async def test_an_unverified_request_is_filed_to_be_denied(client, keys):
    filed = await file(client, keys, **{**body("access", email=email()), "verification": {"method": "not_verified"}})
    assert filed.status_code == 201, filed.text
    assert filed.json()["verification"] == {"method": "not_verified", "verified_at": None}


async def test_an_email_or_phone_of_a_member_files_the_members_request_without_keeping_the_address(
        client, keys, db, make_member):
    address, number = email(), phone()
    member_id = await make_member(email=address, phone=number)
    for subject in ({"email": address.upper()}, {"phone": f"({number[2:5]}) {number[5:8]}-{number[8:]}"}):
        out = (await file(client, keys, **body("correct", **subject))).json()
        assert (out["member_id"], out["address"]) == (member_id, None), out
        [row] = await db.run("SELECT subject_hash, address FROM privacy_requests WHERE id = $1", out["request_id"])
        assert (row["subject_hash"], row["address"]) == (None, None)


async def test_an_address_of_no_member_is_kept_while_open_with_its_keyed_hash(client, keys, db):
    address = email()
    out = (await file(client, keys, **body("delete", email=f"  {address.upper()} "))).json()
    assert (out["member_id"], out["subject"], out["address"]) == (None, "email", address)
    [row] = await db.run("SELECT subject_hash FROM privacy_requests WHERE id = $1", out["request_id"])
    # the hash is HMAC-SHA256 of the address in lower case, keyed with the database's key
    [key] = await db.run("SELECT inner_pad, outer_pad FROM privacy_hash_key")
    secret = bytes(b ^ 0x36 for b in key["inner_pad"])
    assert bytes(b ^ 0x5c for b in secret) == key["outer_pad"]
    assert secret[32:] == bytes(32)  # 32 random bytes, zero-padded to the block
    assert row["subject_hash"] == hmac.new(secret[:32], address.encode(), hashlib.sha256).digest()
    assert row["subject_hash"] != hashlib.sha256(address.encode()).digest()


# --- closing --------------------------------------------------------------------------------------


async def test_confirm_complete_and_deny_close_a_request_once_with_events(client, keys, db, member):
    staff = auth(keys["guest_services"])
    access = (await file(client, keys, **body("access", member_id=member))).json()["request_id"]
    confirmed = await client.post(f"/v1/privacy-requests/{access}/confirm", headers=staff)
    assert confirmed.status_code == 200 and confirmed.json()["confirmed_at"], confirmed.text
    again = await client.post(f"/v1/privacy-requests/{access}/confirm", headers=staff)
    assert again.json()["confirmed_at"] == confirmed.json()["confirmed_at"]  # the first is kept

    done = await client.post(f"/v1/privacy-requests/{access}/complete", json={}, headers=staff)
    assert done.status_code == 200, done.text
    assert (done.json()["status"], done.json()["outcome"], done.json()["reason"]) == ("completed", "in_whole", None)
    assert (await client.post(f"/v1/privacy-requests/{access}/complete", json={}, headers=staff)).json() == done.json()
    refused = await client.post(f"/v1/privacy-requests/{access}/deny", json={"reason": "too late"}, headers=staff)
    assert refused.status_code == 409 and refused.json()["code"] == "request_closed", refused.text
    other = await client.post(f"/v1/privacy-requests/{access}/complete",
                              json={"outcome": "in_part", "reason": "some records are exempt"}, headers=staff)
    assert other.status_code == 409 and other.json()["code"] == "request_closed"

    correct = (await file(client, keys, **body("correct", member_id=member))).json()["request_id"]
    assert (await client.post(f"/v1/privacy-requests/{correct}/complete", json={"outcome": "in_part"},
                              headers=staff)).status_code == 422  # in part says why
    denied = await client.post(f"/v1/privacy-requests/{correct}/deny",
                               json={"reason": "could not verify the requestor's identity"}, headers=staff)
    assert denied.status_code == 200 and denied.json()["status"] == "denied", denied.text
    assert (await client.post(f"/v1/privacy-requests/{correct}/deny", json={"reason": "another basis"},
                              headers=staff)).status_code == 409
    assert [e[0] for e in await events_of(db, access)] == ["privacy_request.received", "privacy_request.completed"]
    [(_, _, data)] = [e for e in await events_of(db, correct) if e[0] == "privacy_request.denied"]
    assert data == {"request_id": correct, "type": "correct"}  # the basis stays in the record
    [row] = await db.run("SELECT closed_by_key_id, closed_by_system FROM privacy_requests WHERE id = $1", correct)
    assert row["closed_by_key_id"] is not None and row["closed_by_system"] is None
    assert (await client.post("/v1/privacy-requests/999999999/deny", json={"reason": "x"},
                              headers=staff)).status_code == 404


async def test_a_delete_request_is_not_completed_by_hand_while_the_data_is_held(client, keys, db, member):
    staff = auth(keys["guest_services"])
    request_id = (await file(client, keys, **body("delete", member_id=member))).json()["request_id"]
    refused = await client.post(f"/v1/privacy-requests/{request_id}/complete", json={}, headers=staff)
    assert refused.status_code == 409 and refused.json()["code"] == "personal_data_held", refused.text
    assert f"DELETE /v1/members/{member}/personal-data" in refused.json()["detail"]
    scheduled = await client.delete(f"/v1/members/{member}/personal-data", headers=staff)
    assert scheduled.status_code == 202, scheduled.text
    refused = await client.post(f"/v1/privacy-requests/{request_id}/complete", json={}, headers=staff)
    assert refused.status_code == 409 and scheduled.json()["scheduled_for"][:16] in refused.json()["detail"]
    assert (await requests.one(db, request_id, LA)).status == "open"
    # the erasure completes it
    erased = await client.delete(f"/v1/members/{member}/personal-data?immediate=true&reason=consumer_confirmed",
                                 headers=staff)
    assert erased.status_code == 200, erased.text
    out = (await client.get(f"/v1/privacy-requests/{request_id}", headers=staff)).json()
    assert (out["status"], out["outcome"], out["closed_at"]) == ("completed", "in_whole", erased.json()["erased_at"])
    [row] = await db.run("SELECT closed_by_system FROM privacy_requests WHERE id = $1", request_id)
    assert row["closed_by_system"] == "erasure"
    assert [e[0] for e in await events_of(db, request_id)] == ["privacy_request.received", "privacy_request.completed"]


async def test_the_record_is_kept_after_the_members_erasure_without_personal_data(client, keys, db):
    pii = personal_data()
    staff = auth(keys["guest_services"])
    member = (await client.post("/v1/members", json=enrollment(**pii), headers=staff)).json()["member_id"]
    by_member = (await file(client, keys, **body("access", member_id=member, details=f"for {pii['name']}"))).json()
    by_email = (await file(client, keys, **body("correct", email=pii["email"]))).json()
    # filed before the guest enrolled: the phone named no member then, so it was kept, with its hash
    other = personal_data()
    early = (await file(client, keys, **body("delete", phone=other["phone"], details=f"I am {other['name']}")))
    assert early.json()["address"] == other["phone"]
    later = (await client.post("/v1/members", json=enrollment(**other), headers=staff)).json()["member_id"]
    for value in (pii["name"], other["name"], other["phone"]):
        assert await where_found(db, value), f"{value} was never stored: the scan proves nothing"

    for member_id in (member, later):
        erased = await client.delete(f"/v1/members/{member_id}/personal-data?immediate=true&reason=consumer_confirmed",
                                     headers=staff)
        assert erased.status_code == 200, erased.text
    for person in (pii, other):
        for what in ("name", "email", "phone"):
            assert await where_found(db, person[what]) == {}, (what, await where_found(db, person[what]))
    records = await db.run("SELECT * FROM privacy_requests WHERE id = ANY ($1::bigint[])",
                           [by_member["request_id"], by_email["request_id"], early.json()["request_id"]])
    assert len(records) == 3  # kept: the record outlives the data
    for row in records:
        assert (row["address"], row["details"], row["subject_hash"]) == (None, None, None), dict(row)
        assert row["member_id"] in (member, later)
        assert row["received_at"] and row["type"] and row["channel"] and row["verification_method"]
    [early_row] = [r for r in records if r["id"] == early.json()["request_id"]]
    # the phone request turned out to be the later member's: it is theirs now, completed by the erasure
    assert (early_row["member_id"], early_row["status"]) == (later, "completed")


# --- the list -------------------------------------------------------------------------------------


async def test_the_list_filters_by_status_type_and_due_date_and_pages(client, keys, db, member):
    staff, compliance = auth(keys["guest_services"]), auth(keys["compliance"])
    made = [(await file(client, keys, **body(t, member_id=member))).json() for t in ("access", "correct", "access")]
    await client.post(f"/v1/privacy-requests/{made[1]['request_id']}/deny", json={"reason": "duplicate"}, headers=staff)
    mine = {m["request_id"] for m in made}

    async def listed(**params: Any) -> list[dict[str, Any]]:
        items, cursor = [], None
        while True:
            query = {**params, "limit": 2, **({"cursor": cursor} if cursor else {})}
            page = await client.get("/v1/privacy-requests", params=query, headers=compliance)
            assert page.status_code == 200, page.text
            items += page.json()["items"]
            cursor = page.json()["next_cursor"]
            if cursor is None or len(items) > 500:
                return [i for i in items if i["request_id"] in mine]

    everything = await listed()
    assert [i["request_id"] for i in everything] == sorted(mine, reverse=True)  # newest first, each once
    assert {i["request_id"] for i in await listed(status="open", type="access")} == \
        {made[0]["request_id"], made[2]["request_id"]}
    assert [i["request_id"] for i in await listed(status="denied")] == [made[1]["request_id"]]
    due_day = datetime.fromisoformat(made[0]["due_at"]).date()
    assert await listed(due_before=due_day.isoformat()) == []                    # due on that day, not before
    assert len(await listed(due_before=(due_day + timedelta(days=1)).isoformat())) == 3
    bad = await client.get("/v1/privacy-requests", params={"due_before": "soon"}, headers=compliance)
    assert bad.status_code == 422 and bad.json()["field"] == "due_before"
    assert (await client.get("/v1/privacy-requests", headers=staff)).status_code == 403


# --- retention ------------------------------------------------------------------------------------


def access_request(member: int, verified_at: datetime) -> PrivacyRequestIn:
    return msgspec.convert({"type": "access", "member_id": member, "channel": "email",
                            "verification": {"method": "email_code", "verified_at": verified_at.isoformat()}},
                           PrivacyRequestIn)


async def test_records_are_deleted_24_months_after_they_close_and_not_before(db, member):
    received = datetime(2023, 3, 1, 18, tzinfo=UTC)
    filed = await requests.file(db, access_request(member, received), TESTS, LA, received_at=received)
    closed_at = received + timedelta(days=20)
    await requests.deny(db, filed.request_id, DenyIn(reason="duplicate of an earlier request"), TESTS, LA, at=closed_at)
    assert await requests.purge_expired(db, now=datetime(2025, 3, 20, 17, tzinfo=UTC)) == 0  # 23.9 months
    assert (await requests.one(db, filed.request_id, LA)).status == "denied"
    assert await requests.purge_expired(db, now=datetime(2025, 3, 21, 19, tzinfo=UTC)) >= 1
    with pytest.raises(errors.NotFound):
        await requests.one(db, filed.request_id, LA)
    # an open request is never deleted, however old
    old_open = await requests.file(db, access_request(member, received), TESTS, LA, received_at=received)
    await requests.purge_expired(db)
    assert (await requests.one(db, old_open.request_id, LA)).status == "open"
    await requests.deny(db, old_open.request_id, DenyIn(reason="test cleanup"), TESTS, LA)


@pytest.mark.parametrize("statement", ["UPDATE privacy_hash_key SET outer_pad = inner_pad", "DELETE FROM privacy_hash_key",
                                       "TRUNCATE privacy_hash_key"])
async def test_the_hash_key_never_changes(db, statement):
    before = await db.run("SELECT inner_pad, outer_pad FROM privacy_hash_key")
    async with db.connection() as conn:
        with pytest.raises(asyncpg.RestrictViolationError):
            await conn.execute(statement)
    assert await db.run("SELECT inner_pad, outer_pad FROM privacy_hash_key") == before and len(before) == 1
