"""Request and response examples for the OpenAPI document, one per type.

They follow the README's walk-through: Ann Lee enrolls as member 1 and buys a $312.34 jacket
with the Westique Credit Card (312.34 points and as many bonus points: two $10 rewards, 24.68
points left). `tests/test_openapi.py` decodes each one into its type, strictly, so an example
cannot drift from its schema; a route whose types have no example here fails that test too.
"""

from __future__ import annotations

from typing import Any

from rewards import schemas
from rewards.rules import Rules

ENROLLED_AT = "2026-11-20T17:02:11.418Z"
CARD_NUMBER = "7020418733569012"
PURCHASED_AT = "2026-11-25T10:00:00Z"
EXPIRES_AT = "2027-02-23T10:00:00Z"
REWARDS_ISSUED = [
    {"code": "WR3F9A61C0B27D4E85", "value_cents": 1000, "expires_at": EXPIRES_AT},
    {"code": "WR8C1D07E4A95B3F26", "value_cents": 1000, "expires_at": EXPIRES_AT},
]
SIGN_IN_URL = "https://rewards.westique.example/me/sign-in?token=3q2-7wQx9Vn0rK1fZ8sTt4yLbE6mHcJ5aU_dPiGoWlY"
PURCHASE = {
    "purchase_id": "pos-12-000981", "member_id": 1, "occurred_at": PURCHASED_AT,
    "store_id": "S012", "channel": "store", "currency": "USD",
    "lines": [{"sku": "JKT-221", "category": "apparel", "quantity": 1, "amount_cents": 31234}],
    "tenders": [{"method": "westique_credit_card", "amount_cents": 31234}],
}

