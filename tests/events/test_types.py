"""Every event type is written by its change, and only then: not by a replay, a refusal, a change
that changes nothing, or a rolled-back transaction; and no event holds personal data, except a
message to deliver."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import msgspec
import pytest

from rewards.engine import PostPurchase, PostReturn, apply
from rewards.schemas import ReturnIn
from tests.conftest import TESTS, auth, purchase, purchase_in, unique

ONE_CLICK = {"content": "List-Unsubscribe=One-Click", "headers": {"content-type": "application/x-www-form-urlencoded"}}


async def events_of(db: Any, *, member_id: int | None = None, after: int = 0, types: tuple[str, ...] = ()
                    ) -> list[tuple[str, dict[str, Any]]]:
    rows = await db.run("""SELECT type, data FROM events WHERE id > $1 AND ($2::bigint IS NULL OR member_id = $2)
                             AND (cardinality($3::text[]) = 0 OR type = ANY ($3)) ORDER BY id""",
                        after, member_id, list(types))
    return [(r["type"], r["data"]) for r in rows]


async def last_event_id(db: Any) -> int:
    return (await db.run("SELECT coalesce(max(id), 0) AS n FROM events"))[0]["n"]


def types(found: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [t for t, _ in found]


def personal(tag: str) -> dict[str, str]:
    digits = uuid.uuid4().int % 10**7
    return {"name": f"Odalys Ferncastle {tag}", "email": f"odalys.{tag}@example.org", "phone": f"+1555{digits:07d}",
            "birth_date": "1977-03-29"}


async def test_the_postings_of_a_member_write_their_events_and_nothing_else(
    events_client: Any, events_keys: dict[str, str], events_db: Any, events_engine: Any, enroll: Any
) -> None:
    staff, checkout = auth(events_keys["guest_services"]), auth(events_keys["checkout"])
    pii = personal(uuid.uuid4().hex[:8])
    member = await enroll(**pii)
    bought = purchase(member, 31_000, method="westique_credit_card")  # 620 points: two rewards
    first = await events_client.post("/v1/purchases", json=bought, headers=checkout)
    assert first.status_code == 201, first.text
    codes = [r["code"] for r in first.json()["rewards_issued"]]
    assert (await events_client.post("/v1/purchases", json=bought, headers=checkout)).status_code == 200  # replay
    refused = await events_client.post("/v1/purchases", json=purchase(
        member, 900, offers=[{"code": "NEVER-MADE", "discount_cents": 100}]), headers=checkout)
    assert refused.status_code == 422
    spend = purchase(member, 1_500, tenders=[{"method": "reward", "amount_cents": 1000, "reward_code": codes[0]},
                                             {"method": "cash", "amount_cents": 500}])
    assert (await events_client.post("/v1/purchases", json=spend, headers=checkout)).status_code == 201
    back = {"return_id": unique("r"), "occurred_at": datetime.now(UTC).isoformat(),
            "lines": [{"sku": "SKU-1", "quantity": 1, "amount_cents": 31_000}]}
    returned = await events_client.post(f"/v1/purchases/{bought['purchase_id']}/returns", json=back, headers=checkout)
    assert returned.status_code == 201 and returned.json()["rewards_voided"] == [codes[1]], returned.text
    assert (await events_client.post(f"/v1/members/{member}/cancel", headers=staff)).status_code == 200
    assert (await events_client.post(f"/v1/members/{member}/cancel", headers=staff)).status_code == 200  # again

    found = await events_of(events_db, member_id=member)
    assert types(found) == ["member.enrolled", "purchase.posted", "reward.issued", "reward.issued", "purchase.posted",
                            "reward.redeemed", "return.posted", "reward.voided", "member.cancelled"]
    data = dict(found)
    assert data["member.enrolled"] == {"state": "CA", "channel": "online"}
    assert [d["code"] for t, d in found if t == "reward.issued"] == codes
    assert data["reward.redeemed"]["code"] == codes[0]
    assert data["reward.voided"] == {"code": codes[1], "reason": "return", "return_id": back["return_id"]}
    assert data["return.posted"]["point_cents_reversed"] == 62_000
    for what, value in pii.items():
        assert value.lower() not in msgspec.json.encode(found).decode().lower(), f"the member's {what} is in an event"


async def test_a_rolled_back_posting_leaves_no_event(events_db: Any, events_engine: Any, enroll: Any) -> None:
    member = await enroll()
    before = await last_event_id(events_db)

    class RolledBack(Exception):
        pass

    with pytest.raises(RolledBack):
        async with events_db.connection() as conn, conn.transaction():
            (outcome,) = await apply(conn, [PostPurchase.of(purchase_in(member, 45_000), TESTS)],
                                     events_engine.rulebook, events_engine.limits)
            assert outcome.created and await conn.fetchval("SELECT count(*) FROM events WHERE id > $1", before) >= 2
            raise RolledBack
    assert await events_of(events_db, after=before) == []
    assert await events_db.run("SELECT 1 FROM purchases WHERE member_id = $1", member) == []


async def test_every_opt_in_and_opt_out_writes_subscription_changed_and_nothing_else_does(
    events_client: Any, events_keys: dict[str, str], events_db: Any, enroll: Any
) -> None:
    staff, checkout = auth(events_keys["guest_services"]), auth(events_keys["checkout"])
    member = await enroll()
    address, number = f"sub.{uuid.uuid4().hex[:10]}@example.com", f"+1415{uuid.uuid4().int % 10**7:07d}"
    before = await last_event_id(events_db)

    async def subscribe(channel: str, to: str, source: str = "store") -> Any:
        return await events_client.post("/v1/subscriptions", headers=staff, json={
            "channel": channel, "address": to, "source": source, "member_id": member})

    made = await subscribe("email", address, "online")
    sid = made.json()["subscription_id"]
    assert (await subscribe("email", address.upper())).status_code == 200  # already subscribed: no change
    stop = {"channel": "email", "address": address}
    assert (await events_client.post("/v1/subscriptions/unsubscribe", json=stop, headers=staff)).status_code == 200
    assert (await events_client.post("/v1/subscriptions/unsubscribe", json=stop, headers=staff)).status_code == 200
    unknown = {"channel": "email", "address": f"nobody.{uuid.uuid4().hex[:8]}@example.com"}
    assert (await events_client.post("/v1/subscriptions/unsubscribe", json=unknown, headers=staff)).status_code == 200
    assert (await subscribe("email", address)).status_code == 201  # a renewal
    link = events_client.app.state.links.unsubscribe_url(sid)
    assert (await events_client.post(urlsplit(link).path, **ONE_CLICK)).status_code == 200
    assert (await events_client.post(urlsplit(link).path, **ONE_CLICK)).status_code == 200  # again: nothing
    texts = (await subscribe("sms", number)).json()["subscription_id"]
    stopped = await events_client.post("/v1/sms/inbound", json={"from": number, "body": "Stop."}, headers=checkout)
    assert stopped.json()["action"] == "unsubscribed"
    assert (await events_client.post("/v1/sms/inbound", json={"from": number, "body": "START"},
                                     headers=checkout)).json()["action"] == "refused"

    found = await events_of(events_db, after=before)
    assert [(d["subscription_id"], d["change"], d["source"], d["status"]) for _, d in found] == [
        (sid, "subscribed", "online", "active"), (sid, "unsubscribed", "link", "unsubscribed"),
        (sid, "renewed", "store", "active"), (sid, "unsubscribed", "link", "unsubscribed"),
        (texts, "subscribed", "store", "active"), (texts, "unsubscribed", "sms", "unsubscribed")]
    assert set(types(found)) == {"subscription.changed"}
    assert {d["channel"] for _, d in found} == {"email", "sms"}
    flat = msgspec.json.encode(found).decode()
    assert address not in flat and number not in flat and number.lstrip("+") not in flat
    rows = await events_db.run("SELECT DISTINCT member_id FROM events WHERE id > $1", before)
    assert [r["member_id"] for r in rows] == [member]


async def test_an_offer_writes_one_offer_delivery_per_message_with_its_link_and_headers(
    events_client: Any, events_keys: dict[str, str], events_db: Any, enroll: Any
) -> None:
    staff, admin = auth(events_keys["guest_services"]), auth(events_keys["admin"])
    member = await enroll()
    tag = uuid.uuid4().hex[:8]
    addresses = [f"offer.{tag}.{n}@example.com" for n in range(3)]
    sids = []
    for n, address in enumerate(addresses):
        made = await events_client.post("/v1/subscriptions", headers=staff, json={
            "channel": "email", "address": address, "source": "online", **({"member_id": member} if n == 0 else {})})
        sids.append(made.json()["subscription_id"])
    await events_client.post("/v1/subscriptions/unsubscribe", json={"channel": "email", "address": addresses[2]},
                             headers=staff)
    number = f"+1628{uuid.uuid4().int % 10**7:07d}"
    await events_client.post("/v1/subscriptions", headers=staff, json={"channel": "sms", "address": number,
                                                                       "source": "store"})
    active_email = await events_db.run("SELECT count(*) AS n FROM subscriptions WHERE channel = 'email' "
                                       "AND status = 'active'")
    before = await last_event_id(events_db)
    offer = {"code": unique("SPRING"), "value_cents": 750, "channel": "email"}
    made = await events_client.post("/v1/offers", json=offer, headers=admin)
    assert made.status_code == 201, made.text
    assert (await events_client.post("/v1/offers", json=offer, headers=admin)).status_code == 200  # replay

    found = await events_of(events_db, after=before)
    assert types(found) == ["offer.delivery"] * active_email[0]["n"] == ["offer.delivery"] * made.json()["deliveries"]
    mine = {d["subscription_id"]: d for _, d in found if d["subscription_id"] in sids}
    assert set(mine) == set(sids[:2]), "the unsubscribed address got a message, or an active one none"
    links = events_client.app.state.links
    for sid, address in zip(sids[:2], addresses, strict=False):
        message = mine[sid]
        assert (message["channel"], message["address"], message["offer_code"], message["value_cents"]) == (
            "email", address, offer["code"], 750)
        assert links.subscription_of(urlsplit(message["unsubscribe_url"]).path.removeprefix("/u/")) == sid
        assert message["headers"] == {"List-Unsubscribe": f"<{message['unsubscribe_url']}>",
                                      "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
        assert offer["code"] in message["subject"] and "$7.50" in message["text"]
        assert message["text"].endswith(message["unsubscribe_url"])
    owners = {r["data"]["subscription_id"]: r["member_id"] for r in await events_db.run(
        "SELECT member_id, data FROM events WHERE id > $1", before)}
    assert (owners[sids[0]], owners[sids[1]]) == (member, None)

    before = await last_event_id(events_db)
    texts = await events_client.post("/v1/offers", json={"code": unique("TXT"), "value_cents": 500,
                                                         "channel": "sms"}, headers=admin)
    sms = [d for _, d in await events_of(events_db, after=before) if d["address"] == number]
    assert len(sms) == texts.json()["deliveries"] >= 1 and len(sms) == 1
    assert "Reply STOP" in sms[0]["text"] and "$5 off" in sms[0]["text"] and "unsubscribe_url" not in sms[0]

    # the messages keep no address once the member's personal data is erased, and the erasure's
    # opt-out has its event
    before = await last_event_id(events_db)
    erased = await events_client.delete(f"/v1/members/{member}/personal-data?immediate=true&reason=consumer_confirmed", headers=staff)
    assert erased.status_code == 200, erased.text
    assert [(d["subscription_id"], d["change"], d["source"]) for t, d in await events_of(events_db, after=before)
            if t == "subscription.changed"] == [(sids[0], "unsubscribed", "erasure")]
    kept = [r["data"] for r in await events_db.run(
        "SELECT data FROM events WHERE type = 'offer.delivery' AND data ->> 'subscription_id' = $1", str(sids[0]))]
    assert kept and all(addresses[0] not in msgspec.json.encode(d).decode() and "erased_at" in d for d in kept)
    assert all(d.get("address") == addresses[1] for d in (mine[sids[1]],))


async def test_no_event_but_a_message_holds_personal_data(
    events_client: Any, events_keys: dict[str, str], events_db: Any, enroll: Any
) -> None:
    """Over every event of the module's database (the other tests' too): a member's name, email,
    phone or birth date appears only in offer.delivery events."""
    pii = personal(uuid.uuid4().hex[:8])
    member = await enroll(**pii)
    staff = auth(events_keys["guest_services"])
    for channel, address in (("email", pii["email"]), ("sms", pii["phone"])):
        await events_client.post("/v1/subscriptions", headers=staff, json={
            "channel": channel, "address": address, "source": "store", "member_id": member})
    await events_client.post("/v1/purchases", json=purchase(member, 30_500), headers=auth(events_keys["checkout"]))
    made = await events_client.post("/v1/offers", json={"code": unique("PII"), "value_cents": 100, "channel": "email"},
                                    headers=auth(events_keys["admin"]))
    assert made.status_code == 201
    messages = await events_db.run("SELECT data FROM events WHERE type = 'offer.delivery' AND data ->> 'address' = $1",
                                   pii["email"])
    assert messages, "the message to deliver names its address"
    people = await events_db.run("SELECT name, email, phone, birth_date FROM members WHERE name IS NOT NULL")
    leaks = []
    for row in await events_db.run("SELECT id, type, data::text AS data FROM events WHERE type <> 'offer.delivery'"):
        text = row["data"].lower()
        for person in people:
            for value in (person["name"], person["email"], person["phone"], str(person["birth_date"])):
                if value.lower() in text:
                    leaks.append((row["id"], row["type"], value))
    assert not leaks


def _history(member: int, days_ago: float, amount: int = 30_000) -> PostPurchase:
    return PostPurchase.of(purchase_in(member, amount, occurred_at=datetime.now(UTC) - timedelta(days=days_ago)),
                           TESTS, history=True)


async def test_the_expiry_job_records_each_expiry_and_notice_once_and_verify_holds_it_to_that(
    events_db: Any, events_engine: Any, enroll: Any
) -> None:
    from rewards.expiry import expire_due
    from rewards.verify import find_problems

    expired_member, soon_member, later_member = [await enroll() for _ in range(3)]
    (gone,) = [(await events_engine.submit(_history(expired_member, 95))).answer.rewards_issued[0].code]
    (soon,) = [(await events_engine.submit(_history(soon_member, 85))).answer.rewards_issued[0].code]
    (later,) = [(await events_engine.submit(_history(later_member, 60))).answer.rewards_issued[0].code]
    balances = {r["id"]: r["point_cents"] for r in await events_db.run("SELECT id, point_cents FROM members")}
    before = await last_event_id(events_db)
    async with events_db.connection() as conn:
        # an expiry not on the record is reported once REWARDS_EXPIRY_INTERVAL passed (here: none at all)
        assert any(gone in p for p in await find_problems(conn, recompute=False, expiry_interval=timedelta(0)))

    run = await expire_due(events_engine, timedelta(days=7))
    assert gone in run.expired and soon in run.noticed
    assert later not in run.expired + run.noticed and soon not in run.expired
    found = await events_of(events_db, after=before, types=("reward.expired", "reward.expiring"))
    assert [(t, d["code"]) for t, d in found if d["code"] in (gone, soon, later)] == [
        ("reward.expired", gone), ("reward.expiring", soon)]
    expired = dict(found)["reward.expired"]
    [reward] = await events_db.run("SELECT status, expires_at FROM rewards WHERE code = $1", gone)
    assert reward["status"] == "expired" and datetime.fromisoformat(expired["expires_at"]) == reward["expires_at"]
    [entry] = await events_db.run(
        """SELECT l.kind, l.point_cents, l.occurred_at, l.actor_system
           FROM ledger l JOIN rewards w ON w.id = l.reward_id
           WHERE w.code = $1 AND l.kind = 'reward_expired'""", gone)
    assert (entry["point_cents"], entry["occurred_at"], entry["actor_system"]) == (0, reward["expires_at"],
                                                                                   "reward_expiry")
    assert {r["id"]: r["point_cents"] for r in await events_db.run("SELECT id, point_cents FROM members")} == balances
    [noticed] = await events_db.run("SELECT status, expiry_notice_at FROM rewards WHERE code = $1", soon)
    assert noticed["status"] == "issued" and noticed["expiry_notice_at"] is not None

    again = await expire_due(events_engine, timedelta(days=7))
    assert (again.expired, again.noticed) == ([], [])
    assert len(await events_of(events_db, after=before, types=("reward.expired", "reward.expiring"))) == len(found)
    async with events_db.connection() as conn:
        assert await find_problems(conn, expiry_interval=timedelta(0)) == []


async def test_an_expired_reward_shows_expired_before_and_after_the_job(
    events_client: Any, events_keys: dict[str, str], events_engine: Any, enroll: Any
) -> None:
    from rewards.expiry import expire_due

    member = await enroll()
    code = (await events_engine.submit(_history(member, 100))).answer.rewards_issued[0].code
    checkout = auth(events_keys["checkout"])
    seen = [(await events_client.get(f"/v1/rewards/{code}", headers=checkout)).json()["status"]]
    await expire_due(events_engine, timedelta(days=7))
    seen.append((await events_client.get(f"/v1/rewards/{code}", headers=checkout)).json()["status"])
    balance = (await events_client.get(f"/v1/members/{member}/balance", headers=checkout)).json()
    assert seen == ["expired", "expired"] and [r["status"] for r in balance["rewards"]] == ["expired"]
    tendered = purchase(member, 1_000, tenders=[{"method": "reward", "amount_cents": 1000, "reward_code": code}])
    refused = await events_client.post("/v1/purchases", json=tendered, headers=checkout)
    assert refused.status_code == 409 and refused.json()["code"] == "reward_not_redeemable"


async def test_a_return_after_expiry_voids_nothing_expired(events_db: Any, events_engine: Any, enroll: Any) -> None:
    from rewards.expiry import expire_due

    member = await enroll()
    posted = (await events_engine.submit(_history(member, 100))).answer
    await expire_due(events_engine, timedelta(days=7))
    back = msgspec.convert({"return_id": unique("r"), "occurred_at": datetime.now(UTC).isoformat(),
                            "lines": [{"sku": "SKU-1", "quantity": 1, "amount_cents": 30_000}]}, ReturnIn)
    out = (await events_engine.submit(PostReturn.of(posted.purchase_id, back, TESTS, history=True))).answer
    assert out.rewards_voided == [] and out.balance.point_cents == -30_000
    [reward] = await events_db.run("SELECT status FROM rewards WHERE code = $1", posted.rewards_issued[0].code)
    assert reward["status"] == "expired"


async def test_the_reports_read_the_same_before_and_after_the_expiry_job(
    events_client: Any, events_db: Any, events_engine: Any, enroll: Any
) -> None:
    """Expiry goes on the record; no figure of the liability or the incentive-value report moves."""
    from rewards.auth import create_key
    from rewards.expiry import expire_due

    for days in (100, 95, 80):
        await events_engine.submit(_history(await enroll(), days, 61_000))
    compliance = auth(await create_key(events_db, ["compliance"]))
    today = datetime.now(UTC).date()

    async def figures() -> dict[str, Any]:
        liability = await events_client.get("/v1/reports/liability", headers=compliance)
        value = await events_client.get("/v1/reports/incentive-value", headers=compliance, params={
            "program": "rewards", "from": str(today - timedelta(days=200)), "to": str(today - timedelta(days=1))})
        assert liability.status_code == value.status_code == 200, liability.text + value.text
        kept = liability.json()
        kept.pop("rows_read", None)  # reward_expired entries are ledger rows read, not figures
        report = value.json()
        return {"liability": {k: v for k, v in kept.items() if k not in ("as_of", "cutoff")},
                "value": {k: report[k] for k in ("members", "spend", "points", "rewards", "value_per_member_cents")},
                "digest": report["reproducibility"]["digest"]}

    before = await figures()
    run = await expire_due(events_engine, timedelta(days=7))
    assert run.expired, "nothing expired: the test compares nothing"
    assert await figures() == before
