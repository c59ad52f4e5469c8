"""Every worked figure of docs/rules.md, through the HTTP API."""

from __future__ import annotations

from typing import Any

from tests.conftest import auth, purchase
from tests.test_api_members import earn, ledger_of
from tests.test_api_returns import a_return, bought, post_return
from tests.test_api_rules_and_rewards import rules_for_an_instant


async def balance_of(client: Any, keys: dict[str, str], member_id: int) -> dict[str, Any]:
    response = await client.get(f"/v1/members/{member_id}/balance", headers=auth(keys["checkout"]))
    assert response.status_code == 200, response.text
    return response.json()


async def test_twelve_dollars_thirty_four_earns_1234_point_cents_shown_as_12_points(client, keys, member):
    answer = await earn(client, keys, member, 1234)
    assert answer["point_cents_earned"] == 1234
    assert answer["balance"] == {"points": 12, "point_cents": 1234}
    balance = await balance_of(client, keys, member)
    assert (balance["points"], balance["point_cents"]) == (12, 1234)


async def test_three_hundred_dollars_earn_exactly_one_ten_dollar_reward(client, keys, make_member):
    member = await make_member()
    answer = await earn(client, keys, member, 30000)
    assert [r["value_cents"] for r in answer["rewards_issued"]] == [1000]
    assert answer["balance"] == {"points": 0, "point_cents": 0}

    # fractions carry over: $150.50 and $149.50 also make exactly one reward
    carried = await make_member()
    assert (await earn(client, keys, carried, 15050))["rewards_issued"] == []
    assert len((await earn(client, keys, carried, 14950))["rewards_issued"]) == 1

    short = await make_member()
    assert (await earn(client, keys, short, 29999))["rewards_issued"] == []
    assert (await balance_of(client, keys, short))["points_to_next_reward"] == 1


async def test_a_posting_issues_as_many_rewards_as_the_balance_allows(client, keys, db, member):
    answer = await earn(client, keys, member, 95000)
    assert len(answer["rewards_issued"]) == 3
    assert answer["balance"] == {"points": 50, "point_cents": 5000}
    issued = [e["point_cents"] for e in await ledger_of(db, member) if e["kind"] == "reward_issued"]
    assert issued == [-30000] * 3  # each reward takes 300 points off


async def test_card_bonus_only_on_the_card_paid_qualifying_share(client, keys, make_member):
    lines = [("A", "apparel", 1, 10000), ("G", "gift_card", 1, 5000)]
    # $60 of the $100 qualifying on the card: 100 points and a 60-point bonus
    part = await bought(client, keys, await make_member(), lines, [("westique_credit_card", 6000), ("cash", 9000)])
    assert (part["qualifying_cents"], part["point_cents_earned"], part["bonus_point_cents"]) == (10000, 16000, 6000)
    # $120 on the card, but only $100 qualifies: the bonus stops at the qualifying share
    over = await bought(client, keys, await make_member(), lines, [("westique_credit_card", 12000), ("cash", 3000)])
    assert (over["qualifying_cents"], over["point_cents_earned"], over["bonus_point_cents"]) == (10000, 20000, 10000)
    # another credit card earns no bonus
    other = await bought(client, keys, await make_member(), lines, [("credit_card", 15000)])
    assert (other["point_cents_earned"], other["bonus_point_cents"]) == (10000, 0)


async def test_excluded_categories_do_not_qualify(client, keys, member):
    for category in ("gift_card", "tax", "shipping"):
        answer = await earn(client, keys, member, 5000, category=category)
        assert (answer["qualifying_cents"], answer["point_cents_earned"]) == (0, 0), category
    mixed = await bought(client, keys, member, [("A", "apparel", 1, 4000), ("T", "tax", 1, 330),
                                                ("S", "shipping", 1, 599), ("G", "gift_card", 1, 2500)],
                         [("westique_credit_card", 7429)])
    assert (mixed["qualifying_cents"], mixed["point_cents_earned"], mixed["bonus_point_cents"]) == (4000, 8000, 4000)


async def test_the_part_paid_with_a_reward_does_not_qualify(client, keys, member):
    (reward,) = (await earn(client, keys, member, 30000))["rewards_issued"]
    body = purchase(member, 5000, tenders=[
        {"method": "reward", "amount_cents": 1000, "reward_code": reward["code"]},
        {"method": "westique_credit_card", "amount_cents": 4000},
    ])
    response = await client.post("/v1/purchases", json=body, headers=auth(keys["checkout"]))
    assert response.status_code == 201, response.text
    answer = response.json()
    assert (answer["qualifying_cents"], answer["point_cents_earned"], answer["bonus_point_cents"]) == (4000, 8000, 4000)
    assert answer["rewards_redeemed"] == [reward["code"]]


