"""The access export: every row held about the member, from every table that holds such rows,
and none of another member's.

Two members are given everything the program can hold about a person (a consent to published
texts, purchases, a return, rewards issued and redeemed, subscriptions with consent events and
an offer, a subscription of their phone made at a register without the member id, a sign-in and
its session, a guest token, events); the export of one is compared, table by table, with what
the database holds for that member. A table added to the schema that holds member rows fails
`test_every_table_is_exported_or_is_the_programs_own` until the export reads it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from rewards import tables
from rewards.auth import GUEST, create_key
from tests.conftest import auth, enrollment, purchase, unique
from tests.guest_support import signed_in
from tests.test_api_members import problem

# tables whose rows are about the program, not about one member (the export quotes what it needs of them)
# (opt-out hashes name no member: an erased address is kept only as its keyed hash)
PROGRAM_WIDE = {"program_rules", "program_disclosures", "program_documents", "offers", "opt_out_hashes",
                "privacy_hash_key", "event_passes", "webhooks", "webhook_deliveries"}
# how each table's rows of the member are found, and how the export names them
COVERED = {
    "members": ("SELECT id AS key FROM members WHERE id = $1", lambda x: [x["member"]["member_id"]]),
    "consents": ("SELECT id AS key FROM consents WHERE member_id = $1", lambda x: [c["consent_id"] for c in x["consents"]]),
    "purchases": ("SELECT ext_id AS key FROM purchases WHERE member_id = $1",
                  lambda x: [p["purchase_id"] for p in x["purchases"]]),
    "purchase_returns": ("SELECT ext_id AS key FROM purchase_returns WHERE member_id = $1",
                         lambda x: [r["return_id"] for r in x["returns"]]),
    "rewards": ("SELECT code AS key FROM rewards WHERE member_id = $1", lambda x: [w["code"] for w in x["rewards"]]),
    "ledger": ("SELECT id AS key FROM ledger WHERE member_id = $1", lambda x: [e["entry_id"] for e in x["ledger"]]),
    "subscriptions": (
        """SELECT s.id AS key FROM subscriptions s, members m WHERE m.id = $1 AND (s.member_id = m.id OR
           (s.member_id IS NULL AND (lower(s.address) = lower(m.email) OR s.address = m.phone)))""",
        lambda x: [s["subscription_id"] for s in x["subscriptions"]]),
    "subscription_events": (
        """SELECT e.id AS key FROM subscription_events e JOIN subscriptions s ON s.id = e.subscription_id, members m
           WHERE m.id = $1 AND (s.member_id = m.id OR
           (s.member_id IS NULL AND (lower(s.address) = lower(m.email) OR s.address = m.phone)))""",
        lambda x: [e["event_id"] for s in x["subscriptions"] for e in s["consent_events"]]),
    "offer_deliveries": (
        """SELECT d.subscription_id || '/' || o.code AS key FROM offer_deliveries d JOIN offers o ON o.id = d.offer_id
           JOIN subscriptions s ON s.id = d.subscription_id WHERE s.member_id = $1""",
        lambda x: [f"{s['subscription_id']}/{o['code']}" for s in x["subscriptions"] for o in s["offers_received"]]),
    "events": ("SELECT id AS key FROM events WHERE member_id = $1", lambda x: [e["event_id"] for e in x["events"]]),
    "sign_in_links": ("SELECT created_at AS key FROM sign_in_links WHERE member_id = $1",
                      lambda x: [k["created_at"] for k in x["access"]["sign_in_links"]]),
    "guest_sessions": ("SELECT created_at AS key FROM guest_sessions WHERE member_id = $1",
                       lambda x: [k["started_at"] for k in x["access"]["sessions"]]),
    "api_keys": ("SELECT created_at AS key FROM api_keys WHERE member_id = $1",
                 lambda x: [k["created_at"] for k in x["access"]["guest_tokens"]]),
    "adjustments": ("SELECT ext_id AS key FROM adjustments WHERE member_id = $1",
                    lambda x: [a["adjustment_id"] for a in x["adjustments"]]),
    "member_changes": ("SELECT occurred_at AS key FROM member_changes WHERE member_id = $1",
                       lambda x: [c["occurred_at"] for c in x["changes"]]),
    "enrollment_keys": ("SELECT created_at AS key FROM enrollment_keys WHERE member_id = $1",
                        lambda x: [k["created_at"] for k in x["enrollment_retries"]]),
    "privacy_requests": ("SELECT id AS key FROM privacy_requests WHERE member_id = $1",
                         lambda x: [r["request_id"] for r in x["privacy_requests"]]),
    "member_erasures": ("SELECT requested_at AS key FROM member_erasures WHERE member_id = $1",
                        lambda x: [x["erasure"]["requested_at"]] if x["erasure"] else []),
}


def same(value: Any) -> str:
    """A key as the database gives it and as the export writes it, written alike."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, str) and value[:4].isdigit() and "T" in value:
        return same(datetime.fromisoformat(value))
    return str(value)


