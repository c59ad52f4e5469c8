"""Returns through HTTP: what they take back, what they refuse (writing nothing)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import auth, purchase, unique
from tests.test_api_members import ledger_of, problem, row_counts


def a_return(*lines: tuple[str, int, int], return_id: str | None = None) -> dict[str, Any]:
    """A return body of (sku, quantity, amount_cents) lines."""
    return {
        "return_id": return_id or unique("r"), "occurred_at": datetime.now(UTC).isoformat(),
        "lines": [{"sku": sku, "quantity": q, "amount_cents": a} for sku, q, a in lines],
    }


async def post_return(client: Any, keys: dict[str, str], purchase_id: str, body: dict[str, Any]) -> Any:
    return await client.post(f"/v1/purchases/{purchase_id}/returns", json=body, headers=auth(keys["checkout"]))


async def bought(client: Any, keys: dict[str, str], member_id: int, lines: list[tuple[str, str, int, int]],
                 tenders: list[tuple[str, int]]) -> dict[str, Any]:
    """Post a purchase of (sku, category, quantity, amount_cents) lines paid with (method, amount_cents)."""
    body = purchase(
        member_id,
        lines=[{"sku": s, "category": c, "quantity": q, "amount_cents": a} for s, c, q, a in lines],
        tenders=[{"method": m, "amount_cents": a} for m, a in tenders],
    )
    response = await client.post("/v1/purchases", json=body, headers=auth(keys["checkout"]))
    assert response.status_code == 201, response.text
    return response.json()


async def test_return_answers_what_it_took_back_and_the_balance(client, keys, db, member):
    sale = await bought(client, keys, member, [("A", "apparel", 2, 8000)], [("cash", 8000)])
    return_id = unique("r")
    response = await post_return(client, keys, sale["purchase_id"], a_return(("A", 1, 4000), return_id=return_id))
    assert response.status_code == 201, response.text
    assert response.json() == {"return_id": return_id, "purchase_id": sale["purchase_id"],
                               "point_cents_reversed": 4000, "balance": {"points": 40, "point_cents": 4000},
                               "rewards_voided": [], "rewards_reinstated": []}
    (entry,) = [e for e in await ledger_of(db, member) if e["kind"] == "return"]
    assert entry["point_cents"] == -4000
    stored = await db.run("SELECT id FROM purchase_returns WHERE ext_id = $1", return_id)
    assert entry["return_id"] == stored[0]["id"]


async def test_return_of_an_unknown_purchase_is_not_found(client, keys, db):
    before = await row_counts(db)
    problem(await post_return(client, keys, "no-such-purchase", a_return(("A", 1, 100))), 404, "not_found")
    assert await row_counts(db) == before


@pytest.mark.parametrize(
    "lines",
    [
        [("A", 3, 3000)],             # more than bought
        [("A", 1, 5000)],             # more money than the line cost
        [("Z", 1, 100)],              # never bought
        [("A", 1, 1000), ("A", 2, 2000)],  # the same sku twice in one return, together too many
    ],
)
async def test_return_exceeding_the_purchase_is_refused_and_writes_nothing(client, keys, db, member, lines):
    sale = await bought(client, keys, member, [("A", "apparel", 2, 4000), ("B", "apparel", 1, 1000)],
                        [("cash", 5000)])
    before = await row_counts(db)
    problem(await post_return(client, keys, sale["purchase_id"], a_return(*lines)), 422, "return_exceeds_purchase")
    assert await row_counts(db) == before


async def test_returned_quantity_never_exceeds_bought_across_returns(client, keys, db, member):
    sale = await bought(client, keys, member, [("A", "apparel", 3, 9000)], [("cash", 9000)])
    pid = sale["purchase_id"]
    assert (await post_return(client, keys, pid, a_return(("A", 2, 6000)))).status_code == 201
    before = await row_counts(db)
    problem(await post_return(client, keys, pid, a_return(("A", 2, 6000))), 422, "return_exceeds_purchase")
    assert await row_counts(db) == before
    last = await post_return(client, keys, pid, a_return(("A", 1, 3000)))
    assert last.status_code == 201
    problem(await post_return(client, keys, pid, a_return(("A", 1, 1))), 422, "return_exceeds_purchase")
    assert last.json()["balance"]["point_cents"] == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"return_id": "r1", "occurred_at": "2026-01-01T00:00:00Z", "lines": []}, "lines"),
        ({"return_id": "r1", "occurred_at": "2026-01-01T00:00:00Z",
          "lines": [{"sku": "A", "quantity": -1, "amount_cents": 1}]}, "lines[0].quantity"),
        ({"return_id": "r1", "occurred_at": "2026-01-01T00:00:00",
          "lines": [{"sku": "A", "quantity": 1, "amount_cents": 1}]}, "occurred_at"),
        ({"occurred_at": "2026-01-01T00:00:00Z", "lines": [{"sku": "A", "quantity": 1, "amount_cents": 1}]},
         "return_id"),
    ],
)
async def test_bad_return_is_a_validation_error_and_writes_nothing(client, keys, db, member, body, field):
    sale = await bought(client, keys, member, [("A", "apparel", 1, 1000)], [("cash", 1000)])
    before = await row_counts(db)
    answer = problem(await post_return(client, keys, sale["purchase_id"], body), 422, "validation_error")
    assert field in (answer.get("field") or "") + answer["detail"], answer
    assert await row_counts(db) == before


async def test_return_needs_the_checkout_scope(client, keys, db, member):
    sale = await bought(client, keys, member, [("A", "apparel", 1, 1000)], [("cash", 1000)])
    before = await row_counts(db)
    response = await client.post(f"/v1/purchases/{sale['purchase_id']}/returns", json=a_return(("A", 1, 1000)),
                                 headers=auth(keys["guest_services"]))
    problem(response, 403, "forbidden")
    problem(await client.post(f"/v1/purchases/{sale['purchase_id']}/returns", json=a_return(("A", 1, 1000))), 401,
            "unauthorized")
    assert await row_counts(db) == before


async def test_return_of_excluded_goods_takes_back_nothing(client, keys, db, member):
    sale = await bought(client, keys, member, [("A", "apparel", 1, 5000), ("G", "gift_card", 1, 2500)],
                        [("cash", 7500)])
    assert sale["point_cents_earned"] == 5000
    response = await post_return(client, keys, sale["purchase_id"], a_return(("G", 1, 2500)))
    assert response.status_code == 201
    assert response.json()["point_cents_reversed"] == 0
    assert response.json()["balance"]["point_cents"] == 5000
    assert [e["kind"] for e in await ledger_of(db, member)] == ["earn"]


async def test_returns_in_parts_take_back_exactly_the_earning(client, keys, member):
    # thirds of odd amounts and a card share: the parts' rounding must still add up exactly
    sale = await bought(client, keys, member, [("A", "apparel", 3, 10001), ("B", "home", 1, 3333)],
                        [("westique_credit_card", 7777), ("cash", 5557)])
    earned = sale["point_cents_earned"]
    assert earned == 13334 + 7777
    taken = 0
    for lines in ([("A", 1, 3333)], [("B", 1, 3333)], [("A", 1, 3334)], [("A", 1, 3334)]):
        response = await post_return(client, keys, sale["purchase_id"], a_return(*lines))
        assert response.status_code == 201, response.text
        taken += response.json()["point_cents_reversed"]
    assert taken == earned
    assert response.json()["balance"]["point_cents"] == 0


@pytest.mark.parametrize(
    ("when", "detail"),
    [(lambda bought_at: bought_at - timedelta(days=1), "before its purchase"),
     (lambda bought_at: datetime.now(UTC) + timedelta(hours=2), "in the future")],
)
async def test_return_dated_before_its_purchase_or_in_the_future_is_refused(client, keys, db, member, when, detail):
    sale = await client.post("/v1/purchases", json=purchase(member, 1000), headers=auth(keys["checkout"]))
    bought_at = datetime.fromisoformat((await db.run(
        "SELECT occurred_at FROM purchases WHERE ext_id = $1", sale.json()["purchase_id"]))[0]["occurred_at"].isoformat())
    before = await row_counts(db)
    body = a_return(("SKU-1", 1, 1000)) | {"occurred_at": when(bought_at).isoformat()}
    answer = problem(await post_return(client, keys, sale.json()["purchase_id"], body), 422, "validation_error")
    assert answer["field"] == "occurred_at" and detail in answer["detail"]
    assert await row_counts(db) == before