async def test_floor_per_purchase_rounds_each_purchase_down_to_whole_dollars(client, keys, make_member):
    instant, version = await rules_for_an_instant(client, keys, rounding="floor_per_purchase")
    member = await make_member()
    cases = [(1234, "cash", 1200, 0), (99, "cash", 0, 0), (15050, "westique_credit_card", 30000, 15000)]
    for cents, method, earned, bonus in cases:
        answer = await earn(client, keys, member, cents, method=method, occurred_at=instant)
        assert (answer["point_cents_earned"], answer["bonus_point_cents"]) == (earned, bonus), (cents, method)
    assert (await balance_of(client, keys, member))["point_cents"] == 1200 + 30000 - 30000
    # $150.50 twice is $301 spent, but only $300 earned: no carried fractions in this rounding
    other = await make_member()
    for _ in range(2):
        last = await earn(client, keys, other, 15050, occurred_at=instant)
    assert last["rewards_issued"] and last["balance"]["point_cents"] == 0
    # the same purchase at any other time earns under the carried default
    assert (await earn(client, keys, other, 1234))["point_cents_earned"] == 1234


async def test_full_return_takes_back_exactly_what_was_earned_bonus_included(client, keys, db, member):
    sale = await bought(client, keys, member, [("A", "apparel", 2, 7777), ("T", "tax", 1, 641)],
                        [("westique_credit_card", 5000), ("cash", 3418)])
    assert (sale["point_cents_earned"], sale["bonus_point_cents"]) == (12777, 5000)
    answer = await post_return(client, keys, sale["purchase_id"], a_return(("A", 2, 7777), ("T", 1, 641)))
    assert answer.status_code == 201, answer.text
    assert answer.json()["point_cents_reversed"] == 12777
    assert answer.json()["balance"] == {"points": 0, "point_cents": 0}
    assert sum(e["point_cents"] for e in await ledger_of(db, member)) == 0


async def test_partial_return_keeps_tender_shares_in_proportion(client, keys, member):
    # $200 of goods, half on the card: returning half keeps half the card share (not all of it)
    sale = await bought(client, keys, member, [("A", "apparel", 1, 10000), ("B", "apparel", 1, 10000)],
                        [("westique_credit_card", 10000), ("cash", 10000)])
    assert sale["point_cents_earned"] == 30000
    answer = await post_return(client, keys, sale["purchase_id"], a_return(("A", 1, 10000)))
    # left: $100 with $50 on the card = 150 points; so 150 of the 300 are taken back
    assert answer.json()["point_cents_reversed"] == 15000
    rest = await post_return(client, keys, sale["purchase_id"], a_return(("B", 1, 10000)))
    assert rest.json()["point_cents_reversed"] == 15000


async def test_negative_balance_is_repaid_first_and_no_reward_while_below_300(client, keys, db, member):
    await earn(client, keys, member, 10000)
    sale = await earn(client, keys, member, 25000)
    assert len(sale["rewards_issued"]) == 1 and sale["balance"]["point_cents"] == 5000
    # the reward is spent (a redeemed reward cannot be taken back), so nothing is left to void
    code = sale["rewards_issued"][0]["code"]
    await earn(client, keys, member, 1000, tenders=[{"method": "reward", "amount_cents": 1000, "reward_code": code}])
    returned = await post_return(client, keys, sale["purchase_id"], a_return(("SKU-1", 1, 25000)))
    assert returned.json()["balance"] == {"points": -200, "point_cents": -20000}
    assert returned.json()["rewards_voided"] == []
    assert (await balance_of(client, keys, member))["points_to_next_reward"] == 500

    repaid = await earn(client, keys, member, 30000)  # 300 points repay 200 first: 100 left, no reward
    assert repaid["rewards_issued"] == []
    assert repaid["balance"]["point_cents"] == 10000
    crossing = await earn(client, keys, member, 20000)
    assert len(crossing["rewards_issued"]) == 1
    assert crossing["balance"]["point_cents"] == 0
    assert sum(e["point_cents"] for e in await ledger_of(db, member)) == 0
