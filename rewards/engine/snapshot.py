"""What a batch reads before it is planned, as the read statement returns it (one JSON object).

Every member a batch touches is locked before this is read, so it is the latest committed
state of those members and of everything that only changes with their lock held: their
rewards, the purchases and returns posted for them. Structs are mutable so the planner can
copy one and change the copy; the snapshot itself is never changed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec


class Member(msgspec.Struct, kw_only=True):
    id: int
    status: str
    point_cents: int
    rewards_issued: int
    cancelled_at: datetime | None = None
    merged_into: int | None = None
    erased_at: datetime | None = None


class Reward(msgspec.Struct, kw_only=True):
    id: int
    code: str
    member_id: int
    ordinal: int
    status: str
    value_cents: int
    cost_point_cents: int
    issued_at: datetime
    expires_at: datetime
    purchase_id: int | None = None
    adjustment_id: int | None = None
    redeemed_at: datetime | None = None
    redeemed_purchase_id: int | None = None
    voided_at: datetime | None = None
    expiry_notice_at: datetime | None = None


class Returnable(msgspec.Struct, kw_only=True):
    """A purchase named by a return in the batch, with its returns so far (oldest first)."""

    id: int
    ext_id: str
    member_id: int
    occurred_at: datetime
    rules_version: int
    lines: list[dict[str, Any]]
    tenders: list[dict[str, Any]]
    returns: list[list[dict[str, Any]]] = []
    """Each earlier return's lines as asked ({sku, quantity, amount_cents})."""


class IssuedBefore(msgspec.Struct):
    code: str
    value_cents: int
    expires_at: datetime


class PriorPurchase(msgspec.Struct, kw_only=True):
    """A purchase already posted under a purchase_id of the batch: enough to answer a replay."""

    ext_id: str
    fingerprint: str
    """As PostgreSQL writes a bytea in JSON: \\x and hex digits."""
    member_id: int
    qualifying_cents: int
    point_cents: int
    bonus_point_cents: int
    balance_after: int
    rewards_redeemed: list[str]
    issued: list[IssuedBefore] = []


class PriorReturn(msgspec.Struct, kw_only=True):
    ext_id: str
    purchase_ext_id: str
    fingerprint: str
    point_cents_reversed: int
    balance_after: int
    voided: list[str] = []
    reinstated: list[str] = []


class PriorAdjustment(msgspec.Struct, kw_only=True):
    ext_id: str
    fingerprint: str
    member_id: int
    point_cents: int
    balance_after: int
    issued: list[IssuedBefore] = []


class PriorMerge(msgspec.Struct, kw_only=True):
    """A merge already made of a duplicate named in the batch: its answer (`MergeOut`), as stored."""

    from_member_id: int
    answer: dict[str, Any]


class Cancellation(msgspec.Struct, kw_only=True):
    """How a member already cancelled was cancelled, to answer a cancel asked again."""

    member_id: int
    forfeited: int
    voided: list[str] = []


class Ids(msgspec.Struct):
    """Ids drawn from the tables' sequences for this batch's new rows."""

    purchases: list[int] = []
    returns: list[int] = []
    rewards: list[int] = []
    adjustments: list[int] = []


class Snapshot(msgspec.Struct, kw_only=True):
    now: datetime
    """The database's clock when the batch was read, after its locks: the moment of posting, and what
    its rows record as written at."""
    rules_version: int
    """The newest rules version stored: the rulebook's cache is fresh when it knows it."""
    members: list[Member] = []
    rewards: list[Reward] = []
    """Rewards tendered in the batch; the open rewards of the members whose postings may void or
    move them: returns', cancellations' and merges' (unexpired at the earliest moment a command of
    the batch is decided at: its `as_of`, or now); every issued reward of the members whose rewards
    are expired (open or past their expiry); and the rewards redeemed by the purchases its returns
    name (a return may reinstate them). A purchase reads only the rewards it tenders: a member's
    open rewards may be hundreds."""
    returnable: list[Returnable] = []
    prior_purchases: list[PriorPurchase] = []
    prior_returns: list[PriorReturn] = []
    prior_adjustments: list[PriorAdjustment] = []
    prior_merges: list[PriorMerge] = []
    offers: dict[str, int] = {}
    """The value of each offer named, by code."""
    cancellations: list[Cancellation] = []
    ids: Ids = msgspec.field(default_factory=Ids)


decode_snapshot = msgspec.json.Decoder(Snapshot).decode
