"""Program rules, rewards and the operations endpoints through HTTP.

A published rules version applies to every posting from its effective_from on, and this
session's other tests post too. So a test that needs other rules publishes them for one
instant only (`rules_for_an_instant`): the defaults come back a microsecond later, and only
the test's own postings occur at that instant.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rewards.db import Database
from tests.conftest import auth, post_purchase, purchase, purchase_in
from tests.test_api_members import earn, ledger_of, problem, row_counts

DEFAULT_RULES = {
    "points_per_dollar": 1, "card_bonus_points_per_dollar": 1, "reward_threshold_points": 300,
    "reward_value_cents": 1000, "reward_validity_days": 90, "excluded_categories": ["gift_card", "tax", "shipping"],
    "bonus_tenders": ["westique_credit_card"], "rounding": "carry",
}


async def rules_for_an_instant(client: Any, keys: dict[str, str], **changes: Any) -> tuple[datetime, int]:
    """Publish `changes` in force at one instant (a second from now); return it and the version."""
    instant = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    published = await client.put("/v1/program/rules", json=DEFAULT_RULES | changes | {
        "effective_from": instant.isoformat()}, headers=auth(keys["admin"]))
    assert published.status_code == 201, published.text
    restored = await client.put("/v1/program/rules", json=DEFAULT_RULES | {
        "effective_from": (instant + timedelta(microseconds=1)).isoformat()}, headers=auth(keys["admin"]))
    assert restored.status_code == 201, restored.text
    return instant, published.json()["version"]


# --- program rules -------------------------------------------------------------------------------


async def test_get_rules_shows_the_current_version_as_one_object(client, keys):
    response = await client.get("/v1/program/rules", headers=auth(keys["admin"]))
    assert response.status_code == 200, response.text
    shown = response.json()
    assert shown["version"] >= 1
    assert datetime.fromisoformat(shown["effective_from"]) <= datetime.now(UTC)
    assert {k: shown[k] for k in DEFAULT_RULES} == DEFAULT_RULES
    problem(await client.get("/v1/program/rules", headers=auth(keys["checkout"])), 403, "forbidden")
    problem(await client.get("/v1/program/rules"), 401, "unauthorized")


async def test_put_rules_publishes_a_new_version(client, keys, db):
    # the newest version stored (the one in force may be older: other tests publish for an instant to come)
    before = (await db.run("SELECT max(version) AS v FROM program_rules"))[0]["v"]
    instant, version = await rules_for_an_instant(client, keys, reward_threshold_points=500)
    assert version == before + 1
    stored = await db.run("SELECT effective_from, body FROM program_rules WHERE version = $1", version)
    assert stored[0]["effective_from"] == instant
    assert stored[0]["body"]["reward_threshold_points"] == 500
    current = (await client.get("/v1/program/rules", headers=auth(keys["admin"]))).json()
    assert current["version"] != version  # the defaults, before or after the instant
    assert current["reward_threshold_points"] == 300


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"rounding": "round_half_up"}, "rounding"),
        ({"points_per_dollar": -1}, "points_per_dollar"),
        ({"reward_threshold_points": 0}, "reward_threshold_points"),
        ({"bonus_tenders": ["bitcoin"]}, "bonus_tenders[0]"),
        ({"excluded_categories": ["Gift Card"]}, "excluded_categories[0]"),
        ({"effective_from": "2030-01-01T00:00:00"}, "effective_from"),
        ({"reward_validity_days": 0}, "reward_validity_days"),
    ],
)
async def test_bad_rules_are_a_validation_error_and_publish_nothing(client, keys, db, body, field):
    before = await row_counts(db)
    answer = problem(await client.put("/v1/program/rules", json=body, headers=auth(keys["admin"])), 422,
                     "validation_error")
    assert answer["field"] == field, answer
    assert await row_counts(db) == before


async def test_unknown_rule_is_refused(client, keys, db):
    before = await row_counts(db)
    answer = problem(await client.put("/v1/program/rules", json={"points_per_euro": 2}, headers=auth(keys["admin"])),
                     422, "validation_error")
    assert "points_per_euro" in answer["detail"]
    assert await row_counts(db) == before


async def test_new_rules_apply_to_new_postings_only_and_returns_use_the_purchase_version(client, keys, db, member):
    old = await earn(client, keys, member, 10000, method="westique_credit_card")
    assert old["point_cents_earned"] == 20000
    old_entries = await ledger_of(db, member)
    instant, version = await rules_for_an_instant(client, keys, points_per_dollar=2, card_bonus_points_per_dollar=3)

    body = purchase(member, 10000, method="westique_credit_card", occurred_at=instant)
    quoted = (await client.post("/v1/purchases/quote", json=body, headers=auth(keys["checkout"]))).json()
    assert (quoted["rules_version"], quoted["point_cents_earned"]) == (version, 50000)
    new = await client.post("/v1/purchases", json=body, headers=auth(keys["checkout"]))
    assert new.status_code == 201, new.text
    assert (new.json()["point_cents_earned"], new.json()["bonus_point_cents"]) == (50000, 30000)

    # the earlier posting is untouched
    assert (await ledger_of(db, member))[: len(old_entries)] == old_entries
    stored = await db.run("SELECT ext_id, rules_version FROM purchases WHERE member_id = $1 ORDER BY id", member)
    assert [r["rules_version"] for r in stored][1] == version
    assert stored[0]["rules_version"] != version

    # a return of the old purchase at the new rules' instant takes back the old earning, not the new one
    returned = await client.post(f"/v1/purchases/{old['purchase_id']}/returns", json={
        "return_id": f"{old['purchase_id']}-r", "occurred_at": instant.isoformat(),
        "lines": [{"sku": "SKU-1", "quantity": 1, "amount_cents": 10000}]}, headers=auth(keys["checkout"]))
    assert returned.status_code == 201, returned.text
    assert returned.json()["point_cents_reversed"] == 20000
    # and a return of the new purchase, later (the defaults again), takes back the new earning
    returned = await client.post(f"/v1/purchases/{body['purchase_id']}/returns", json={
        "return_id": f"{body['purchase_id']}-r", "occurred_at": (instant + timedelta(seconds=1)).isoformat(),
        "lines": [{"sku": "SKU-1", "quantity": 1, "amount_cents": 10000}]}, headers=auth(keys["checkout"]))
    assert returned.json()["point_cents_reversed"] == 50000
    entries = await ledger_of(db, member)
    assert sum(e["point_cents"] for e in entries) == returned.json()["balance"]["point_cents"]
    assert [e["rules_version"] for e in entries if e["kind"] == "return"] == [stored[0]["rules_version"], version]


async def test_rules_version_in_force_is_the_one_at_the_purchase_time(client, keys, member):
    instant, version = await rules_for_an_instant(client, keys, excluded_categories=["apparel"])
    at_instant = await client.post("/v1/purchases/quote", json=purchase(member, 5000, occurred_at=instant),
                                   headers=auth(keys["checkout"]))
    assert (at_instant.json()["rules_version"], at_instant.json()["point_cents_earned"]) == (version, 0)
    just_after = await client.post("/v1/purchases/quote", json=purchase(
        member, 5000, occurred_at=instant + timedelta(microseconds=1)), headers=auth(keys["checkout"]))
    assert (just_after.json()["rules_version"], just_after.json()["point_cents_earned"]) == (version + 1, 5000)


# --- operations ----------------------------------------------------------------------------------


async def test_health_ready_and_metrics_need_no_token(client):
    health = await client.get("/health")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    ready = await client.get("/ready")
    assert (ready.status_code, ready.json()) == (200, {"ready": True})
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert 'rewards_http_responses_total{method="GET",status="200"}' in metrics.text
    assert "rewards_http_request_seconds_bucket" in metrics.text


async def test_metrics_count_problems_by_code(client):
    await client.get("/v1/members/1/balance")
    metrics = (await client.get("/metrics")).text
    assert 'rewards_errors_total{code="unauthorized"}' in metrics


async def test_ready_is_false_while_the_database_is_unreachable(client, app):
    real = app.state.db
    app.state.db = Database("postgresql://postgres@127.0.0.1:1/nowhere", pool_size=1)
    try:
        response = await client.get("/ready")
    finally:
        await app.state.db.close()
        app.state.db = real
    assert (response.status_code, response.json()) == (503, {"ready": False})
    assert (await client.get("/ready")).json() == {"ready": True}


async def test_openapi_document_lists_every_endpoint(client):
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200, response.text
    document = response.json()
    assert document["openapi"].startswith("3.")
    paths = document["paths"]
    expected = {
        "/v1/members": {"post"}, "/v1/members/{member_id}": {"get"}, "/v1/members/{member_id}/cancel": {"post"},
        "/v1/members/{member_id}/personal-data": {"delete"}, "/v1/members/{member_id}/balance": {"get"},
        "/v1/members/{member_id}/activity": {"get"}, "/v1/purchases": {"post"}, "/v1/purchases/quote": {"post"},
        "/v1/purchases/{purchase_id}/returns": {"post"}, "/v1/rewards/{code}": {"get"},
        "/v1/program/rules": {"get", "put"}, "/health": {"get"}, "/ready": {"get"}, "/metrics": {"get"},
    }
    for path, methods in expected.items():
        assert path in paths, sorted(paths)
        assert methods <= set(paths[path]), (path, paths[path])
    assert "PurchaseIn" in str(document["components"]["schemas"])
    ui = await client.get("/schema")
    assert ui.status_code == 200
    assert "text/html" in ui.headers["content-type"]


async def test_unknown_path_is_a_not_found_problem(client, keys):
    problem(await client.get("/v1/nothing-here", headers=auth(keys["all"])), 404, "not_found")


# --- redemption refusals ------------------------------------------------------------------------


async def _reward_of(client, keys, member_id: int, **overrides) -> str:
    (reward,) = (await earn(client, keys, member_id, 30000, **overrides))["rewards_issued"]
    return reward["code"]


def _redeeming(member_id: int, code: str, reward_cents: int = 1000, cash_cents: int = 500, **overrides):
    return purchase(member_id, reward_cents + cash_cents, tenders=[
        {"method": "reward", "amount_cents": reward_cents, "reward_code": code},
        {"method": "cash", "amount_cents": cash_cents},
    ], **overrides)


async def test_reward_redeems_once_only(client, keys, db, member):
    code = await _reward_of(client, keys, member)
    first = await client.post("/v1/purchases", json=_redeeming(member, code), headers=auth(keys["checkout"]))
    assert first.status_code == 201, first.text
    assert first.json()["rewards_redeemed"] == [code]
    before = await row_counts(db)
    answer = problem(await client.post("/v1/purchases", json=_redeeming(member, code),
                                       headers=auth(keys["checkout"])), 409, "reward_not_redeemable")
    assert answer["reward_code"] == code
    assert await row_counts(db) == before
    status = (await client.get(f"/v1/rewards/{code}", headers=auth(keys["checkout"]))).json()
    assert status["status"] == "redeemed"
    assert status["redeemed_at"] is not None


async def test_someone_elses_reward_is_refused(client, keys, db, make_member):
    owner, other = await make_member(), await make_member()
    code = await _reward_of(client, keys, owner)
    before = await row_counts(db)
    problem(await client.post("/v1/purchases", json=_redeeming(other, code), headers=auth(keys["checkout"])), 409,
            "reward_not_redeemable")
    assert await row_counts(db) == before
    assert (await client.get(f"/v1/rewards/{code}", headers=auth(keys["checkout"]))).json()["status"] == "issued"


async def test_unknown_reward_or_more_than_its_value_is_refused(client, keys, db, member):
    code = await _reward_of(client, keys, member)
    before = await row_counts(db)
    for body in (_redeeming(member, "WR-NO-SUCH-CODE"), _redeeming(member, code, reward_cents=1001)):
        problem(await client.post("/v1/purchases", json=body, headers=auth(keys["checkout"])), 409,
                "reward_not_redeemable")
    same_twice = purchase(member, 2000, tenders=[
        {"method": "reward", "amount_cents": 1000, "reward_code": code},
        {"method": "reward", "amount_cents": 1000, "reward_code": code},
    ])
    problem(await client.post("/v1/purchases", json=same_twice, headers=auth(keys["checkout"])), 422,
            "validation_error")
    assert await row_counts(db) == before


async def _old_reward(engine, member_id: int, days_ago: float) -> tuple[str, datetime]:
    """A reward issued by a purchase `days_ago` (history: older than a live posting may be)."""
    when = datetime.now(UTC) - timedelta(days=days_ago)
    _, out = await post_purchase(engine, purchase_in(member_id, 30000, occurred_at=when), history=True)
    return out.rewards_issued[0].code, when


async def test_expired_reward_cannot_be_redeemed(client, keys, db, member, engine):
    code, long_ago = await _old_reward(engine, member, 100)
    shown = (await client.get(f"/v1/rewards/{code}", headers=auth(keys["checkout"]))).json()
    assert shown["status"] == "expired"
    assert datetime.fromisoformat(shown["expires_at"]) == long_ago + timedelta(days=90)
    before = await row_counts(db)
    problem(await client.post("/v1/purchases", json=_redeeming(member, code), headers=auth(keys["checkout"])), 409,
            "reward_not_redeemable")
    assert await row_counts(db) == before
    balance = (await client.get(f"/v1/members/{member}/balance", headers=auth(keys["checkout"]))).json()
    assert [r["status"] for r in balance["rewards"]] == ["expired"]


async def test_reward_within_90_days_redeems(client, keys, member, engine):
    code, _ = await _old_reward(engine, member, 89)
    response = await client.post("/v1/purchases", json=_redeeming(member, code), headers=auth(keys["checkout"]))
    assert response.status_code == 201, response.text


async def test_a_reward_expired_by_now_is_refused_to_a_purchase_dated_while_it_was_valid(client, keys, db, member,
                                                                                        engine):
    # issued 95 days ago: it expired five days ago; a purchase dated six days ago (a live posting may be
    # backdated seven) falls inside its validity, but a reward must be unexpired when it is posted too
    code, issued = await _old_reward(engine, member, 95)
    before = await row_counts(db)
    late = _redeeming(member, code, occurred_at=issued + timedelta(days=89))
    problem(await client.post("/v1/purchases", json=late, headers=auth(keys["checkout"])), 409,
            "reward_not_redeemable")
    assert await row_counts(db) == before


# --- reward status ------------------------------------------------------------------------------


async def test_reward_status_shows_value_owner_and_expiry(client, keys, member):
    posted = await earn(client, keys, member, 30000)
    (issued,) = posted["rewards_issued"]
    response = await client.get(f"/v1/rewards/{issued['code']}", headers=auth(keys["checkout"]))
    assert response.status_code == 200
    shown = response.json()
    assert (shown["code"], shown["member_id"], shown["value_cents"], shown["status"]) == (
        issued["code"], member, 1000, "issued")
    assert datetime.fromisoformat(shown["expires_at"]) == datetime.fromisoformat(issued["expires_at"])
    assert shown["redeemed_at"] is None


async def test_unknown_reward_code_is_not_found(client, keys):
    problem(await client.get("/v1/rewards/WRNOSUCHCODE0000", headers=auth(keys["checkout"])), 404, "not_found")
    problem(await client.get("/v1/rewards/WRNOSUCHCODE0000", headers=auth(keys["guest_services"])), 403, "forbidden")


async def test_reward_codes_are_unguessable(client, keys, member):
    codes = [r["code"] for r in (await earn(client, keys, member, 150000))["rewards_issued"]]
    assert len(codes) == 5
    assert len(set(codes)) == 5
    assert all(len(code) >= 16 for code in codes)
    assert len({code[-8:] for code in codes}) == 5  # not a counter




async def test_reward_cannot_be_redeemed_by_a_purchase_dated_before_its_issue(client, keys, db, member):
    code = await _reward_of(client, keys, member)
    before = await row_counts(db)
    earlier = _redeeming(member, code, occurred_at=datetime.now(UTC) - timedelta(days=2))
    problem(await client.post("/v1/purchases", json=earlier, headers=auth(keys["checkout"])), 409,
            "reward_not_redeemable")
    assert await row_counts(db) == before
