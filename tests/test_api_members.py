"""Members through HTTP: enrollment and its age gate, profile, balance, activity, cancel, erase, auth.

The helpers at the top (`problem`, `row_counts`, `age_today`) are shared by the other
API test modules.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rewards.auth import create_key
from tests.conftest import auth, enrollment, purchase, unique

PROBLEM_TABLES = ("members", "consents", "purchases", "purchase_returns", "rewards", "ledger", "program_rules")


def problem(response: Any, status: int, code: str) -> dict[str, Any]:
    """Assert an RFC 9457 problem with our stable code; return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body = response.json()
    assert body["code"] == code, body
    assert body["status"] == status
    return body


async def row_counts(db: Any) -> dict[str, int]:
    """Rows in every table a posting or an enrollment writes: equal before and after a refusal."""
    query = "SELECT " + ", ".join(f"(SELECT count(*) FROM {t}) AS {t}" for t in PROBLEM_TABLES)
    return dict((await db.run(query))[0])


def age_today(years: int) -> str:
    """A birth date making the guest exactly `years` old today (their birthday was 100 days ago)."""
    today = datetime.now(UTC).date()
    try:
        birthday = today.replace(year=today.year - years)
    except ValueError:  # 29 February
        birthday = today.replace(year=today.year - years, day=28)
    return (birthday - timedelta(days=100)).isoformat()


async def earn(client: Any, keys: dict[str, str], member_id: int, cents: int, **overrides: Any) -> dict[str, Any]:
    response = await client.post("/v1/purchases", json=purchase(member_id, cents, **overrides),
                                 headers=auth(keys["checkout"]))
    assert response.status_code == 201, response.text
    return response.json()


async def ledger_of(db: Any, member_id: int) -> list[dict[str, Any]]:
    return [dict(r) for r in await db.run("SELECT * FROM ledger WHERE member_id = $1 ORDER BY id", member_id)]


# --- enrollment ----------------------------------------------------------------------------


async def test_enroll_records_member_and_consent(client, keys, db):
    terms, notice = unique("T"), unique("N")  # published first: enrollment names published versions
    for kind, version in (("terms", terms), ("notice", notice)):
        published = await client.put("/v1/program/documents", headers=auth(keys["admin"]),
                                     json={"kind": kind, "version": version, "text": f"the {kind} {version}"})
        assert published.status_code == 201, published.text
    body = enrollment(channel="store", terms_version=terms, notice_version=notice, external_id=unique("ext"))
    response = await client.post("/v1/members", json=body, headers=auth(keys["guest_services"]))
    assert response.status_code == 201, response.text
    member_id = response.json()["member_id"]
    assert response.json()["status"] == "active"

    profile = await client.get(f"/v1/members/{member_id}", headers=auth(keys["guest_services"]))
    assert profile.status_code == 200
    shown = profile.json()
    assert (shown["name"], shown["email"], shown["phone"], shown["birth_date"], shown["state"]) == (
        body["name"], body["email"], body["phone"], body["birth_date"], "CA")
    assert shown["external_id"] == body["external_id"]
    assert shown["consent"]["terms_version"] == terms
    assert shown["consent"]["notice_version"] == notice
    assert shown["consent"]["channel"] == "store"
    assert shown["consent"]["withdrawn_at"] is None
    consents = await db.run(
        """SELECT c.terms_version, c.notice_version, c.channel, c.accepted_at, t.text AS terms, n.text AS notice
           FROM consents c JOIN program_documents t ON t.id = c.terms_document_id
           JOIN program_documents n ON n.id = c.notice_document_id WHERE c.member_id = $1""", member_id)
    assert [(c["terms_version"], c["notice_version"], c["channel"]) for c in consents] == [(terms, notice, "store")]
    assert consents[0]["accepted_at"] is not None
    # the consent points at the very texts accepted
    assert (consents[0]["terms"], consents[0]["notice"]) == (f"the terms {terms}", f"the notice {notice}")


