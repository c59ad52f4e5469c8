"""Erasing a subscriber who is not a member: the address goes, the opt-out stays as a keyed hash.
Offers, restarts and direct writes cannot reach the address again; a new opt-in can."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from rewards import mailing
from rewards.privacy.subscribers import OPTED_OUT
from rewards.texting import Replies
from tests.conftest import auth, unique
from tests.test_mailing import email, events, phone, subscribe, subscription, text
from tests.test_security_secrets import where_found


async def erase(client: Any, keys: dict[str, str], channel: str, address: str) -> Any:
    return await client.request("DELETE", "/v1/subscriptions/personal-data", json={"channel": channel, "address": address},
                                headers=auth(keys["guest_services"]))


async def offer_reaches(client: Any, keys: dict[str, str], db: Any, channel: str, subscription_id: int) -> bool:
    made = await client.post("/v1/offers", json={"code": unique("ERASED"), "value_cents": 500, "channel": channel},
                             headers=auth(keys["admin"]))
    assert made.status_code == 201, made.text
    return bool(await db.run("SELECT 1 FROM offer_deliveries WHERE offer_id = $1 AND subscription_id = $2",
                             made.json()["offer_id"], subscription_id))


async def opted_out(db: Any, channel: str, address: str) -> bool:
    async with db.connection() as conn:
        return bool(await conn.fetchval(OPTED_OUT, channel, address))


async def test_erasing_a_subscriber_erases_the_address_and_keeps_the_opt_out(client, keys, db):
    address = email()
    sid = (await subscribe(client, keys, "email", address, "online")).json()["subscription_id"]
    assert await offer_reaches(client, keys, db, "email", sid)
    erased = await erase(client, keys, "email", f" {address.upper()}")
    assert erased.status_code == 200, erased.text
    assert erased.json() == {"channel": "email", "subscriptions_erased": 1, "opted_out": True}

    row = await subscription(db, sid)
    assert (row["address"], row["status"]) == (None, "unsubscribed") and row["erased_at"] is not None
    assert [kind for kind, _, _ in await events(db, sid)] == ["subscribed", "unsubscribed"]
    assert (await events(db, sid))[-1] == ("unsubscribed", "erasure", None)
    assert await where_found(db, address) == {}
    assert await opted_out(db, "email", address)
    [event] = await db.run("""SELECT member_id, data FROM events WHERE type = 'subscription.changed'
                              AND (data->>'subscription_id')::bigint = $1 AND data ? 'erased'""", sid)
    assert event["member_id"] is None
    assert event["data"] == {"subscription_id": sid, "channel": "email", "change": "unsubscribed",
                             "status": "unsubscribed", "source": "erasure", "erased": True}

    # no offer reaches it; asking again erases nothing more and says it stays opted out
    assert not await offer_reaches(client, keys, db, "email", sid)
    assert (await erase(client, keys, "email", address)).json() == \
        {"channel": "email", "subscriptions_erased": 0, "opted_out": True}


async def test_only_a_new_opt_in_reaches_an_erased_address_again(client, keys, db):
    number = phone()
    sid = (await subscribe(client, keys, "sms", number)).json()["subscription_id"]
    assert (await erase(client, keys, "sms", number)).json()["subscriptions_erased"] == 1

    # a START texted through the carrier's webhook finds no subscription to restart: the address is gone
    restart = await mailing.text_received(db, number, "START", Replies(guest_services_phone="1-800-555-0199",
                                          guest_services_email="gs@example.com"), may_restart=True)
    assert restart.action == "unchanged" and "no text subscription" in restart.detail
    assert (await text(client, keys, number, "START")).json()["action"] == "refused"  # nor at a register
    # an import, or any write that would make a subscription of the address active without an opt-in: refused
    async with db.connection() as conn:
        with pytest.raises(asyncpg.CheckViolationError, match="stays opted out"):
            await conn.execute("""INSERT INTO subscriptions (channel, address, status, source)
                                  VALUES ('sms', $1, 'active', 'store')""", number)
    assert await opted_out(db, "sms", number)

    # the guest opts in again at a register: a new consent, a new subscription, offers reach it
    again = await subscribe(client, keys, "sms", number, "store")
    assert again.status_code == 201, again.text
    fresh = again.json()["subscription_id"]
    assert fresh != sid
    assert [kind for kind, _, _ in await events(db, fresh)] == ["subscribed"]
    assert not await opted_out(db, "sms", number)
    assert await offer_reaches(client, keys, db, "sms", fresh)
    assert not await offer_reaches(client, keys, db, "sms", sid)


async def test_an_address_never_subscribed_is_not_stored(client, keys, db):
    address = email()
    answer = await erase(client, keys, "email", address)
    assert answer.json() == {"channel": "email", "subscriptions_erased": 0, "opted_out": False}
    assert not await opted_out(db, "email", address)


async def test_a_members_address_is_refused_the_member_is_erased_instead(client, keys, db, make_member):
    address, number = email(), phone()
    member = await make_member(email=address, phone=number)
    linked = (await subscribe(client, keys, "sms", number, member_id=member)).json()["subscription_id"]
    for channel, value in (("email", address), ("sms", number)):  # the email has no subscription at all
        refused = await erase(client, keys, channel, value)
        assert refused.status_code == 409, refused.text
        assert refused.json()["code"] == "subscriber_is_member"
        assert f"/v1/members/{member}/personal-data" in refused.json()["detail"]
    assert (await subscription(db, linked))["address"] == number
    # erasing the member erases the subscription the same way: the opt-out kept as a hash
    assert (await client.delete(f"/v1/members/{member}/personal-data?immediate=true&reason=consumer_confirmed",
                                headers=auth(keys["guest_services"]))).status_code == 200
    assert (await subscription(db, linked))["address"] is None
    assert await opted_out(db, "sms", number)


async def test_a_malformed_address_is_422(client, keys):
    answer = await erase(client, keys, "sms", "not a phone")
    assert answer.status_code == 422 and answer.json()["field"] == "address"


async def test_the_erasure_completes_a_delete_request_naming_the_address_and_forgets_it(client, keys, db):
    address = email()
    await subscribe(client, keys, "email", address)
    filed = await client.post("/v1/privacy-requests", headers=auth(keys["guest_services"]), json={
        "type": "delete", "email": address, "channel": "email", "details": f"please remove {address}",
        "verification": {"method": "email_code", "verified_at": "2026-01-05T17:00:00Z"}})
    request_id = filed.json()["request_id"]
    assert filed.json()["address"] == address
    held = await client.post(f"/v1/privacy-requests/{request_id}/complete", json={},
                             headers=auth(keys["guest_services"]))
    assert held.status_code == 409 and held.json()["code"] == "personal_data_held"
    assert (await erase(client, keys, "email", address)).json()["subscriptions_erased"] == 1
    out = (await client.get(f"/v1/privacy-requests/{request_id}", headers=auth(keys["compliance"]))).json()
    assert (out["status"], out["outcome"], out["address"], out["details"]) == ("completed", "in_whole", None, None)
    assert await where_found(db, address) == {}
    # the hash stays with the record, so a later request from the address is found by it
    [row] = await db.run("SELECT subject_hash = privacy_hash($2) AS same FROM privacy_requests WHERE id = $1",
                         request_id, address)
    assert row["same"]
