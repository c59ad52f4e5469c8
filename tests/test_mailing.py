"""The mailing list and Guest Connect (texts), through the HTTP API, against real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from rewards.contacts import phone_or_none
from rewards.mailing import normalize_address
from rewards.verify import CHECKS
from tests.conftest import auth, purchase, unique

PROBLEM = "application/problem+json"


def email() -> str:
    return f"guest.{uuid.uuid4().hex[:10]}@example.com"


def phone() -> str:
    return f"+1415{uuid.uuid4().int % 10**7:07d}"


async def subscribe(client: Any, keys: dict[str, str], channel: str, address: str, source: str = "store",
                    **extra: Any) -> Any:
    body = {"channel": channel, "address": address, "source": source, **extra}
    return await client.post("/v1/subscriptions", json=body, headers=auth(keys["guest_services"]))


async def text(client: Any, keys: dict[str, str], sender: str, body: str) -> Any:
    return await client.post("/v1/sms/inbound", json={"from": sender, "body": body}, headers=auth(keys["checkout"]))


async def unsubscribe(client: Any, keys: dict[str, str], channel: str, address: str) -> Any:
    return await client.post("/v1/subscriptions/unsubscribe", json={"channel": channel, "address": address},
                             headers=auth(keys["guest_services"]))


async def subscription(db: Any, subscription_id: int) -> Any:
    rows = await db.run("SELECT * FROM subscriptions WHERE id = $1", subscription_id)
    return rows[0]


async def events(db: Any, subscription_id: int) -> list[tuple[str, str, str | None]]:
    rows = await db.run(
        "SELECT kind, source, detail FROM subscription_events WHERE subscription_id = $1 ORDER BY id", subscription_id
    )
    return [(r["kind"], r["source"], r["detail"]) for r in rows]


async def table_counts(db: Any) -> tuple[int, ...]:
    rows = await db.run(
        """SELECT (SELECT count(*) FROM subscriptions) AS s, (SELECT count(*) FROM subscription_events) AS e,
                  (SELECT count(*) FROM offers) AS o, (SELECT count(*) FROM offer_deliveries) AS d,
                  (SELECT count(*) FROM purchases) AS p"""
    )
    return tuple(rows[0])


def assert_problem(response: Any, status: int, code: str, field: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["code"] == code
    if field is not None:
        assert response.json()["field"] == field


# --- subscribing -----------------------------------------------------------------------------


async def test_subscribe_email_records_the_consent_event(client, keys, db):
    address = email()
    response = await subscribe(client, keys, "email", address, "online")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body == {"subscription_id": body["subscription_id"], "status": "active"}
    row = await subscription(db, body["subscription_id"])
    assert (row["channel"], row["address"], row["status"], row["source"]) == ("email", address, "active", "online")
    assert await events(db, body["subscription_id"]) == [("subscribed", "online", None)]
    at = await db.run("SELECT occurred_at FROM subscription_events WHERE subscription_id = $1", body["subscription_id"])
    assert at[0]["occurred_at"] == row["subscribed_at"]


async def test_subscribe_sms_stores_the_number_in_e164(client, keys, db):
    digits = f"{uuid.uuid4().int % 10**7:07d}"
    response = await subscribe(client, keys, "sms", f"(415) {digits[:3]}-{digits[3:]}")
    assert response.status_code == 201, response.text
    row = await subscription(db, response.json()["subscription_id"])
    assert row["address"] == f"+1415{digits}"


async def test_subscribing_an_active_address_again_answers_200_with_the_same_id(client, keys, db):
    address = email()
    first = await subscribe(client, keys, "email", address)
    again = await subscribe(client, keys, "email", address.upper(), "online")
    assert first.status_code == 201 and again.status_code == 200, again.text
    assert again.json() == first.json()
    assert await events(db, first.json()["subscription_id"]) == [("subscribed", "store", None)]


async def test_subscription_linked_to_a_member(client, keys, db, member):
    response = await subscribe(client, keys, "email", email(), member_id=member)
    assert response.status_code == 201, response.text
    assert (await subscription(db, response.json()["subscription_id"]))["member_id"] == member


async def test_later_opt_in_renews_an_unsubscribed_address(client, keys, db):
    address = email()
    first = await subscribe(client, keys, "email", address, "online")
    sid = first.json()["subscription_id"]
    assert (await unsubscribe(client, keys, "email", address)).status_code == 200
    assert (await subscription(db, sid))["status"] == "unsubscribed"
    renewed = await subscribe(client, keys, "email", address, "store")
    assert renewed.status_code == 201, renewed.text
    assert renewed.json() == {"subscription_id": sid, "status": "active"}
    row = await subscription(db, sid)
    assert (row["status"], row["source"], row["unsubscribed_at"]) == ("active", "store", None)
    assert await events(db, sid) == [
        ("subscribed", "online", None), ("unsubscribed", "link", None), ("renewed", "store", None)
    ]


@pytest.mark.parametrize(
    ("channel", "address"),
    [
        ("email", "not-an-email"),
        ("email", "two@@example.com"),
        ("email", "space in@example.com"),
        ("email", "nodot@example"),
        ("sms", "555-12"),
        ("sms", "+0123456789"),
        ("sms", "call me maybe"),
        ("sms", "guest@example.com"),
        ("sms", "+1234567890123456"),
    ],
)
async def test_subscribe_refuses_a_malformed_address_and_writes_nothing(client, keys, db, channel, address):
    before = await table_counts(db)
    response = await subscribe(client, keys, channel, address)
    assert_problem(response, 422, "validation_error", "address")
    assert await table_counts(db) == before


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"channel": "fax"}, "channel"),
        ({"source": "phone"}, "source"),
        ({"member_id": 0}, "member_id"),
        ({"address": ""}, "address"),
        ({"extra": 1}, None),
    ],
)
async def test_subscribe_refuses_a_bad_body_and_writes_nothing(client, keys, db, change, field):
    before = await table_counts(db)
    body = {"channel": "email", "address": email(), "source": "store", **change}
    response = await client.post("/v1/subscriptions", json=body, headers=auth(keys["guest_services"]))
    assert_problem(response, 422, "validation_error", field)
    assert await table_counts(db) == before


async def test_subscribe_refuses_malformed_json(client, keys, db):
    before = await table_counts(db)
    response = await client.post("/v1/subscriptions", content=b"{not json",
                                 headers={**auth(keys["guest_services"]), "content-type": "application/json"})
    assert_problem(response, 400, "malformed_request")
    assert await table_counts(db) == before


async def test_subscribe_for_a_missing_member_is_404_and_writes_nothing(client, keys, db):
    before = await table_counts(db)
    response = await subscribe(client, keys, "email", email(), member_id=2**61)
    assert_problem(response, 404, "not_found")
    assert await table_counts(db) == before


async def test_subscribe_for_an_erased_member_is_refused(client, keys, db, member):
    erased = await client.delete(f"/v1/members/{member}/personal-data?immediate=true&reason=consumer_confirmed", headers=auth(keys["guest_services"]))
    assert erased.status_code == 200, erased.text
    before = await table_counts(db)
    response = await subscribe(client, keys, "email", email(), member_id=member)
    assert_problem(response, 409, "member_not_active")
    assert await table_counts(db) == before


async def test_racing_opt_ins_of_one_address_make_one_subscription(client, keys, db):
    address = email()
    answers = await asyncio.gather(*(subscribe(client, keys, "email", address) for _ in range(8)))
    assert sorted(a.status_code for a in answers) == [200] * 7 + [201]
    ids = {a.json()["subscription_id"] for a in answers}
    assert len(ids) == 1
    assert await events(db, ids.pop()) == [("subscribed", "store", None)]


# --- unsubscribing by link -------------------------------------------------------------------


async def test_unsubscribe_by_link(client, keys, db):
    address = email()
    sid = (await subscribe(client, keys, "email", address)).json()["subscription_id"]
    response = await unsubscribe(client, keys, "email", f"  {address.upper()} ")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "unsubscribed"}
    row = await subscription(db, sid)
    assert row["status"] == "unsubscribed" and row["unsubscribed_at"] is not None
    assert await events(db, sid) == [("subscribed", "store", None), ("unsubscribed", "link", None)]


async def test_unsubscribe_twice_records_one_opt_out(client, keys, db):
    address = phone()
    sid = (await subscribe(client, keys, "sms", address)).json()["subscription_id"]
    assert (await unsubscribe(client, keys, "sms", address)).status_code == 200
    again = await unsubscribe(client, keys, "sms", address)
    assert again.status_code == 200 and again.json() == {"status": "unsubscribed"}
    assert [kind for kind, _, _ in await events(db, sid)] == ["subscribed", "unsubscribed"]


async def test_unsubscribe_of_an_unknown_address_answers_the_same_and_stores_nothing(client, keys, db):
    before = await table_counts(db)
    address = email()
    response = await unsubscribe(client, keys, "email", address)
    assert response.status_code == 200 and response.json() == {"status": "unsubscribed"}
    assert await table_counts(db) == before
    assert not await db.run("SELECT 1 FROM subscriptions WHERE address = $1", address)


async def test_unsubscribe_touches_only_its_channel(client, keys, db):
    address = email()
    sid = (await subscribe(client, keys, "email", address)).json()["subscription_id"]
    response = await unsubscribe(client, keys, "sms", "+14155550100")
    assert response.status_code == 200
    assert (await subscription(db, sid))["status"] == "active"


@pytest.mark.parametrize(
    "body",
    [{"channel": "email", "address": "nope"}, {"channel": "sms", "address": "12"}, {"channel": "post", "address": "x"},
     {"address": "a@example.com"}],
)
async def test_unsubscribe_refuses_bad_input(client, keys, db, body):
    before = await table_counts(db)
    response = await client.post("/v1/subscriptions/unsubscribe", json=body, headers=auth(keys["guest_services"]))
    assert_problem(response, 422, "validation_error")
    assert await table_counts(db) == before


# --- texts -----------------------------------------------------------------------------------


# (what the guest texts, the keyword recognised): any case, spacing, punctuation, full-width
# letters, a stop word followed by more words
STOP_VARIANTS = [
    ("STOP", "STOP"), ("stop", "STOP"), ("Stop", "STOP"), ("  STOP  ", "STOP"), ("\tstop\n", "STOP"),
    ("STOPALL", "STOPALL"), ("stopall", "STOPALL"), ("UNSUBSCRIBE", "UNSUBSCRIBE"), ("Unsubscribe ", "UNSUBSCRIBE"),
    ("CANCEL", "CANCEL"), ("cancel", "CANCEL"), ("END", "END"), (" end", "END"), ("QUIT", "QUIT"), ("quit", "QUIT"),
    ("Stop.", "STOP"), ("stop.", "STOP"), ("STOP please", "STOP"), ("stop all", "STOP"), ("STOP!!!", "STOP"),
    ("\uff33\uff34\uff2f\uff30", "STOP"), ("\u00a1Stop!", "STOP"), ('"stop"', "STOP"), ("S\u200bTOP", "STOP"),
    ("stop, please stop texting me", "STOP"), ("REVOKE", "REVOKE"), ("opt out", "OPTOUT"), ("Opt-Out", "OPTOUT"),
    ("OPTOUT", "OPTOUT"), ("\U0001f6d1 stop", "STOP"),
]


@pytest.mark.parametrize(("body", "keyword"), STOP_VARIANTS)
async def test_every_stop_keyword_unsubscribes_the_sender(client, keys, db, body, keyword):
    number = phone()
    sid = (await subscribe(client, keys, "sms", number)).json()["subscription_id"]
    response = await text(client, keys, number, body)
    assert response.status_code == 200, response.text
    assert response.json()["action"] == "unsubscribed"
    assert response.json()["keyword"] == keyword
    assert "unsubscribed" in response.json()["reply"]
    assert (await subscription(db, sid))["status"] == "unsubscribed"
    assert await events(db, sid) == [("subscribed", "store", None), ("unsubscribed", "sms", keyword)]


async def test_stop_from_a_number_written_differently_finds_the_subscription(client, keys, db):
    digits = f"{uuid.uuid4().int % 10**7:07d}"
    sid = (await subscribe(client, keys, "sms", f"+1415{digits}")).json()["subscription_id"]
    response = await text(client, keys, f"1-415-{digits[:3]}-{digits[3:]}", "STOP")
    assert response.json()["action"] == "unsubscribed"
    assert (await subscription(db, sid))["status"] == "unsubscribed"


async def test_stop_leaves_the_email_subscription_alone(client, keys, db):
    number = phone()
    sms = (await subscribe(client, keys, "sms", number)).json()["subscription_id"]
    other = (await subscribe(client, keys, "sms", phone())).json()["subscription_id"]
    mail = (await subscribe(client, keys, "email", email())).json()["subscription_id"]
    await text(client, keys, number, "STOP")
    assert (await subscription(db, sms))["status"] == "unsubscribed"
    assert (await subscription(db, other))["status"] == "active"
    assert (await subscription(db, mail))["status"] == "active"


async def test_stop_again_or_from_an_unknown_number_changes_nothing(client, keys, db):
    number = phone()
    sid = (await subscribe(client, keys, "sms", number)).json()["subscription_id"]
    await text(client, keys, number, "STOP")
    again = await text(client, keys, number, "quit")
    assert again.status_code == 200
    assert again.json()["action"] == "unchanged" and again.json()["keyword"] == "QUIT"
    assert again.json()["reply"]  # carriers expect the confirmation anyway
    assert len(await events(db, sid)) == 2
    before = await table_counts(db)
    stranger = await text(client, keys, phone(), "STOP")
    assert stranger.status_code == 200 and stranger.json()["action"] == "unchanged"
    assert await table_counts(db) == before


@pytest.mark.parametrize("body", ["S T O P", "", "   ", "...", "hello", "YES", "STOPP", "please stop", "don't stop",
                                  "nonstop", "ST\u0000OP", "STOP"[::-1], "opt in"])
async def test_other_texts_are_ignored_with_a_clear_answer(client, keys, db, body):
    number = phone()
    sid = (await subscribe(client, keys, "sms", number)).json()["subscription_id"]
    before = await table_counts(db)
    response = await text(client, keys, number, body)
    assert response.status_code == 200, response.text
    assert response.json()["action"] == "ignored"
    assert response.json()["keyword"] is None and response.json()["reply"] is None
    assert "nothing changed" in response.json()["detail"]
    assert (await subscription(db, sid))["status"] == "active"
    assert await table_counts(db) == before


@pytest.mark.parametrize(("body", "keyword"), [("HELP", "HELP"), ("help me", "HELP"), ("Info?", "INFO"),
                                               ("\uff28\uff25\uff2c\uff30", "HELP")])
async def test_help_is_answered_with_the_program_how_to_stop_and_guest_services(client, keys, db, body, keyword):
    number = phone()
    sid = (await subscribe(client, keys, "sms", number)).json()["subscription_id"]
    before = await table_counts(db)
    response = await text(client, keys, number, body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["action"], answer["keyword"]) == ("help", keyword)
    for needed in ("Westique Guest Connect", "Reply STOP", "1-800-555-0199", "guestservices@westique.example"):
        assert needed in answer["reply"], needed
    assert (await subscription(db, sid))["status"] == "active"
    assert await table_counts(db) == before


@pytest.mark.parametrize("body", ["START", "start", " Unstop ", "Start please"])
async def test_start_from_a_register_never_resubscribes(client, keys, db, body):
    number = phone()
    sid = (await subscribe(client, keys, "sms", number, "online")).json()["subscription_id"]
    await text(client, keys, number, "STOP")
    before = await table_counts(db)
    response = await text(client, keys, number, body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["action"], answer["keyword"], answer["reply"]) == ("refused", body.split()[0].upper(), None)
    assert "/v1/sms/inbound/twilio" in answer["detail"] and "opt-in" in answer["detail"]
    assert (await subscription(db, sid))["status"] == "unsubscribed"
    assert await table_counts(db) == before


async def test_start_from_a_register_does_not_subscribe_an_unknown_number(client, keys, db):
    before = await table_counts(db)
    response = await text(client, keys, phone(), "START")
    assert response.status_code == 200 and response.json()["action"] == "refused"
    assert await table_counts(db) == before


async def test_a_register_opt_in_renews_after_stop(client, keys, db):
    number = phone()
    sid = (await subscribe(client, keys, "sms", number, "online")).json()["subscription_id"]
    await text(client, keys, number, "END")
    renewed = await subscribe(client, keys, "sms", number, "store")
    assert renewed.status_code == 201 and renewed.json()["subscription_id"] == sid
    assert [kind for kind, _, _ in await events(db, sid)] == ["subscribed", "unsubscribed", "renewed"]
    assert (await text(client, keys, number, "STOP")).json()["action"] == "unsubscribed"


@pytest.mark.parametrize(
    "body",
    [{"from": "not a phone", "body": "STOP"}, {"from": "+14155550100"}, {"body": "STOP"},
     {"from": "+14155550100", "body": "x" * 1601}, {"from": "+14155550100", "body": "STOP", "to": "12345"}],
)
async def test_sms_inbound_refuses_bad_input(client, keys, db, body):
    before = await table_counts(db)
    response = await client.post("/v1/sms/inbound", json=body, headers=auth(keys["checkout"]))
    assert_problem(response, 422, "validation_error")
    assert await table_counts(db) == before


# --- offers ----------------------------------------------------------------------------------


async def test_offer_is_sent_to_every_active_subscription_of_its_channel(client, keys, db):
    active = [(await subscribe(client, keys, "sms", phone())).json()["subscription_id"] for _ in range(3)]
    stopped_number = phone()
    stopped = (await subscribe(client, keys, "sms", stopped_number)).json()["subscription_id"]
    await text(client, keys, stopped_number, "STOP")
    mail = (await subscribe(client, keys, "email", email())).json()["subscription_id"]
    expected = (await db.run("SELECT count(*) AS n FROM subscriptions WHERE channel = 'sms' AND status = 'active'"))[0]["n"]

    code = unique("SMS5")
    response = await client.post("/v1/offers", json={"code": code, "value_cents": 500, "channel": "sms"},
                                 headers=auth(keys["admin"]))
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["code"], body["value_cents"], body["channel"], body["deliveries"]) == (code, 500, "sms", expected)
    sent = {r["subscription_id"] for r in await db.run(
        "SELECT subscription_id FROM offer_deliveries WHERE offer_id = $1", body["offer_id"])}
    assert len(sent) == expected
    assert set(active) <= sent
    assert stopped not in sent and mail not in sent


async def test_the_same_offer_again_replays_and_sends_nothing_more(client, keys, db):
    code = unique("EM10")
    offer = {"code": code, "value_cents": 1000, "channel": "email"}
    first = await client.post("/v1/offers", json=offer, headers=auth(keys["admin"]))
    await subscribe(client, keys, "email", email())
    again = await client.post("/v1/offers", json=offer, headers=auth(keys["admin"]))
    assert first.status_code == 201 and again.status_code == 200, again.text
    assert again.json() == first.json()
    conflict = await client.post("/v1/offers", json={**offer, "value_cents": 2000}, headers=auth(keys["admin"]))
    assert_problem(conflict, 409, "idempotency_conflict")
    rows = await db.run("SELECT value_cents FROM offers WHERE code = $1", code)
    assert [r["value_cents"] for r in rows] == [1000]


@pytest.mark.parametrize(
    "body",
    [{"code": "X", "value_cents": 0, "channel": "email"}, {"code": "X", "value_cents": -5, "channel": "email"},
     {"code": "has space", "value_cents": 100, "channel": "email"}, {"code": "X", "value_cents": 100, "channel": "fax"},
     {"code": "X", "value_cents": 100}, {"code": "X", "value_cents": 1.5, "channel": "sms"}],
)
async def test_offer_refuses_bad_input(client, keys, db, body):
    before = await table_counts(db)
    response = await client.post("/v1/offers", json=body, headers=auth(keys["admin"]))
    assert_problem(response, 422, "validation_error")
    assert await table_counts(db) == before


# --- offers on purchases ---------------------------------------------------------------------


async def make_offer(client: Any, keys: dict[str, str], value_cents: int = 500) -> str:
    code = unique("OFF")
    made = await client.post("/v1/offers", json={"code": code, "value_cents": value_cents, "channel": "email"},
                             headers=auth(keys["admin"]))
    assert made.status_code == 201, made.text
    return code


async def posted_rows(db: Any, member_id: int) -> tuple[int, ...]:
    rows = await db.run(
        """SELECT (SELECT count(*) FROM purchases WHERE member_id = $1) AS p,
                  (SELECT count(*) FROM ledger WHERE member_id = $1) AS l,
                  (SELECT point_cents FROM members WHERE id = $1) AS b""",
        member_id,
    )
    return tuple(rows[0])


async def test_a_purchase_records_the_discounts_of_offers_sent(client, keys, db, member):
    code = await make_offer(client, keys, 500)
    body = purchase(member, 4500, offers=[{"code": code, "discount_cents": 500}])
    posted = await client.post("/v1/purchases", json=body, headers=auth(keys["checkout"]))
    assert posted.status_code == 201, posted.text
    assert posted.json()["qualifying_cents"] == 4500
    stored = await db.run("SELECT body FROM purchases WHERE ext_id = $1", body["purchase_id"])
    assert stored[0]["body"]["offers"] == [{"code": code, "discount_cents": 500}]
    replay = await client.post("/v1/purchases", json=body, headers=auth(keys["checkout"]))
    assert replay.status_code == 200 and replay.json() == posted.json()


async def test_a_purchase_naming_an_unknown_offer_is_refused_and_writes_nothing(client, keys, db, member):
    known = await make_offer(client, keys)
    before = await posted_rows(db, member)
    body = purchase(member, 3000, offers=[{"code": known, "discount_cents": 100},
                                          {"code": unique("NEVER"), "discount_cents": 100}])
    response = await client.post("/v1/purchases", json=body, headers=auth(keys["checkout"]))
    assert_problem(response, 422, "unknown_offer", "offers[1].code")
    assert await posted_rows(db, member) == before
    # the same purchase without the unknown offer then posts
    fixed = {**body, "offers": body["offers"][:1]}
    assert (await client.post("/v1/purchases", json=fixed, headers=auth(keys["checkout"]))).status_code == 201


async def test_a_discount_above_the_offers_value_is_refused_and_writes_nothing(client, keys, db, member):
    code = await make_offer(client, keys, 500)
    before = await posted_rows(db, member)
    body = purchase(member, 3000, offers=[{"code": code, "discount_cents": 501}])
    response = await client.post("/v1/purchases", json=body, headers=auth(keys["checkout"]))
    assert_problem(response, 422, "validation_error", "offers[0].discount_cents")
    assert await posted_rows(db, member) == before


# --- scopes ----------------------------------------------------------------------------------

ENDPOINTS = [
    ("/v1/subscriptions", {"channel": "email", "address": "scope@example.com", "source": "store"}, "guest_services"),
    ("/v1/subscriptions/unsubscribe", {"channel": "email", "address": "scope@example.com"}, "guest_services"),
    ("/v1/sms/inbound", {"from": "+14155550199", "body": "STOP"}, "checkout"),
    ("/v1/offers", {"code": "SCOPE-TEST", "value_cents": 100, "channel": "email"}, "admin"),
]


@pytest.mark.parametrize(("path", "body", "scope"), ENDPOINTS)
async def test_each_endpoint_needs_its_scope(client, keys, db, path, body, scope):
    before = await table_counts(db)
    missing = await client.post(path, json=body)
    assert_problem(missing, 401, "unauthorized")
    bogus = await client.post(path, json=body, headers=auth("wr_not-a-real-token"))
    assert_problem(bogus, 401, "unauthorized")
    for other in ("checkout", "guest_services", "compliance", "admin"):
        if other != scope:
            assert_problem(await client.post(path, json=body, headers=auth(keys[other])), 403, "forbidden")
    assert await table_counts(db) == before
    allowed = await client.post(path, json=body, headers=auth(keys[scope]))
    assert allowed.status_code in (200, 201), allowed.text


async def test_a_guest_token_reaches_no_mailing_endpoint(client, keys, db, member):
    from rewards.auth import create_key

    token = await create_key(db, ["guest"], member_id=member)
    for path, body, _ in ENDPOINTS:
        assert_problem(await client.post(path, json=body, headers=auth(token)), 403, "forbidden")


# --- erasure ---------------------------------------------------------------------------------


async def test_erasure_clears_the_members_subscription_addresses(client, keys, db, member):
    linked = (await subscribe(client, keys, "email", email(), member_id=member)).json()["subscription_id"]
    texts = (await subscribe(client, keys, "sms", phone(), member_id=member)).json()["subscription_id"]
    bystander = (await subscribe(client, keys, "email", email())).json()["subscription_id"]
    response = await client.delete(f"/v1/members/{member}/personal-data?immediate=true&reason=consumer_confirmed", headers=auth(keys["guest_services"]))
    assert response.status_code == 200, response.text
    for sid in (linked, texts):
        row = await subscription(db, sid)
        assert row["address"] is None and row["erased_at"] is not None and row["status"] == "unsubscribed"
        assert (await events(db, sid))[-1] == ("unsubscribed", "erasure", None)
    assert (await subscription(db, bystander))["address"] is not None


async def test_erasure_also_clears_unlinked_subscriptions_of_the_members_email_and_phone(client, keys, db, make_member):
    digits = f"{uuid.uuid4().int % 10**7:07d}"
    address = email()
    member_id = await make_member(email=address.upper(), phone=f"1415{digits}")
    mail = (await subscribe(client, keys, "email", address, "online")).json()["subscription_id"]
    texts = (await subscribe(client, keys, "sms", f"+1415{digits}")).json()["subscription_id"]
    await text(client, keys, f"+1415{digits}", "STOP")
    response = await client.delete(f"/v1/members/{member_id}/personal-data?immediate=true&reason=consumer_confirmed", headers=auth(keys["guest_services"]))
    assert response.status_code == 200, response.text
    for sid in (mail, texts):
        row = await subscription(db, sid)
        assert row["address"] is None and row["member_id"] == member_id and row["status"] == "unsubscribed"
    # one opt-out each: the texts had already been stopped
    assert [kind for kind, _, _ in await events(db, mail)] == ["subscribed", "unsubscribed"]
    assert [kind for kind, _, _ in await events(db, texts)] == ["subscribed", "unsubscribed"]
    # the erased address can subscribe afresh, as a new subscription
    again = await subscribe(client, keys, "email", address)
    assert again.status_code == 201 and again.json()["subscription_id"] != mail


async def test_erased_subscriptions_receive_no_offers(client, keys, db, member):
    sid = (await subscribe(client, keys, "email", email(), member_id=member)).json()["subscription_id"]
    await client.delete(f"/v1/members/{member}/personal-data?immediate=true&reason=consumer_confirmed", headers=auth(keys["guest_services"]))
    made = await client.post("/v1/offers", json={"code": unique("AFTER"), "value_cents": 300, "channel": "email"},
                             headers=auth(keys["admin"]))
    assert made.status_code == 201
    assert not await db.run("SELECT 1 FROM offer_deliveries WHERE offer_id = $1 AND subscription_id = $2",
                            made.json()["offer_id"], sid)


# --- phone numbers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "stored"),
    [("+14155550100", "+14155550100"), ("4155550100", "+14155550100"), ("1 (415) 555-0100", "+14155550100"),
     ("415.555.0100", "+14155550100"), ("+44 20 7946 0958", "+442079460958"), ("0155550100", None),
     ("+1", None), ("14155550100999", None), ("+0044 20 7946 0958", "+442079460958"), ("", None)],
)
def test_phone_numbers_are_normalized_to_e164(given, stored):
    assert phone_or_none(given) == stored
    if stored is not None:
        assert normalize_address("sms", given) == stored



# --- verify ----------------------------------------------------------------------------------

MAILING_CHECKS = [(what, query) for what, query in CHECKS if "subscription" in what]


class Broken(Exception):
    """Raised to roll back a deliberately broken state."""


async def test_verify_finds_every_subscription_explained_by_its_consent_record(client, keys, db):
    number = phone()
    await subscribe(client, keys, "sms", number)
    await text(client, keys, number, "STOP")
    await subscribe(client, keys, "sms", number, "online")
    assert len(MAILING_CHECKS) == 2
    async with db.connection() as conn:
        for what, query in MAILING_CHECKS:
            assert await query.fetch(conn) == [], what


@pytest.mark.parametrize(
    "breakage",
    [
        "INSERT INTO subscriptions (channel, address, status, source) VALUES ('email', 'silent@example.com', 'active', 'store')",
        """UPDATE subscriptions SET status = 'unsubscribed', unsubscribed_at = now()
           WHERE id = (SELECT max(id) FROM subscriptions WHERE status = 'active')""",
        """UPDATE members SET name = NULL, email = NULL, phone = NULL, birth_date = NULL, external_id = NULL,
                              email_normalized = NULL, phone_normalized = NULL,
                              status = 'cancelled', cancelled_at = now(), erased_at = now()
           WHERE id = (SELECT max(member_id) FROM subscriptions WHERE address IS NOT NULL)""",
    ],
)
async def test_verify_reports_a_subscription_without_its_consent_record(client, keys, db, member, breakage):
    await subscribe(client, keys, "email", email(), member_id=member)
    async with db.connection() as conn:
        with pytest.raises(Broken):
            async with conn.transaction():
                await conn.execute(breakage)
                found = [what for what, query in MAILING_CHECKS if await query.fetch(conn)]
                assert len(found) == 1, found
                raise Broken