async def test_unknown_member_is_not_found(client, keys):
    for path in ("", "/balance", "/activity"):
        problem(await client.get(f"/v1/members/{2**40}{path}", headers=auth(keys["guest_services"])), 404,
                "not_found")
    problem(await client.post(f"/v1/members/{2**40}/cancel", headers=auth(keys["guest_services"])), 404, "not_found")
    problem(await client.delete(f"/v1/members/{2**40}/personal-data", headers=auth(keys["guest_services"])), 404,
            "not_found")


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"birth_date": "15/06/1988"}, "birth_date"),
        ({"state": "ZZ"}, "state"),
        ({"channel": "fax"}, "channel"),
        ({"phone": "call me"}, "phone"),
        ({"name": ""}, "name"),
        ({"shoe_size": 42}, None),  # unknown fields are refused
    ],
)
async def test_bad_enrollment_is_a_validation_error_naming_the_field_and_writes_nothing(
    client, keys, db, overrides, field
):
    before = await row_counts(db)
    response = await client.post("/v1/members", json=enrollment(**overrides), headers=auth(keys["guest_services"]))
    body = problem(response, 422, "validation_error")
    if field:
        assert body["field"] == field, body
    else:
        assert "shoe_size" in body["detail"]
    assert await row_counts(db) == before


async def test_enrollment_missing_a_field_names_it(client, keys, db):
    body = enrollment()
    del body["email"]
    before = await row_counts(db)
    answer = problem(await client.post("/v1/members", json=body, headers=auth(keys["guest_services"])), 422,
                     "validation_error")
    assert "email" in (answer.get("field") or "") + answer["detail"]
    assert await row_counts(db) == before


# --- the age gate ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("age", "state", "guardian", "code"),
    [
        (12, "CA", True, "age_restricted"),       # under 13: refused everywhere, even with a guardian
        (12, "ME", True, "age_restricted"),
        (17, "ME", True, "age_restricted"),       # under 18 in Maine
        (13, "ME", True, "age_restricted"),
        (15, "CA", False, "guardian_consent_required"),
        (17, "NY", False, "guardian_consent_required"),
        (13, "TX", False, "guardian_consent_required"),
    ],
)
async def test_age_gate_refuses_and_stores_nothing(client, keys, db, age, state, guardian, code):
    body = enrollment(birth_date=age_today(age), state=state, guardian_consent=guardian)
    before = await row_counts(db)
    problem(await client.post("/v1/members", json=body, headers=auth(keys["guest_services"])), 422, code)
    assert await row_counts(db) == before
    assert not await db.run("SELECT 1 FROM members WHERE email = $1 OR phone = $2", body["email"], body["phone"])


@pytest.mark.parametrize(
    ("age", "state", "guardian"),
    [(13, "CA", True), (17, "NY", True), (18, "ME", False), (18, "CA", False), (70, "ME", False)],
)
async def test_age_gate_admits(client, keys, db, age, state, guardian):
    body = enrollment(birth_date=age_today(age), state=state, guardian_consent=guardian)
    response = await client.post("/v1/members", json=body, headers=auth(keys["guest_services"]))
    assert response.status_code == 201, response.text
    stored = await db.run("SELECT guardian_consent FROM consents WHERE member_id = $1", response.json()["member_id"])
    assert [r["guardian_consent"] for r in stored] == [guardian]


async def test_birth_date_in_the_future_is_a_validation_error(client, keys, db):
    before = await row_counts(db)
    tomorrow = (datetime.now(UTC).date() + timedelta(days=2)).isoformat()
    body = problem(await client.post("/v1/members", json=enrollment(birth_date=tomorrow),
                                     headers=auth(keys["guest_services"])), 422, "validation_error")
    assert body["field"] == "birth_date"
    assert await row_counts(db) == before


# --- unique among active members ---------------------------------------------------------------


async def test_email_and_phone_are_unique_among_active_members(client, keys, db):
    first = enrollment()
    assert (await client.post("/v1/members", json=first, headers=auth(keys["guest_services"]))).status_code == 201
    before = await row_counts(db)
    same_email = enrollment(email=first["email"].upper())
    same_phone = enrollment(phone=first["phone"])
    for body in (same_email, same_phone):
        problem(await client.post("/v1/members", json=body, headers=auth(keys["guest_services"])), 409,
                "duplicate_member")
    assert await row_counts(db) == before


