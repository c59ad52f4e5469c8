"""The liability report at the close of a date, on the issue's four-member program (2025).

A date's close is midnight after it in Los Angeles, the program's time zone. The card
member's four rewards are issued on Feb 1 (noon UTC) and expire on May 2; two are
redeemed on Feb 10. The cash member's reward is issued on Mar 1 and redeemed on Mar 5. The
third member's $150 (Apr 1) leaves 150 points, worth $5.00 at $10 per 300 points.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from tests.reference import LA

if TYPE_CHECKING:
    from tests.reports_support import People, Program

pytest_plugins = ("tests.reports_support",)  # the private database and its hand-built programs

EMPTY = {"count": 0, "cents": 0}


async def liability(p: Program, as_of: str, **params: str) -> dict:
    response = await p.client.get("/v1/reports/liability", params={"as_of": as_of, **params},
                                  headers={"Authorization": f"Bearer {p.keys['compliance']}"})
    assert response.status_code == 200, response.text
    return response.json()


async def test_liability_counts_points_and_open_rewards_by_expiry(program: Program, four_members: People):
    report = await liability(program, "2025-04-15")
    assert report == {
        "as_of": "2025-04-15",
        "time_zone": "America/Los_Angeles",
        "closed": True,
        "cutoff": "2025-04-16T07:00:00Z",  # midnight after April 15 in Los Angeles
        "reward_rate": {"rules_version": 1, "reward_threshold_points": 300, "reward_value_cents": 1000},
        "points_outstanding": {"point_cents": 15000, "points": 150, "value_cents": 500, "members": 1,
                               "negative_point_cents": 0, "members_negative": 0},
        "rewards_unredeemed": {
            "count": 2, "cents": 2000, "outstanding_count": 2, "outstanding_cents": 2000,
            "aged": {"expired": EMPTY, "within_30_days": {"count": 2, "cents": 2000}, "within_60_days": EMPTY,
                     "within_90_days": EMPTY, "later": EMPTY},
        },
        "total_liability_cents": 2500,
        "rows_read": {"ledger": 12, "rewards": 2},
    }


@pytest.mark.parametrize(("as_of", "bucket", "open_rewards", "points"), [
    ("2025-02-05", "within_90_days", 4, 0),  # 4 issued, none redeemed yet; May 2 is 85 days away
    ("2025-03-10", "within_60_days", 2, 0),  # 2 left after Feb 10; 52 days away
    ("2025-04-15", "within_30_days", 2, 15000),
    ("2025-06-01", "expired", 2, 15000),  # past May 2: no longer owed
])
async def test_open_rewards_age_by_expiry(program: Program, four_members: People, as_of: str, bucket: str,
                                          open_rewards: int, points: int):
    report = await liability(program, as_of)
    aged = report["rewards_unredeemed"]["aged"]
    assert aged[bucket] == {"count": open_rewards, "cents": open_rewards * 1000}
    assert all(v == EMPTY for k, v in aged.items() if k != bucket)
    owed = 0 if bucket == "expired" else open_rewards * 1000
    assert report["rewards_unredeemed"]["outstanding_cents"] == owed
    assert report["points_outstanding"]["point_cents"] == points
    assert report["total_liability_cents"] == owed + points // 30  # 300 points = $10


async def test_liability_shows_negative_balances_apart_and_voids_on_cancel(program: Program):
    member = await program.member("2025-01-05")
    # two units by card: 2 rewards, 200 points left; both rewards spent; both units back (-800 points):
    # no open reward to void, so the balance goes negative: -600 points
    bought = await program.buy(member, 40000, "2025-03-10", method="westique_credit_card", units=2)
    codes = tuple(r["code"] for r in bought["rewards_issued"])
    await program.buy(member, 2000, "2025-03-12", rewards=codes)
    await program.give_back(bought["purchase_id"], 40000, "2025-03-20", units=2)
    other = await program.member("2025-01-05")
    await program.buy(other, 35000, "2025-04-01")  # 1 reward, 50 points left
    await program.cancel(other, "2025-05-01")  # forfeits 50 points, voids the reward
    before_cancel = await liability(program, "2025-04-30")
    assert before_cancel["points_outstanding"]["point_cents"] == 5000
    assert before_cancel["points_outstanding"]["negative_point_cents"] == 60000
    assert before_cancel["points_outstanding"]["members_negative"] == 1
    assert before_cancel["rewards_unredeemed"]["outstanding_count"] == 1
    after_cancel = await liability(program, "2025-05-01")
    assert after_cancel["points_outstanding"]["point_cents"] == 0
    assert after_cancel["rewards_unredeemed"]["outstanding_count"] == 0
    assert after_cancel["total_liability_cents"] == 0


async def test_liability_defaults_to_now_and_refuses_a_date_to_come(program: Program, four_members: People):
    headers = {"Authorization": f"Bearer {program.keys['compliance']}"}
    today = datetime.now(LA).date()
    now = await program.client.get("/v1/reports/liability", headers=headers)
    assert now.status_code == 200, now.text
    report = now.json()
    assert report["as_of"] == today.isoformat() and report["closed"] is False
    # as of the read: the card member's rewards expired long ago, the third member's 150 points are owed
    assert report["points_outstanding"]["point_cents"] == 15000
    assert report["rewards_unredeemed"]["outstanding_count"] == 0
    assert report["rewards_unredeemed"]["aged"]["expired"]["count"] == 2
    tomorrow = await program.client.get("/v1/reports/liability", headers=headers,
                                        params={"as_of": (today + timedelta(days=1)).isoformat()})
    assert tomorrow.status_code == 422
    problem = tomorrow.json()
    assert problem["code"] == "validation_error" and problem["field"] == "as_of"
    assert "in the future" in problem["detail"] and "has not happened yet" in problem["detail"]


async def test_liability_csv_and_scope(program: Program, four_members: People):
    response = await program.client.get("/v1/reports/liability", params={"as_of": "2025-04-15", "format": "csv"},
                                        headers={"Authorization": f"Bearer {program.keys['compliance']}"})
    assert response.status_code == 200
    rows = dict(csv.reader(io.StringIO(response.text)))
    assert rows["total_liability_cents"] == "2500"
    assert rows["rewards_unredeemed.aged.within_30_days.count"] == "2"
    forbidden = await program.client.get("/v1/reports/liability", params={"as_of": "2025-04-15"},
                                         headers={"Authorization": f"Bearer {program.keys['checkout']}"})
    assert forbidden.status_code == 403
    garbled = await program.client.get("/v1/reports/liability", params={"as_of": "15/04/2025"},
                                       headers={"Authorization": f"Bearer {program.keys['compliance']}"})
    assert garbled.status_code in (400, 422) and garbled.json()["code"] == "validation_error"