def test_every_table_is_exported_or_is_the_programs_own() -> None:
    assert set(tables.metadata.tables) == set(COVERED) | PROGRAM_WIDE, (
        "a new table: export its member rows in rewards/export.py (and cover it here), or list it as the program's")
    for name, table in tables.metadata.tables.items():
        if "member_id" in table.c:
            assert name in COVERED, name


async def a_full_life(client: Any, keys: dict[str, str], db: Any) -> dict[str, Any]:
    """A member with a row in every table that can hold one about them."""
    body = enrollment()
    enrolled = await client.post("/v1/members", json=body,
                                 headers={**auth(keys["guest_services"]), "Idempotency-Key": unique("enroll")})
    assert enrolled.status_code == 201, enrolled.text
    member = enrolled.json()["member_id"]
    staff, till = auth(keys["guest_services"]), auth(keys["checkout"])
    first = purchase(member, 31_234, method="westique_credit_card", store_id="S012")
    bought = await client.post("/v1/purchases", json=first, headers=till)
    assert bought.status_code == 201, bought.text
    code = bought.json()["rewards_issued"][0]["code"]
    second = purchase(member, 5_000, tenders=[{"method": "reward", "amount_cents": 1000, "reward_code": code},
                                              {"method": "cash", "amount_cents": 4000}])
    assert (await client.post("/v1/purchases", json=second, headers=till)).status_code == 201
    returned = await client.post(f"/v1/purchases/{second['purchase_id']}/returns", headers=till, json={
        "return_id": unique("r"), "occurred_at": datetime.now(UTC).isoformat(),
        "lines": [{"sku": "SKU-1", "quantity": 1, "amount_cents": 4000}]})
    assert returned.status_code == 201, returned.text
    subscribed = await client.post("/v1/subscriptions", headers=staff, json={
        "channel": "email", "address": body["email"], "source": "online", "member_id": member})
    assert subscribed.status_code == 201, subscribed.text
    # the member's phone signed up at a register, without the member id, then texted STOP
    loose = await client.post("/v1/subscriptions", headers=staff, json={
        "channel": "sms", "address": body["phone"], "source": "store"})
    assert loose.status_code == 201, loose.text
    assert (await client.post("/v1/sms/inbound", json={"from": body["phone"], "body": "STOP"},
                              headers=till)).status_code == 200
    offered = await client.post("/v1/offers", headers=auth(keys["admin"]), json={
        "code": unique("OFFER").replace("-", "")[:40], "value_cents": 500, "channel": "email"})
    assert offered.status_code == 201, offered.text
    await signed_in(client, keys["guest_services"], member)  # a link used, and its session
    await create_key(db, [GUEST], member_id=member)
    adjusted = await client.post(f"/v1/members/{member}/adjustments", headers=staff, json={
        "adjustment_id": unique("adj"), "point_cents": 250, "reason": "goodwill", "note": "late parcel"})
    assert adjusted.status_code == 201, adjusted.text
    asked = await client.post("/v1/privacy-requests", headers=staff, json={
        "type": "access", "member_id": member, "channel": "online",
        "verification": {"method": "signed_in", "verified_at": datetime.now(UTC).isoformat()}})
    assert asked.status_code == 201, asked.text
    # an erasure asked for, with notice: the member is still active meanwhile
    scheduled = await client.delete(f"/v1/members/{member}/personal-data", headers=staff)
    assert scheduled.status_code == 202, scheduled.text
    return {"member": member, "body": body, "purchases": [first["purchase_id"], second["purchase_id"]]}


