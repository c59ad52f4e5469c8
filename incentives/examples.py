"""Examples of the reports' JSON for the OpenAPI document (a small demo program's figures).

`tests/test_openapi.py` decodes them into `IncentiveReport` and `LiabilityReport`, strictly.
"""

from __future__ import annotations

from typing import Any

from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example

from incentives.liability import LiabilityReport
from incentives.valuation import IncentiveReport

INCENTIVE_VALUE: dict[str, Any] = {
    "program": "rewards",
    "period": {
        "from": "2025-01-01",
        "to": "2025-12-31"
    },
    "method": {
        "code": "expenses",
        "regulation": "11 CCR §7081(a)(6)",
        "description": "Expenses of providing the incentive: the face value of the $10 Rewards that members redeemed in the period. Every member enrolled at any time in the period counts once, at $0 if they redeemed nothing; a member's value is the Rewards they redeemed in the period."
    },
    "members": {
        "at_start": 40,
        "at_end": 38,
        "enrolled": 0,
        "cancelled": 2,
        "erased": 0,
        "counted": 40
    },
    "spend": {
        "qualifying_cents": 7499123,
        "card_cents": 1289848
    },
    "points": {
        "earned_point_cents": 8788971,
        "bonus_point_cents": 1289848,
        "reversed_point_cents": 202749,
        "forfeited_point_cents": 32823
    },
    "rewards": {
        "issued_count": 279,
        "issued_cents": 279000,
        "redeemed_count": 119,
        "redeemed_cents": 119000,
        "expired_count": 116,
        "expired_cents": 116000,
        "voided_count": 2,
        "voided_cents": 2000,
        "redemption_rate": 0.4265
    },
    "value_per_member_cents": {
        "mean": 2975,
        "median": 3000,
        "p25": 1000,
        "p75": 4000,
        "p90": 5000,
        "p99": 8000,
        "max": 8000,
        "share_zero": 0.05
    },
    "by_segment": {
        "card_holders": {
            "mean": 3625,
            "median": 3000,
            "p25": 2000,
            "p75": 4000,
            "p90": 7000,
            "p99": 7000,
            "max": 7000,
            "share_zero": 0.0,
            "counted": 8,
            "suppressed": False
        },
        "others": {
            "mean": 2813,
            "median": 3000,
            "p25": 1000,
            "p75": 4000,
            "p90": 5000,
            "p99": 8000,
            "max": 8000,
            "share_zero": 0.0625,
            "counted": 32,
            "suppressed": False
        }
    },
    "annualized_value_per_member_cents": 2975,
    "notice_text": "Westique Rewards is a financial incentive that we offer in exchange for the personal information you give us when you join and shop as a member. In good faith, we estimate the value of a member's personal information to Westique at $29.75 per member per year. We calculated this estimate from the expenses of providing the program's incentive (11 CCR §7081(a)(6)): the value of the $10 Rewards redeemed by the 40 members enrolled from January 1, 2025 to December 31, 2025, divided by the number of members, and expressed per year. The value varies depending on the number of $10 Rewards redeemed: 5% of members redeemed none, while one member in ten received $50.00 or more. Every $100 of qualifying purchases earns 100 points, worth $3.33 toward a $10 Reward (200 points, worth $6.67, when paid with the Westique Credit Card); from January 1, 2025 to December 31, 2025, members redeemed $1.59 in Rewards for every $100 of qualifying purchases. To join, enroll at any Westique register or online and accept the program terms; membership is free. You may withdraw at any time by cancelling your membership at a register, online or through Guest Services; when you do, points not yet converted to a Reward are forfeited and unredeemed $10 Rewards are voided.",
    "reproducibility": {
        "as_of": "2026-01-01T00:00:00Z",
        "rules_versions": [
            1
        ],
        "rows_read": {
            "members": 40,
            "ledger": 21,
            "rewards": 290,
            "program_rules": 1,
            "purchases": 361
        },
        "digest": "94a2c9ae0fd2d9907a2a3961367f3f1e31e92fb16ef784344d200954fe50680d"
    }
}

LIABILITY: dict[str, Any] = {
    "as_of": "2025-12-31",
    "cutoff": "2026-01-01T00:00:00Z",
    "reward_rate": {
        "rules_version": 1,
        "reward_threshold_points": 300,
        "reward_value_cents": 1000
    },
    "points_outstanding": {
        "point_cents": 557994,
        "points": 5579,
        "value_cents": 18600,
        "members": 37,
        "negative_point_cents": 21093,
        "members_negative": 1
    },
    "rewards_unredeemed": {
        "count": 167,
        "cents": 167000,
        "outstanding_count": 51,
        "outstanding_cents": 51000,
        "aged": {
            "expired": {
                "count": 116,
                "cents": 116000
            },
            "within_30_days": {
                "count": 9,
                "cents": 9000
            },
            "within_60_days": {
                "count": 23,
                "cents": 23000
            },
            "within_90_days": {
                "count": 19,
                "cents": 19000
            },
            "later": {
                "count": 0,
                "cents": 0
            }
        }
    },
    "total_liability_cents": 69600,
    "rows_read": {
        "ledger": 902,
        "rewards": 167
    }
}

INCENTIVE_VALUE_RESPONSE = ResponseSpec(
    IncentiveReport, generate_examples=False,
    description="The report as JSON (this schema); with format=csv, the same figures as CSV "
                "(text/csv, key/value rows then the distribution); with format=html, a page to print (text/html).",
    examples=[Example(summary="a year of the rewards program", value=INCENTIVE_VALUE)],
)
LIABILITY_RESPONSE = ResponseSpec(
    LiabilityReport, generate_examples=False,
    description="The report as JSON (this schema); with format=csv, the same figures as CSV (text/csv).",
    examples=[Example(summary="the close of 2025", value=LIABILITY)],
)
