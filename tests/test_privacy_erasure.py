"""Erasure with notice (Colorado Rule 6.05(E)): the schedule and what it says would be lost, the
rewards usable meanwhile, the job erasing on time and not before, asking again, erasing at once
(a minor, a confirmed consumer, no notice period, a member already cancelled), a member who
cancels or enrolls again meanwhile, and the record each erasure leaves."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from rewards.app import create_app
from rewards.auth import create_key
from rewards.config import load_settings
from rewards.engine import Actor
from rewards.privacy import erasure
from rewards.privacy.schemas import ErasureScheduledOut
from rewards.verify import find_problems
from tests.conftest import auth, enrollment, purchase
from tests.test_mailing import email, phone, subscribe

NOW = "?immediate=true&reason=consumer_confirmed"


async def earn_two_rewards(client: Any, keys: dict[str, str], member: int) -> list[str]:
    """$612.34 in cash: 612.34 points, two $10 rewards, 12.34 points left."""
    posted = await client.post("/v1/purchases", json=purchase(member, 61234), headers=auth(keys["checkout"]))
    assert posted.status_code == 201, posted.text
    return [r["code"] for r in posted.json()["rewards_issued"]]


async def redeem(client: Any, keys: dict[str, str], member: int, code: str) -> Any:
    return await client.post("/v1/purchases", headers=auth(keys["checkout"]), json=purchase(
        member, 2500, tenders=[{"method": "reward", "amount_cents": 1000, "reward_code": code},
                               {"method": "cash", "amount_cents": 1500}]))


async def member_row(db: Any, member: int) -> Any:
    return (await db.run("SELECT * FROM members WHERE id = $1", member))[0]


async def events_of(db: Any, member: int, kind: str) -> list[dict[str, Any]]:
    rows = await db.run("SELECT data FROM events WHERE member_id = $1 AND type = $2 ORDER BY id", member, kind)
    return [r["data"] for r in rows]


async def test_an_erasure_is_scheduled_with_notice_and_asking_again_answers_the_same_schedule(
        client, keys, db, member):
    codes = await earn_two_rewards(client, keys, member)
    staff = auth(keys["guest_services"])
    before = datetime.now(UTC)
    scheduled = await client.delete(f"/v1/members/{member}/personal-data", headers=staff)
    assert scheduled.status_code == 202, scheduled.text
    out = scheduled.json()
    requested, when = datetime.fromisoformat(out["requested_at"]), datetime.fromisoformat(out["scheduled_for"])
    assert when - requested == timedelta(hours=24)  # REWARDS_ERASURE_NOTICE_HOURS' default
    assert before - timedelta(seconds=5) < requested < datetime.now(UTC) + timedelta(seconds=5)
    assert (out["status"], out["point_cents_to_forfeit"]) == ("scheduled", 1234)
    assert [r["code"] for r in out["rewards_to_void"]] == codes
    assert all(r["value_cents"] == 1000 for r in out["rewards_to_void"])
    # the retailer's systems are told, so the guest is: with no personal data
    [event] = await events_of(db, member, "member.erasure_scheduled")
    assert event == {"scheduled_for": event["scheduled_for"], "point_cents_to_forfeit": 1234, "rewards_to_void": codes}
    assert datetime.fromisoformat(event["scheduled_for"]) == when

    # meanwhile nothing has changed: the profile, the balance, a reward redeemed
    row = await member_row(db, member)
    assert (row["status"], row["erased_at"]) == ("active", None) and row["name"] is not None
    assert (await redeem(client, keys, member, codes[0])).status_code == 201
    again = await client.delete(f"/v1/members/{member}/personal-data", headers=staff)
    assert again.status_code == 202, again.text
    assert (again.json()["requested_at"], again.json()["scheduled_for"]) == (out["requested_at"], out["scheduled_for"])
    # what would be lost now: the other reward, and the points the purchase earned since
    assert [r["code"] for r in again.json()["rewards_to_void"]] == codes[1:]
    assert again.json()["point_cents_to_forfeit"] == 1234 + 1500
    assert len(await events_of(db, member, "member.erasure_scheduled")) == 1
    # the record keeps what the notice said
    [record] = await db.run("SELECT * FROM member_erasures WHERE member_id = $1", member)
    assert (record["point_cents_to_forfeit"], record["rewards_to_void"], record["erased_at"]) == (1234, codes, None)
    assert record["actor_key_id"] is not None

    # and erasing at once, when the consumer confirms, does it now
    erased = await client.delete(f"/v1/members/{member}/personal-data{NOW}", headers=staff)
    assert erased.status_code == 200, erased.text
    [record] = await db.run("SELECT reason, erased_at FROM member_erasures WHERE member_id = $1", member)
    assert record["reason"] == "consumer_confirmed"
    assert record["erased_at"] == datetime.fromisoformat(erased.json()["erased_at"])
    assert (await client.delete(f"/v1/members/{member}/personal-data", headers=staff)).json() == erased.json()


async def test_the_job_erases_on_time_not_before_and_the_rewards_are_usable_until_then(
        client, keys, db, engine, member):
    codes = await earn_two_rewards(client, keys, member)
    staff_key = await create_key(db, ["guest_services"], label="desk 4")
    key_id = (await db.run("SELECT id FROM api_keys WHERE token_hash = sha256($1::bytea)",
                           staff_key.encode()))[0]["id"]
    filed = await client.post("/v1/privacy-requests", headers=auth(staff_key), json={
        "type": "delete", "member_id": member, "channel": "online",
        "verification": {"method": "signed_in", "verified_at": datetime.now(UTC).isoformat()}})
    assert filed.status_code == 201, filed.text
    scheduled = await erasure.request_erasure(engine, member, Actor(key_id=key_id), timedelta(seconds=1.5))
    assert isinstance(scheduled, ErasureScheduledOut)

    # during the notice: the guest redeems a reward
    assert (await redeem(client, keys, member, codes[0])).status_code == 201
    # the job runs before the time: nothing happens; it cannot be told a time still to come
    assert member not in await erasure.erase_due(engine)
    assert (await member_row(db, member))["erased_at"] is None
    with pytest.raises(ValueError, match="before the notice ends"):
        await erasure.erase_due(engine, scheduled.scheduled_for)

    while datetime.now(UTC) <= scheduled.scheduled_for:
        await asyncio.sleep(0.1)
    assert member in await erasure.erase_due(engine)
    row = await member_row(db, member)
    assert row["erased_at"] >= scheduled.scheduled_for
    assert (row["status"], row["name"], row["email"], row["phone"], row["point_cents"]) == \
        ("cancelled", None, None, None, 0)
    rewards = {r["code"]: r["status"] for r in await db.run("SELECT code, status FROM rewards WHERE member_id = $1",
                                                             member)}
    assert rewards == {codes[0]: "redeemed", codes[1]: "voided"}
    # the ledger says who asked for it: the desk's key, not the job
    entries = await db.run("""SELECT kind, point_cents, actor_key_id FROM ledger WHERE member_id = $1
                              AND kind IN ('forfeit', 'reward_voided') ORDER BY id""", member)
    assert [(e["kind"], e["point_cents"], e["actor_key_id"]) for e in entries] == \
        [("forfeit", -(1234 + 1500), key_id), ("reward_voided", 0, key_id)]
    assert await events_of(db, member, "member.erased") == [{"reason": "notice_given"}]
    [record] = await db.run("SELECT reason, erased_at, actor_key_id FROM member_erasures WHERE member_id = $1", member)
    assert (record["reason"], record["erased_at"], record["actor_key_id"]) == ("notice_given", row["erased_at"], key_id)
    # the deletion request it answered is complied with
    request = (await client.get(f"/v1/privacy-requests/{filed.json()['request_id']}", headers=auth(staff_key))).json()
    assert (request["status"], request["outcome"]) == ("completed", "in_whole")
    # once done, the job has nothing left to do for this member
    assert member not in await erasure.erase_due(engine)
    async with db.connection() as conn:
        assert await find_problems(conn, recompute=False) == []


async def test_a_minor_is_erased_at_once_and_the_reason_is_required(client, keys, db, make_member):
    staff = auth(keys["guest_services"])
    teen = await make_member(birth_date=f"{datetime.now(UTC).year - 15}-01-01", guardian_consent=True)
    for query in ("?immediate=true", "?reason=minor", "?immediate=true&reason=because", "?immediate=false&reason=minor"):
        refused = await client.delete(f"/v1/members/{teen}/personal-data{query}", headers=staff)
        assert refused.status_code == 422, (query, refused.text)
        assert refused.json()["field"] == "reason"
    assert (await member_row(db, teen))["erased_at"] is None
    erased = await client.delete(f"/v1/members/{teen}/personal-data?immediate=true&reason=minor", headers=staff)
    assert erased.status_code == 200, erased.text
    assert erased.json()["status"] == "cancelled" and erased.json()["erased_at"]
    row = await member_row(db, teen)
    assert (row["name"], row["birth_date"], row["erased_at"]) == \
        (None, None, datetime.fromisoformat(erased.json()["erased_at"]))
    assert await events_of(db, teen, "member.erasure_scheduled") == []
    assert await events_of(db, teen, "member.erased") == [{"reason": "minor"}]
    [record] = await db.run("SELECT reason, requested_at, scheduled_for, erased_at FROM member_erasures "
                            "WHERE member_id = $1", teen)
    assert record["reason"] == "minor" and record["requested_at"] == record["scheduled_for"] == record["erased_at"]
    assert (await client.delete(f"/v1/members/{2**40}/personal-data?immediate=true&reason=minor",
                                headers=staff)).status_code == 404


async def test_a_member_already_cancelled_has_nothing_left_to_lose_and_is_erased_at_once(client, keys, db, member):
    staff = auth(keys["guest_services"])
    assert (await client.post(f"/v1/members/{member}/cancel", headers=staff)).status_code == 200
    erased = await client.delete(f"/v1/members/{member}/personal-data", headers=staff)
    assert erased.status_code == 200, erased.text
    assert await events_of(db, member, "member.erased") == [{"reason": "already_cancelled"}]


@pytest.fixture(scope="module")
async def no_notice_client(app: Any) -> Any:
    settings = msgspec.structs.replace(load_settings(), erasure_notice_hours=0)
    async with AsyncTestClient(app=create_app(settings)) as test_client:
        yield test_client


async def test_with_no_notice_period_the_erasure_happens_at_once(no_notice_client, keys, db, member):
    erased = await no_notice_client.delete(f"/v1/members/{member}/personal-data", headers=auth(keys["guest_services"]))
    assert erased.status_code == 200, erased.text
    assert (await member_row(db, member))["erased_at"] is not None
    assert await events_of(db, member, "member.erased") == [{"reason": "no_notice_period"}]


def test_the_notice_period_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("REWARDS_ERASURE_NOTICE_HOURS", "48")
    assert load_settings().erasure_notice_hours == 48
    monkeypatch.setenv("REWARDS_ERASURE_NOTICE_HOURS", "-1")
    with pytest.raises(ValueError, match="REWARDS_ERASURE_NOTICE_HOURS"):
        load_settings()


async def test_a_member_who_cancels_meanwhile_is_erased_on_schedule(client, keys, db, engine, member):
    scheduled = await erasure.request_erasure(engine, member, Actor(system="tests"), timedelta(seconds=1))
    assert isinstance(scheduled, ErasureScheduledOut)
    assert (await client.post(f"/v1/members/{member}/cancel", headers=auth(keys["guest_services"]))).status_code == 200
    # still scheduled: cancelling ends the membership, the deletion request stands
    again = await client.delete(f"/v1/members/{member}/personal-data", headers=auth(keys["guest_services"]))
    assert again.status_code == 202 and again.json()["point_cents_to_forfeit"] == 0, again.text
    assert (await member_row(db, member))["erased_at"] is None
    while datetime.now(UTC) <= scheduled.scheduled_for:
        await asyncio.sleep(0.1)
    assert member in await erasure.erase_due(engine)
    assert (await member_row(db, member))["email"] is None


async def test_a_guest_who_enrolls_again_meanwhile_keeps_the_new_membership_and_new_opt_ins(
        client, keys, db, engine):
    staff = auth(keys["guest_services"])
    address, number = email(), phone()
    old = (await client.post("/v1/members", json=enrollment(email=address, phone=number), headers=staff)).json()
    early = (await subscribe(client, keys, "sms", number)).json()["subscription_id"]  # opted in before
    scheduled = await erasure.request_erasure(engine, old["member_id"], Actor(system="tests"), timedelta(seconds=1))
    assert isinstance(scheduled, ErasureScheduledOut)
    assert (await client.post(f"/v1/members/{old['member_id']}/cancel", headers=staff)).status_code == 200
    new = await client.post("/v1/members", json=enrollment(email=address, phone=number), headers=staff)
    assert new.status_code == 201, new.text
    mail = (await subscribe(client, keys, "email", address)).json()["subscription_id"]  # a new opt-in, unlinked
    while datetime.now(UTC) <= scheduled.scheduled_for:
        await asyncio.sleep(0.1)
    assert old["member_id"] in await erasure.erase_due(engine)

    assert (await member_row(db, old["member_id"]))["email"] is None
    fresh = await member_row(db, new.json()["member_id"])
    assert (fresh["status"], fresh["email"], fresh["phone"]) == ("active", address, number)
    [kept] = await db.run("SELECT address, status, member_id FROM subscriptions WHERE id = $1", mail)
    assert (kept["address"], kept["status"], kept["member_id"]) == (address, "active", None)
    # the texts the old member's number opted into before the erasure was asked for are erased with it
    [gone] = await db.run("SELECT address, status, member_id FROM subscriptions WHERE id = $1", early)
    assert (gone["address"], gone["status"], gone["member_id"]) == (None, "unsubscribed", old["member_id"])
    assert await events_of(db, old["member_id"], "subscription.changed") == [
        {"subscription_id": early, "channel": "sms", "change": "unsubscribed", "status": "unsubscribed",
         "source": "erasure", "erased": True}]