@pytest.fixture(scope="module")
async def two_lives(client: Any, keys: dict[str, str], db: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    return await a_full_life(client, keys, db), await a_full_life(client, keys, db)


async def test_the_export_holds_every_row_of_the_member_in_every_table_and_none_of_anothers(
    client: Any, keys: dict[str, str], db: Any, two_lives: Any
) -> None:
    mine, theirs = two_lives
    answer = await client.get(f"/v1/members/{mine['member']}/export", headers=auth(keys["guest_services"]))
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    exported = answer.json()
    for table, (query, listed) in COVERED.items():
        held = sorted(same(r["key"]) for r in await db.run(query, mine["member"]))
        others = {same(r["key"]) for r in await db.run(query, theirs["member"])}
        shown = sorted(same(k) for k in listed(exported))
        assert held, f"{table}: the member has no row here, so the comparison proves nothing"
        assert shown == held, f"{table}: exported {shown}, held {held}"
        if table not in ("sign_in_links", "guest_sessions", "api_keys", "member_changes", "enrollment_keys"):  # listed by time: may coincide
            assert not others & set(shown), f"{table}: another member's rows are exported"
    text = answer.text
    for value in (theirs["body"]["email"], theirs["body"]["phone"], *theirs["purchases"]):
        assert value not in text
    for value in (mine["body"]["email"], mine["body"]["phone"], mine["body"]["name"], mine["body"]["birth_date"]):
        assert value in text


async def test_the_export_spells_out_purchases_consents_rewards_and_the_disclosures(
    client: Any, keys: dict[str, str], db: Any, two_lives: Any
) -> None:
    mine, _ = two_lives
    exported = (await client.get(f"/v1/members/{mine['member']}/export", headers=auth(keys["guest_services"]))).json()
    assert exported["member"]["card_number"] and exported["member"]["state"] == "CA"
    jacket, paid_with_reward = exported["purchases"]
    assert jacket["store_id"] == "S012" and jacket["point_cents_earned"] == 62_468
    assert jacket["lines"] == [{"sku": "SKU-1", "category": "apparel", "quantity": 1, "amount_cents": 31_234}]
    assert [t["method"] for t in paid_with_reward["tenders"]] == ["reward", "cash"]
    [ret] = exported["returns"]
    assert ret["purchase_id"] == paid_with_reward["purchase_id"] and ret["lines"][0]["quantity"] == 1
    assert [w["status"] for w in exported["rewards"]] == ["redeemed", "issued"]
    assert exported["rewards"][0]["redeemed_in_purchase"] == paid_with_reward["purchase_id"]
    [consent] = exported["consents"]
    documents = {r["id"]: r for r in await db.run("SELECT id, kind, version, sha256 FROM program_documents")}
    for kind in ("terms", "notice"):
        text = consent[f"{kind}_text"]
        stored = documents[text["document_id"]]
        assert (stored["kind"], stored["version"], stored["sha256"]) == (kind, consent[f"{kind}_version"],
                                                                          text["sha256"])
    [sms] = [s for s in exported["subscriptions"] if s["channel"] == "sms"]
    assert [e["kind"] for e in sms["consent_events"]] == ["subscribed", "unsubscribed"]
    assert sms["consent_events"][1]["detail"] == "STOP"
    [email] = [s for s in exported["subscriptions"] if s["channel"] == "email"]
    assert email["offers_received"] and email["offers_received"][0]["value_cents"] == 500
    [row] = await db.run("SELECT version, body FROM program_disclosures ORDER BY version DESC LIMIT 1")
    assert exported["disclosures"]["version"] == row["version"]
    assert exported["disclosures"]["sources"] == row["body"]["sources"]
    assert exported["disclosures"]["purposes"] == row["body"]["purposes"]
    assert [c["name"] for c in exported["disclosures"]["categories"]] == [c["name"] for c in row["body"]["categories"]]
    assert {"sign_in_link.created", "member.enrolled", "purchase.posted"} <= {e["type"] for e in exported["events"]}
    # secrets and who-did-what stay out
    access = json.dumps(exported["access"])
    assert "hash" not in access and "url" not in access and "label" not in access and "actor" not in json.dumps(exported)


async def test_a_guest_exports_their_own_data_by_token_or_from_their_page_and_nobody_elses(
    client: Any, keys: dict[str, str], db: Any, two_lives: Any
) -> None:
    mine, theirs = two_lives
    token = auth(await create_key(db, [GUEST], member_id=mine["member"]))
    by_token = await client.get(f"/v1/members/{mine['member']}/export", headers=token)
    assert by_token.status_code == 200, by_token.text
    problem(await client.get(f"/v1/members/{theirs['member']}/export", headers=token), 403, "forbidden")
    browser = await signed_in(client, keys["guest_services"], mine["member"])
    page = await client.get("/me/data", headers=browser)
    assert 'href="/me/data/export.json" download' in page.text
    download = await client.get("/me/data/export.json", headers=browser)
    assert download.status_code == 200 and download.headers["content-type"].startswith("application/json")
    assert 'filename="westique-rewards-data.json"' in download.headers["content-disposition"]
    from_page, from_api = download.json(), by_token.json()
    for exported in (from_page, from_api):
        del exported["exported_at"]
        for session in exported["access"]["sessions"]:
            del session["last_seen_at"]  # using the page keeps its session alive
    # the page's own sign-in shows in its copy
    assert len(from_page["access"]["sessions"]) == len(from_api["access"]["sessions"]) + 1
    assert len(from_page["access"]["sign_in_links"]) == len(from_api["access"]["sign_in_links"]) + 1
    for exported in (from_page, from_api):
        del exported["access"], exported["events"]
    assert from_page == from_api


async def test_an_erased_members_export_keeps_the_anonymous_record_and_no_personal_data(
    client: Any, keys: dict[str, str], db: Any
) -> None:
    life = await a_full_life(client, keys, db)
    member = life["member"]
    erased = await client.delete(f"/v1/members/{member}/personal-data?immediate=true&reason=consumer_confirmed", headers=auth(keys["guest_services"]))
    assert erased.status_code == 200, erased.text
    exported = (await client.get(f"/v1/members/{member}/export", headers=auth(keys["guest_services"]))).json()
    profile = exported["member"]
    assert [profile[k] for k in ("name", "email", "phone", "birth_date", "external_id")] == [None] * 5
    assert profile["status"] == "cancelled" and profile["erased_at"]
    assert len(exported["purchases"]) == 2 and exported["ledger"]
    assert {s["address"] for s in exported["subscriptions"]} == {None}
    for value in (life["body"]["email"], life["body"]["phone"], life["body"]["name"]):
        assert value not in json.dumps(exported)
    assert all(k["revoked_at"] for k in exported["access"]["guest_tokens"])
    assert all(s["ended_at"] for s in exported["access"]["sessions"])
    problem(await client.get("/v1/members/999999999/export", headers=auth(keys["guest_services"])), 404, "not_found")

