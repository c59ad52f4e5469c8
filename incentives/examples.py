"""Examples for the OpenAPI document: the reports' JSON (a small demo program's figures), the
disclosures and the published documents.

`tests/test_openapi.py` decodes each into its type, strictly.
"""

from __future__ import annotations

from typing import Any

from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example

from incentives.disclosures import Disclosures, DisclosuresOut
from incentives.liability import LiabilityReport
from incentives.program_texts import DocumentIn, DocumentOut, DocumentsOut
from incentives.stores import StoresReport
from incentives.valuation import IncentiveReport
from rewards.examples import register_examples

INCENTIVE_VALUE: dict[str, Any] = {
    "program": "rewards",
    "period": {
        "from": "2025-12-01",
        "to": "2026-11-30",
        "time_zone": "America/Los_Angeles",
        "days": 365
    },
    "method": {
        "code": "expenses",
        "regulation": "11 CCR §7081(a)(6)",
        "description": "Expenses related to the provision of the financial incentive (11 CCR §7081(a)(6)): the face value of the Rewards that members redeemed in the period, the only Rewards that cost the business anything. Rewards issued but not redeemed, and Rewards that expired unused, are not counted. Every member enrolled at any time in the period counts once, at $0 if they redeemed nothing; the annualised figure divides the total by the members' time enrolled in the period (member-years)."
    },
    "members": {
        "at_start": 40,
        "at_end": 40,
        "enrolled": 0,
        "cancelled": 0,
        "erased": 0,
        "counted": 40,
        "member_years": 40.0
    },
    "spend": {
        "qualifying_cents": 10302843,
        "card_cents": 1126801
    },
    "points": {
        "earned_point_cents": 11429644,
        "bonus_point_cents": 1126801,
        "reversed_point_cents": 294445,
        "forfeited_point_cents": 0
    },
    "rewards": {
        "issued_count": 371,
        "issued_cents": 371000,
        "redeemed_count": 214,
        "redeemed_cents": 214000,
        "expired_count": 97,
        "expired_cents": 97000,
        "voided_count": 9,
        "voided_cents": 9000,
        "redemption_rate": 0.5768
    },
    "value_per_member_cents": {
        "mean": 5350,
        "median": 5000,
        "p25": 4000,
        "p75": 7000,
        "p90": 8000,
        "p99": 10000,
        "max": 10000,
        "share_zero": 0.0
    },
    "by_segment": {
        "card_holders": {
            "mean": 6000,
            "median": 6000,
            "p25": 4000,
            "p75": 7000,
            "p90": 9000,
            "p99": 9000,
            "max": 9000,
            "share_zero": 0.0,
            "counted": 6,
            "suppressed": False
        },
        "others": {
            "mean": 5235,
            "median": 5000,
            "p25": 4000,
            "p75": 7000,
            "p90": 8000,
            "p99": 10000,
            "max": 10000,
            "share_zero": 0.0,
            "counted": 34,
            "suppressed": False
        }
    },
    "annualized_value_per_member_cents": 5350,
    "notice_text": "Westique Rewards is a free loyalty program that Westique offers in exchange for the personal information you give us when you join and shop as a member. Members earn 1 point for every $1 of qualifying purchases, plus a bonus of 1 point for every $1 paid with the Westique Credit Card, and receive a $10 Reward for every 300 points. To run the program we collect and use these categories of personal information: identifiers (name, email address, phone number and membership card number); personal characteristics (birth date, used to apply the program's age limits, and US state of residence); commercial information (purchase history: the items, amounts, stores, dates and ways of payment of your purchases and returns, and your points and Rewards). Rewards are issued automatically and expire 90 days after they are issued. Purchases of gift cards, tax and shipping do not earn points, and neither does the part of a purchase paid with a Reward. To join, enroll at any Westique register, online or through Guest Services, and accept the program terms; membership is free. You may withdraw at any time by cancelling your membership at a register, online, or by calling Guest Services at 1-800-555-0142 or writing to guestservices@westique.example; when you do, points not yet converted to a Reward are forfeited and unredeemed Rewards are voided. In good faith, we estimate the value of a member's personal information to Westique at $53.50 per member per year. The value varies depending on the number of $10 Rewards redeemed. We calculated this estimate from the expenses of providing the incentive (11 CCR §7081(a)(6)): the face value of the $10 Rewards that the 40 members enrolled from December 1, 2025 to November 30, 2026 redeemed, divided by the time they were enrolled (40.00 member-years). Of those members, 0% redeemed no Reward, and one in ten received $80.00 or more. We consider the Rewards reasonably related to the value of your information because our estimate is built from them: every $100 of qualifying purchases earns 100 points, worth $3.33 toward a $10 Reward (200 points, worth $6.67, when paid with the Westique Credit Card). Over the period, members redeemed $2.08 in Rewards for every $100 of qualifying purchases.",
    "notice_withheld": None,
    "warnings": [
        "Some figures describe fewer than 10 members (the smallest group shown has 6): set min_cell_size before publishing them, so that no figure singles anyone out."
    ],
    "suppression": {
        "min_cell_size": None,
        "withheld": []
    },
    "reproducibility": {
        "as_of": "2026-12-01T08:00:00Z",
        "rules_versions": [
            1
        ],
        "disclosures_version": 1,
        "rows_read": {
            "members": 40,
            "ledger": 24,
            "rewards": 406,
            "program_rules": 1,
            "purchases": 543
        },
        "digest": "06e6d3f11b53f3da9c9b9154f1c69064436a0e5488e220e2d6aec2d42ef0d49a"
    }
}

