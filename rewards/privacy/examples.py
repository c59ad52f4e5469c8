"""Examples of the privacy routes' types for the OpenAPI document (decoded strictly by
tests/test_openapi.py): Ann Lee, member 1 of the README's walk-through, asks to delete her data
on Tuesday, December 1, 2026, by phone; the erasure is scheduled a day ahead."""

from __future__ import annotations

from typing import Any

from rewards.examples import REWARDS_ISSUED, register_examples
from rewards.privacy import schemas

RECEIVED_AT = "2026-12-01T17:30:00Z"
REQUEST = {
    "type": "delete", "member_id": 1, "channel": "phone",
    "verification": {"method": "sms_code", "verified_at": "2026-12-01T17:28:40Z"},
    "details": "delete my rewards account",
}
REQUEST_OUT = {
    "request_id": 12, "type": "delete", "status": "open", "member_id": 1, "subject": "member", "address": None,
    "channel": "phone", "verification": {"method": "sms_code", "verified_at": "2026-12-01T17:28:40Z"},
    "details": "delete my rewards account", "received_at": RECEIVED_AT,
    # 10 business days after Tuesday Dec 1 (no federal holiday in between), and the 45th day
    "confirm_by": "2026-12-15T23:59:59-08:00", "due_at": "2027-01-14T23:59:59-08:00",
    "confirmed_at": "2026-12-01T17:31:02Z", "closed_at": None, "outcome": None, "reason": None,
}

EXAMPLES: dict[Any, Any] = {
    schemas.PrivacyRequestIn: REQUEST,
    schemas.PrivacyRequestOut: REQUEST_OUT,
    schemas.PrivacyRequestPage: {"items": [REQUEST_OUT], "next_cursor": "YmVmb3JlOjEy"},
    schemas.CompleteIn: {"outcome": "in_whole"},
    schemas.DenyIn: {"reason": "the requestor's identity could not be verified"},
    schemas.ErasureScheduledOut: {
        "member_id": 1, "status": "scheduled", "requested_at": "2026-12-01T17:35:00Z",
        "scheduled_for": "2026-12-02T17:35:00Z", "point_cents_to_forfeit": 2468, "rewards_to_void": REWARDS_ISSUED,
    },
    schemas.SubscriberErasureIn: {"channel": "email", "address": "ann@example.com"},
    schemas.SubscriberErasedOut: {"channel": "email", "subscriptions_erased": 1, "opted_out": True},
}


def register() -> None:
    register_examples(EXAMPLES)