async def test_a_cancelled_members_email_and_phone_can_enroll_again(client, keys):
    first = enrollment()
    created = await client.post("/v1/members", json=first, headers=auth(keys["guest_services"]))
    old_id = created.json()["member_id"]
    assert (await client.post(f"/v1/members/{old_id}/cancel", headers=auth(keys["guest_services"]))).status_code == 200
    again = await client.post("/v1/members", json=enrollment(email=first["email"], phone=first["phone"]),
                              headers=auth(keys["guest_services"]))
    assert again.status_code == 201, again.text
    assert again.json()["member_id"] != old_id


# --- balance -----------------------------------------------------------------------------------


async def test_balance_shows_whole_points_exact_point_cents_and_open_rewards(client, keys, member):
    await earn(client, keys, member, 31234)  # 312.34 points: one reward, 12.34 points left
    balance = await client.get(f"/v1/members/{member}/balance", headers=auth(keys["checkout"]))
    assert balance.status_code == 200
    shown = balance.json()
    assert shown["member_id"] == member
    assert shown["status"] == "active"
    assert (shown["points"], shown["point_cents"]) == (12, 1234)
    assert shown["points_to_next_reward"] == 288  # 287.66 to go, a fraction still counts
    assert len(shown["rewards"]) == 1
    reward = shown["rewards"][0]
    assert (reward["value_cents"], reward["status"]) == (1000, "issued")
    issued = datetime.fromisoformat(reward["issued_at"])
    assert datetime.fromisoformat(reward["expires_at"]) - issued == timedelta(days=90)


# --- cancellation --------------------------------------------------------------------------------


async def test_cancel_forfeits_points_and_voids_open_rewards_in_the_ledger(client, keys, db, member):
    posted = await earn(client, keys, member, 35000)
    (reward,) = posted["rewards_issued"]
    cancelled = await client.post(f"/v1/members/{member}/cancel", headers=auth(keys["guest_services"]))
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["point_cents_forfeited"] == 5000
    assert cancelled.json()["rewards_voided"] == [reward["code"]]

    entries = await ledger_of(db, member)
    forfeit = [e for e in entries if e["kind"] == "forfeit"]
    voided = [e for e in entries if e["kind"] == "reward_voided"]
    assert [e["point_cents"] for e in forfeit] == [-5000]
    assert len(voided) == 1
    assert (await db.run("SELECT code FROM rewards WHERE id = $1", voided[0]["reward_id"]))[0]["code"] == reward["code"]
    assert sum(e["point_cents"] for e in entries) == 0

    balance = (await client.get(f"/v1/members/{member}/balance", headers=auth(keys["checkout"]))).json()
    assert (balance["status"], balance["points"], balance["point_cents"]) == ("cancelled", 0, 0)
    assert [r["status"] for r in balance["rewards"]] == ["voided"]
    profile = (await client.get(f"/v1/members/{member}", headers=auth(keys["guest_services"]))).json()
    assert profile["status"] == "cancelled"
    assert profile["consent"]["withdrawn_at"] is not None
    reward_status = await client.get(f"/v1/rewards/{reward['code']}", headers=auth(keys["checkout"]))
    assert reward_status.json()["status"] == "voided"


async def test_cancel_is_idempotent(client, keys, db, member):
    await earn(client, keys, member, 35000)
    first = await client.post(f"/v1/members/{member}/cancel", headers=auth(keys["guest_services"]))
    entries = await ledger_of(db, member)
    second = await client.post(f"/v1/members/{member}/cancel", headers=auth(keys["guest_services"]))
    assert second.status_code == 200
    assert second.json() == first.json()
    assert await ledger_of(db, member) == entries