LIABILITY: dict[str, Any] = {
    "as_of": "2026-12-01",
    "time_zone": "America/Los_Angeles",
    "closed": False,
    "cutoff": "2026-12-01T19:29:39.395540Z",
    "reward_rate": {
        "rules_version": 1,
        "reward_threshold_points": 300,
        "reward_value_cents": 1000
    },
    "points_outstanding": {
        "point_cents": 469382,
        "points": 4693,
        "value_cents": 15646,
        "members": 37,
        "negative_point_cents": 0,
        "members_negative": 0
    },
    "rewards_unredeemed": {
        "count": 165,
        "cents": 165000,
        "outstanding_count": 68,
        "outstanding_cents": 68000,
        "aged": {
            "expired": {
                "count": 97,
                "cents": 97000
            },
            "within_30_days": {
                "count": 13,
                "cents": 13000
            },
            "within_60_days": {
                "count": 32,
                "cents": 32000
            },
            "within_90_days": {
                "count": 23,
                "cents": 23000
            },
            "later": {
                "count": 0,
                "cents": 0
            }
        }
    },
    "total_liability_cents": 83646,
    "rows_read": {
        "ledger": 1346,
        "rewards": 165
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

NOTICE_TEMPLATES: dict[str, Any] = {
    "summary": ["{program_name} is a free loyalty program that {business_name} offers in exchange for your "
                "personal information: {base_earning} per $1, a {reward_value} Reward per {threshold_points} points."],
    "material_terms": ["We use these categories of personal information: {categories}."],
    "opt_in": ["To join, enroll at any {business_name} register or online."],
    "withdrawal": ["You may withdraw at any time through Guest Services at {guest_services_phone} or "
                   "{guest_services_email}."],
    "estimate": ["We estimate the value of a member's personal information at {estimate} per member per year."],
    "method": {"expenses": ["We calculated it from the Rewards redeemed ({regulation})."]},
    "reasonably_related": ["The Rewards are reasonably related to that value because the estimate is built from them."],
}
DISCLOSURES: dict[str, Any] = {
    "business_name": "Westique",
    "program_names": {"rewards": "Westique Rewards", "mailing_list": "Westique email and text offers"},
    "guest_services": {"phone": "1-800-555-0142", "email": "guestservices@westique.example",
                       "hours": "every day, 8 AM to 8 PM Pacific time"},
    "categories": [{"name": "identifiers", "examples": "name, email address, phone number", "programs": ["rewards"]},
                   {"name": "identifiers", "examples": "email address or mobile number", "programs": ["mailing_list"]}],
    "sources": ["you, when you enroll or subscribe"],
    "purposes": ["running the program: crediting points, issuing and redeeming Rewards"],
    "sale_and_sharing": {"sold": False, "shared_for_targeted_advertising": False, "categories_sold_or_shared": [],
                         "third_party_categories": ["service providers that host and operate our systems"],
                         "data_brokers": False},
    "colorado_loyalty": {"partners": [], "deletion_impact": "Deleting your personal information ends your "
                         "membership: unconverted points are forfeited and unredeemed Rewards voided.",
                         "sensitive_data": "The program collects no sensitive data."},
    "labels": {"categories": {"gift_card": "gift cards"}, "tenders": {"westique_credit_card": "the Westique Credit Card"}},
    "notice": {"rewards": NOTICE_TEMPLATES, "mailing_list": NOTICE_TEMPLATES},
}
STORES: dict[str, Any] = {
    "period": {"from": "2026-11-01", "to": "2026-11-30"},
    "time_zone": "America/Los_Angeles",
    "generated_at": "2026-12-01T17:00:00Z",
    "stores": [
        {"store_id": "S012", "purchases": 1840, "qualifying_cents": 10412300, "point_cents_earned": 13520440,
         "bonus_point_cents": 3108140, "rewards_redeemed_count": 212, "rewards_redeemed_cents": 212000},
        {"store_id": "WEB", "purchases": 960, "qualifying_cents": 6120050, "point_cents_earned": 7344060,
         "bonus_point_cents": 1224010, "rewards_redeemed_count": 131, "rewards_redeemed_cents": 131000},
    ],
    "totals": {"purchases": 2800, "qualifying_cents": 16532350, "point_cents_earned": 20864500,
               "bonus_point_cents": 4332150, "rewards_redeemed_count": 343, "rewards_redeemed_cents": 343000},
}
STORES_RESPONSE = ResponseSpec(
    StoresReport, generate_examples=False,
    description="The report as JSON (this schema); with format=csv, a row per store then the totals (text/csv).",
    examples=[Example(summary="November at two stores", value=STORES)],
)

DOCUMENT_IN: dict[str, Any] = {"kind": "notice", "version": "2027-01-01", "text": "Notice of Financial Incentive …",
                               "effective_from": "2027-01-01T08:00:00Z"}
DOCUMENT_OUT: dict[str, Any] = {
    "kind": "notice", "version": "2027-01-01", "text": "Notice of Financial Incentive …",
    "sha256": "3b1c0d1c2f7a6f0a0f4a5c3d9e8b7a6f5e4d3c2b1a09f8e7d6c5b4a39281706f",
    "effective_from": "2027-01-01T08:00:00Z", "published_at": "2026-12-01T18:00:00Z"}

register_examples({
    Disclosures: DISCLOSURES,
    DisclosuresOut: {"version": 2, "created_at": "2026-12-01T18:00:00Z", "disclosures": DISCLOSURES},
    DocumentIn: DOCUMENT_IN,
    DocumentOut: DOCUMENT_OUT,
    DocumentsOut: {"items": [DOCUMENT_OUT]},
})