EXAMPLES: dict[Any, Any] = {
    schemas.EnrollmentIn: {
        "name": "Ann Lee", "email": "ann@example.com", "phone": "+15551234567", "birth_date": "1990-04-01",
        "state": "CA", "terms_version": "2023-10-30", "notice_version": "2023-10-30", "channel": "online",
    },
    schemas.EnrolledOut: {"member_id": 1, "card_number": CARD_NUMBER, "status": "active",
                          "enrolled_at": ENROLLED_AT, "balance": {"points": 0, "point_cents": 0},
                          "carried_over": None},
    schemas.MemberOut: {
        "member_id": 1, "status": "active", "name": "Ann Lee", "email": "ann@example.com",
        "phone": "+15551234567", "birth_date": "1990-04-01", "state": "CA", "external_id": None,
        "enrolled_at": ENROLLED_AT, "cancelled_at": None, "erased_at": None,
        "consent": {"terms_version": "2023-10-30", "notice_version": "2023-10-30", "channel": "online",
                    "guardian_consent": False, "accepted_at": ENROLLED_AT, "withdrawn_at": None},
        "card_number": CARD_NUMBER, "merged_into": None,
        "changes": [
            {"kind": "corrected", "occurred_at": "2026-11-22T16:40:00Z", "fields": ["phone"],
             "counterpart_member_id": None, "actor": {"key_id": 3, "label": "guest services desk"}},
            {"kind": "enrolled", "occurred_at": ENROLLED_AT, "fields": None, "counterpart_member_id": None,
             "actor": {"key_id": 2, "label": "store 12"}},
        ],
    },
    schemas.CorrectionIn: {"phone": "(555) 123-4568"},
    schemas.MembersFound: {"items": [{"member_id": 1, "status": "active", "display_name": "Ann L.",
                                      "card_number": CARD_NUMBER, "points": 24}]},
    schemas.AdjustmentIn: {"adjustment_id": "desk-2026-11-30-0007", "point_cents": 5000, "reason": "goodwill",
                           "note": "jacket delivered a week late"},
    schemas.AdjustmentOut: {"adjustment_id": "desk-2026-11-30-0007", "member_id": 1, "point_cents": 5000,
                            "rewards_issued": [], "balance": {"points": 74, "point_cents": 7468}},
    schemas.MergeIn: {"from_member_id": 9},
    schemas.MergeOut: {"member_id": 1, "from_member_id": 9, "merged_at": "2026-12-01T11:15:00Z",
                       "point_cents_moved": 12000, "rewards_moved": ["WR5E2C90A4D1B7F368"],
                       "balance": {"points": 144, "point_cents": 14468}},
    schemas.KeyOut: {"key_id": 2, "scopes": ["checkout", "guest_services"], "member_id": None, "label": "store 12",
                     "created_at": "2026-11-01T08:00:00Z", "revoked_at": "2026-12-01T09:12:44Z"},
    schemas.KeysPage: {"items": [
        {"key_id": 1, "scopes": ["admin", "compliance"], "member_id": None, "label": "head office",
         "created_at": "2026-11-01T07:55:00Z", "revoked_at": None},
        {"key_id": 2, "scopes": ["checkout", "guest_services"], "member_id": None, "label": "store 12",
         "created_at": "2026-11-01T08:00:00Z", "revoked_at": None}], "next_cursor": None},
    schemas.CancelOut: {
        "member_id": 1, "status": "cancelled", "cancelled_at": "2026-12-01T09:30:00Z",
        "point_cents_forfeited": 2468, "rewards_voided": [r["code"] for r in REWARDS_ISSUED],
    },
    schemas.ErasureOut: {"member_id": 1, "status": "cancelled", "erased_at": "2026-12-02T09:30:00Z"},
    schemas.BalanceOut: {
        "member_id": 1, "status": "active", "points": 24, "point_cents": 2468, "points_to_next_reward": 276,
        "rewards": [{"code": r["code"], "value_cents": 1000, "status": "issued", "issued_at": PURCHASED_AT,
                     "expires_at": EXPIRES_AT} for r in REWARDS_ISSUED],
    },
    schemas.ActivityPage: {
        "member_id": 1,
        "entries": [
            {"entry_id": 4, "kind": "reward_issued", "point_cents": -30000, "occurred_at": PURCHASED_AT,
             "recorded_at": "2026-11-25T10:00:01.204Z", "purchase_id": "pos-12-000981",
             "reward_code": REWARDS_ISSUED[1]["code"], "rules_version": 1, "store_id": "S012",
             "actor": {"key_id": 2, "label": "store 12"}},
            {"entry_id": 3, "kind": "reward_issued", "point_cents": -30000, "occurred_at": PURCHASED_AT,
             "recorded_at": "2026-11-25T10:00:01.204Z", "purchase_id": "pos-12-000981",
             "reward_code": REWARDS_ISSUED[0]["code"], "rules_version": 1, "store_id": "S012",
             "actor": {"key_id": 2, "label": "store 12"}},
        ],
        "next_cursor": "YmVmb3JlOjM",
    },
    schemas.PurchaseIn: PURCHASE,
    schemas.PurchaseOut: {
        "purchase_id": "pos-12-000981", "member_id": 1, "qualifying_cents": 31234, "point_cents_earned": 62468,
        "bonus_point_cents": 31234, "rewards_issued": REWARDS_ISSUED, "rewards_redeemed": [],
        "balance": {"points": 24, "point_cents": 2468},
    },
    schemas.QuoteOut: {
        "purchase_id": "pos-12-000981", "member_id": 1, "rules_version": 1, "qualifying_cents": 31234,
        "card_cents": 31234, "point_cents_earned": 62468, "bonus_point_cents": 31234,
    },
    schemas.ReturnIn: {
        "return_id": "ret-12-000114", "occurred_at": "2026-11-28T15:20:00Z",
        "lines": [{"sku": "JKT-221", "quantity": 1, "amount_cents": 31234}],
    },
    schemas.ReturnOut: {
        # the jacket back: its 624.68 points would leave -600; both its rewards are voided first
        "return_id": "ret-12-000114", "purchase_id": "pos-12-000981", "point_cents_reversed": 62468,
        "balance": {"points": 0, "point_cents": 0}, "rewards_voided": [r["code"] for r in reversed(REWARDS_ISSUED)],
        "rewards_reinstated": [],
    },
    schemas.RewardStatusOut: {
        "code": REWARDS_ISSUED[0]["code"], "value_cents": 1000, "status": "issued", "issued_at": PURCHASED_AT,
        "expires_at": EXPIRES_AT, "member_id": 1, "redeemed_at": None,
    },
    schemas.RulesIn: {
        "effective_from": "2027-01-01T00:00:00Z", "points_per_dollar": 1, "card_bonus_points_per_dollar": 2,
        "reward_threshold_points": 300, "reward_value_cents": 1000, "reward_validity_days": 90,
        "excluded_categories": ["gift_card", "tax", "shipping"], "bonus_tenders": ["westique_credit_card"],
        "rounding": "carry", "reinstate_rewards_on_return": False,
    },
    Rules: {
        "version": 2, "effective_from": "2027-01-01T00:00:00Z", "points_per_dollar": 1,
        "card_bonus_points_per_dollar": 2, "reward_threshold_points": 300, "reward_value_cents": 1000,
        "reward_validity_days": 90, "excluded_categories": ["gift_card", "tax", "shipping"],
        "bonus_tenders": ["westique_credit_card"], "rounding": "carry", "reinstate_rewards_on_return": False,
    },
    schemas.SignInLinkIn: {"channel": "email"},
    schemas.SignInLinkOut: {"url": SIGN_IN_URL, "expires_at": "2026-11-30T18:15:00Z"},
    schemas.SubscriptionIn: {"channel": "email", "address": "ann@example.com", "source": "online", "member_id": 1},
    schemas.SubscriptionOut: {"subscription_id": 7, "status": "active"},
    schemas.UnsubscribeIn: {"channel": "email", "address": "ann@example.com"},
    schemas.UnsubscribedOut: {"status": "unsubscribed"},
    schemas.SmsInboundIn: {"from": "+15551234567", "body": "STOP"},
    schemas.SmsInboundOut: {
        "action": "unsubscribed", "keyword": "STOP", "detail": "the sender's texts are stopped",
        "reply": "Westique: you are unsubscribed and will receive no more texts. Reply START to resubscribe.",
    },
    schemas.OfferIn: {"code": "SPRING10", "value_cents": 1000, "channel": "email"},
    schemas.OfferOut: {"offer_id": 3, "code": "SPRING10", "value_cents": 1000, "channel": "email",
                       "created_at": "2026-12-01T08:00:00Z", "deliveries": 1840},
}


def register_examples(examples: dict[Any, Any]) -> None:
    """Examples of a plugin's types (incentives registers its own; rewards never imports it)."""
    EXAMPLES.update(examples)


def example_of(kind: Any) -> Any:
    """The example for a type, or None (a route whose types have none fails tests/test_openapi.py)."""
    return EXAMPLES.get(kind)
