"""Purchases through HTTP: posting, every refusal (writing nothing), the quote, reward status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import auth, purchase
from tests.test_api_members import earn, problem, row_counts


async def test_purchase_answers_its_earning_and_balance(client, keys, db, member):
    body = purchase(member, 4550, method="debit_card")
    response = await client.post("/v1/purchases", json=body, headers=auth(keys["checkout"]))
    assert response.status_code == 201, response.text
    assert response.json() == {
        "purchase_id": body["purchase_id"], "member_id": member, "qualifying_cents": 4550,
        "point_cents_earned": 4550, "bonus_point_cents": 0, "rewards_issued": [], "rewards_redeemed": [],
        "balance": {"points": 45, "point_cents": 4550},
    }
    stored = await db.run("SELECT member_id, point_cents, rules_version FROM purchases WHERE ext_id = $1",
                          body["purchase_id"])
    assert [(r["member_id"], r["point_cents"]) for r in stored] == [(member, 4550)]
    assert stored[0]["rules_version"] >= 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"member_id": 0}, "member_id"),
        ({"occurred_at": "2026-01-01T10:00:00"}, "occurred_at"),  # no zone
        ({"occurred_at": "yesterday"}, "occurred_at"),
        ({"purchase_id": ""}, "purchase_id"),
        ({"purchase_id": "has spaces"}, "purchase_id"),
        ({"channel": "phone"}, "channel"),
        ({"lines": []}, "lines"),
        ({"tenders": []}, "tenders"),
        ({"lines": [{"sku": "A", "category": "apparel", "quantity": 1, "amount_cents": -5}]}, "lines[0].amount_cents"),
        ({"lines": [{"sku": "A", "category": "apparel", "quantity": 0, "amount_cents": 5}]}, "lines[0].quantity"),
        ({"lines": [{"sku": "A", "category": "apparel", "quantity": 1, "amount_cents": 1.5}]}, "lines[0].amount_cents"),
        ({"tenders": [{"method": "bitcoin", "amount_cents": 1000}]}, "tenders[0].method"),
        ({"tenders": [{"method": "cash", "amount_cents": 1000, "reward_code": "WR1"}]}, "tenders[0].reward_code"),
        ({"tenders": [{"method": "reward", "amount_cents": 1000}]}, "tenders[0].reward_code"),
        ({"tenders": [{"method": "cash", "amount_cents": 1000},
                      {"method": "reward", "amount_cents": 0, "reward_code": "WR1"}]}, "tenders[1].amount_cents"),
    ],
)
async def test_bad_purchase_is_a_validation_error_naming_the_field_and_writes_nothing(
    client, keys, db, member, change, field
):
    before = await row_counts(db)
    body = purchase(member, 1000) | change
    answer = problem(await client.post("/v1/purchases", json=body, headers=auth(keys["checkout"])), 422,
                     "validation_error")
    assert answer["field"] == field, answer
    assert await row_counts(db) == before


async def test_purchase_in_the_future_is_refused(client, keys, db, member):
    before = await row_counts(db)
    later = datetime.now(UTC) + timedelta(hours=2)
    answer = problem(await client.post("/v1/purchases", json=purchase(member, 1000, occurred_at=later),
                                       headers=auth(keys["checkout"])), 422, "validation_error")
    assert answer["field"] == "occurred_at"
    assert await row_counts(db) == before


async def test_malformed_json_is_refused(client, keys, db):
    before = await row_counts(db)
    response = await client.post("/v1/purchases", content=b'{"purchase_id": ', headers=auth(keys["checkout"]) | {
        "content-type": "application/json"})
    problem(response, 400, "malformed_request")
    assert await row_counts(db) == before


async def test_tenders_that_do_not_add_up_are_refused(client, keys, db, member):
    before = await row_counts(db)
    body = purchase(member, 1000, tenders=[{"method": "cash", "amount_cents": 999}])
    problem(await client.post("/v1/purchases", json=body, headers=auth(keys["checkout"])), 422,
            "tenders_do_not_balance")
    body = purchase(member, 1000, tenders=[{"method": "cash", "amount_cents": 600},
                                           {"method": "westique_credit_card", "amount_cents": 600}])
    problem(await client.post("/v1/purchases", json=body, headers=auth(keys["checkout"])), 422,
            "tenders_do_not_balance")
    assert await row_counts(db) == before


async def test_other_currencies_are_refused(client, keys, db, member):
    before = await row_counts(db)
    for currency in ("EUR", "usd", "CAD"):
        problem(await client.post("/v1/purchases", json=purchase(member, 1000, currency=currency),
                                  headers=auth(keys["checkout"])), 422, "unsupported_currency")
    assert await row_counts(db) == before


async def test_purchase_for_an_unknown_member_is_not_found(client, keys, db):
    before = await row_counts(db)
    problem(await client.post("/v1/purchases", json=purchase(2**40, 1000), headers=auth(keys["checkout"])), 404,
            "not_found")
    assert await row_counts(db) == before


async def test_zero_purchase_of_excluded_goods_earns_nothing_and_is_recorded(client, keys, member):
    answer = await earn(client, keys, member, 2500, category="gift_card")
    assert (answer["qualifying_cents"], answer["point_cents_earned"]) == (0, 0)
    assert answer["balance"] == {"points": 0, "point_cents": 0}


# --- quote --------------------------------------------------------------------------------------


async def test_quote_writes_nothing_and_equals_what_the_purchase_earns(client, keys, db, member):
    body = purchase(member, 12345, lines=[
        {"sku": "A", "category": "apparel", "quantity": 2, "amount_cents": 10000},
        {"sku": "T", "category": "tax", "quantity": 1, "amount_cents": 2345},
    ], tenders=[{"method": "westique_credit_card", "amount_cents": 7000}, {"method": "cash", "amount_cents": 5345}])
    before = await row_counts(db)
    quoted = await client.post("/v1/purchases/quote", json=body, headers=auth(keys["checkout"]))
    assert quoted.status_code == 200, quoted.text
    assert await row_counts(db) == before
    quote = quoted.json()
    assert (quote["qualifying_cents"], quote["card_cents"], quote["point_cents_earned"], quote["bonus_point_cents"]) \
        == (10000, 7000, 17000, 7000)
    assert quote["rules_version"] >= 1

    posted = await client.post("/v1/purchases", json=body, headers=auth(keys["checkout"]))
    assert posted.status_code == 201
    assert posted.json()["qualifying_cents"] == quote["qualifying_cents"]
    assert posted.json()["point_cents_earned"] == quote["point_cents_earned"]
    assert posted.json()["bonus_point_cents"] == quote["bonus_point_cents"]

    # quoting it again: the purchase_id is used now, which a quote checks like a posting; still nothing written
    again = await row_counts(db)
    problem(await client.post("/v1/purchases/quote", json=body, headers=auth(keys["checkout"])), 409,
            "idempotency_conflict")
    assert await row_counts(db) == again


async def test_quote_refuses_what_a_purchase_refuses(client, keys, db, member):
    before = await row_counts(db)
    problem(await client.post("/v1/purchases/quote", json=purchase(member, 1000, currency="EUR"),
                              headers=auth(keys["checkout"])), 422, "unsupported_currency")
    problem(await client.post("/v1/purchases/quote", json=purchase(member, 1000, tenders=[
        {"method": "cash", "amount_cents": 1}]), headers=auth(keys["checkout"])), 422, "tenders_do_not_balance")
    problem(await client.post("/v1/purchases/quote", json=purchase(member, 1000) | {"member_id": -1},
                              headers=auth(keys["checkout"])), 422, "validation_error")
    problem(await client.post("/v1/purchases/quote", json=purchase(member, 1000), headers=auth(keys["guest_services"])),
            403, "forbidden")
    assert await row_counts(db) == before