async def test_cancelled_member_purchases_refused_but_returns_accepted(client, keys, db, member):
    bought = purchase(member, 5000)
    assert (await client.post("/v1/purchases", json=bought, headers=auth(keys["checkout"]))).status_code == 201
    await client.post(f"/v1/members/{member}/cancel", headers=auth(keys["guest_services"]))

    before = await row_counts(db)
    problem(await client.post("/v1/purchases", json=purchase(member, 2000), headers=auth(keys["checkout"])), 409,
            "member_not_active")
    assert await row_counts(db) == before

    returned = await client.post(
        f"/v1/purchases/{bought['purchase_id']}/returns",
        json={"return_id": unique("r"), "occurred_at": datetime.now(UTC).isoformat(),
              "lines": [{"sku": "SKU-1", "quantity": 1, "amount_cents": 5000}]},
        headers=auth(keys["checkout"]),
    )
    assert returned.status_code == 201, returned.text
    # the points were forfeited at cancellation; the return still takes back what the purchase earned
    assert returned.json()["point_cents_reversed"] == 5000
    assert returned.json()["balance"] == {"points": -50, "point_cents": -5000}


# --- erasure -----------------------------------------------------------------------------------


async def test_erase_nulls_personal_data_and_keeps_the_ledger(client, keys, db, member):
    await earn(client, keys, member, 12345)
    kept = await ledger_of(db, member)
    erased = await client.delete(f"/v1/members/{member}/personal-data?immediate=true&reason=consumer_confirmed", headers=auth(keys["guest_services"]))
    assert erased.status_code == 200, erased.text
    assert erased.json()["status"] == "cancelled"
    assert erased.json()["erased_at"]

    row = (await db.run("SELECT * FROM members WHERE id = $1", member))[0]
    assert (row["name"], row["email"], row["phone"], row["birth_date"]) == (None, None, None, None)
    assert row["status"] == "cancelled"
    assert row["state"] == "CA"  # not personal enough to identify, kept for the reports
    after = await ledger_of(db, member)
    assert after[: len(kept)] == kept
    assert [e["kind"] for e in after[len(kept):]] == ["forfeit"]
    assert sum(e["point_cents"] for e in after) == row["point_cents"] == 0

    profile = (await client.get(f"/v1/members/{member}", headers=auth(keys["guest_services"]))).json()
    assert (profile["name"], profile["email"], profile["phone"], profile["birth_date"]) == (None, None, None, None)
    activity = (await client.get(f"/v1/members/{member}/activity", headers=auth(keys["guest_services"]))).json()
    assert [e["kind"] for e in activity["entries"]] == ["forfeit", "earn"]

    again = await client.delete(f"/v1/members/{member}/personal-data?immediate=true&reason=consumer_confirmed", headers=auth(keys["guest_services"]))
    assert again.status_code == 200
    assert again.json() == erased.json()


# --- activity ----------------------------------------------------------------------------------


async def test_activity_is_newest_first_and_names_its_causes(client, keys, member):
    first = await earn(client, keys, member, 20000, method="westique_credit_card")  # 400 points: a reward
    (reward,) = first["rewards_issued"]
    second_body = purchase(member, 3000, tenders=[
        {"method": "reward", "amount_cents": 1000, "reward_code": reward["code"]},
        {"method": "cash", "amount_cents": 2000},
    ])
    second = await client.post("/v1/purchases", json=second_body, headers=auth(keys["checkout"]))
    assert second.status_code == 201, second.text
    return_id = unique("r")
    returned = await client.post(
        f"/v1/purchases/{second_body['purchase_id']}/returns",
        json={"return_id": return_id, "occurred_at": datetime.now(UTC).isoformat(),
              "lines": [{"sku": "SKU-1", "quantity": 1, "amount_cents": 3000}]},
        headers=auth(keys["checkout"]),
    )
    assert returned.status_code == 201, returned.text

    page = (await client.get(f"/v1/members/{member}/activity", headers=auth(keys["guest_services"]))).json()
    assert page["next_cursor"] is None
    seen = [(e["kind"], e["purchase_id"], e["return_id"], e["reward_code"], e["point_cents"]) for e in page["entries"]]
    p1, p2 = first["purchase_id"], second_body["purchase_id"]
    assert seen == [
        ("return", p2, return_id, None, -2000),
        ("reward_redeemed", p2, None, reward["code"], 0),
        ("earn", p2, None, None, 2000),
        ("reward_issued", p1, None, reward["code"], -30000),
        ("card_bonus", p1, None, None, 20000),
        ("earn", p1, None, None, 20000),
    ]
    ids = [e["entry_id"] for e in page["entries"]]
    assert ids == sorted(ids, reverse=True)
    assert all(e["rules_version"] for e in page["entries"])


async def test_activity_cursor_walks_every_entry_exactly_once(client, keys, db, member):
    for cents in (1000, 2000, 3000, 4000, 5000, 6000, 7000):
        await earn(client, keys, member, cents, method="westique_credit_card")
    expected = [e["id"] for e in reversed(await ledger_of(db, member))]
    assert len(expected) == 15  # 7 earn, 7 card_bonus, 1 reward issued (560 points in all)

    walked: list[int] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 4} | ({"cursor": cursor} if cursor else {})
        response = await client.get(f"/v1/members/{member}/activity", params=params,
                                    headers=auth(keys["guest_services"]))
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["entries"]) <= 4
        walked += [e["entry_id"] for e in page["entries"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert pages < 10
    assert walked == expected
    assert pages == 4


async def test_activity_bad_cursor_or_limit_is_a_validation_error(client, keys, member):
    for params, field in (({"cursor": "bm90LWEtY3Vyc29y"}, "cursor"), ({"limit": 0}, "limit"),
                          ({"limit": 1000}, "limit")):
        body = problem(await client.get(f"/v1/members/{member}/activity", params=params,
                                        headers=auth(keys["guest_services"])), 422, "validation_error")
        assert body["field"] == field, body


# --- auth basics (the full matrix lives elsewhere) ------------------------------------------------


async def test_no_token_or_a_bad_token_is_unauthorized(client, member):
    for headers in ({}, auth("wr_not-a-real-token"), {"Authorization": "Basic dXNlcjpwYXNz"}):
        problem(await client.get(f"/v1/members/{member}/balance", headers=headers), 401, "unauthorized")
        problem(await client.post("/v1/purchases", json=purchase(member), headers=headers), 401, "unauthorized")


async def test_token_outside_its_scope_is_forbidden_and_writes_nothing(client, keys, db, member):
    before = await row_counts(db)
    problem(await client.post("/v1/members", json=enrollment(), headers=auth(keys["checkout"])), 403, "forbidden")
    problem(await client.post("/v1/purchases", json=purchase(member), headers=auth(keys["guest_services"])), 403,
            "forbidden")
    problem(await client.get(f"/v1/members/{member}/activity", headers=auth(keys["checkout"])), 403, "forbidden")
    problem(await client.get(f"/v1/members/{member}/balance", headers=auth(keys["compliance"])), 403, "forbidden")
    problem(await client.put("/v1/program/rules", json={}, headers=auth(keys["checkout"])), 403, "forbidden")
    assert await row_counts(db) == before


async def test_guest_token_reads_its_own_member_only(client, keys, db, make_member):
    mine, theirs = await make_member(), await make_member()
    await earn(client, keys, mine, 4321)
    token = await create_key(db, ["guest"], member_id=mine)
    for path in ("", "/balance", "/activity"):
        own = await client.get(f"/v1/members/{mine}{path}", headers=auth(token))
        assert own.status_code == 200, own.text
        assert own.json()["member_id"] == mine
        problem(await client.get(f"/v1/members/{theirs}{path}", headers=auth(token)), 403, "forbidden")
    assert (await client.get(f"/v1/members/{mine}/balance", headers=auth(token))).json()["point_cents"] == 4321
    before = await row_counts(db)
    problem(await client.post("/v1/purchases", json=purchase(mine), headers=auth(token)), 403, "forbidden")
    problem(await client.post(f"/v1/members/{theirs}/cancel", headers=auth(token)), 403, "forbidden")
    problem(await client.delete(f"/v1/members/{mine}/personal-data", headers=auth(token)), 403, "forbidden")
    assert await row_counts(db) == before
