"""The rows a plan writes: one struct per kind of row, its fields named as the table's columns.

`posting.WRITES` turns each list of them into one part of the write statement (an INSERT,
or an UPDATE by key, from `jsonb_populate_recordset` over the table's own row type), so a
new column is a field here and a column in `rewards/tables.py`; nothing else is aligned by
hand. tests/engine/test_rows.py holds every field to a column of its table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec

from rewards.engine.commands import Actor


def bytea(digest: bytes) -> str:
    """A bytea as PostgreSQL reads it from JSON text."""
    return "\\x" + digest.hex()


class Purchase(msgspec.Struct, kw_only=True):
    id: int
    ext_id: str
    member_id: int
    occurred_at: datetime
    rules_version: int
    fingerprint: str
    body: msgspec.Raw
    qualifying_cents: int
    card_cents: int
    point_cents: int
    bonus_point_cents: int
    balance_after: int
    rewards_redeemed: list[str]
    store_id: str
    created_at: datetime


class Return(msgspec.Struct, kw_only=True):
    id: int
    ext_id: str
    purchase_id: int
    member_id: int
    occurred_at: datetime
    fingerprint: str
    body: msgspec.Raw
    point_cents_reversed: int
    balance_after: int
    created_at: datetime


class Reward(msgspec.Struct, kw_only=True):
    """A reward as it stands after the batch: a new one is inserted so, an old one updated so."""

    id: int
    code: str
    member_id: int
    ordinal: int
    value_cents: int
    cost_point_cents: int
    issued_at: datetime
    expires_at: datetime
    purchase_id: int | None = None
    """The purchase that issued it, or (for an adjustment) None."""
    adjustment_id: int | None = None
    status: str = "issued"
    redeemed_at: datetime | None = None
    redeemed_purchase_id: int | None = None
    voided_at: datetime | None = None
    expiry_notice_at: datetime | None = None


REWARD_STATE = ("status", "redeemed_at", "redeemed_purchase_id", "voided_at", "member_id", "ordinal",
                "expiry_notice_at")
"""What a posting may change of a reward already written (a merge moves it: its member and ordinal)."""


class Entry(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A ledger entry: why a member's points or a reward changed, and who changed them."""

    member_id: int
    kind: str
    point_cents: int
    occurred_at: datetime
    created_at: datetime
    purchase_id: int | None = None
    return_id: int | None = None
    reward_id: int | None = None
    rules_version: int | None = None
    actor_key_id: int | None = None
    actor_session_id: int | None = None
    actor_system: str | None = None
    adjustment_id: int | None = None
    counterpart_member_id: int | None = None


class Member(msgspec.Struct, kw_only=True):
    """What postings change of a member: the balance cache, the reward count, the status."""

    id: int
    status: str
    point_cents: int
    rewards_issued: int
    cancelled_at: datetime | None = None
    merged_into: int | None = None


class Adjustment(msgspec.Struct, kw_only=True):
    id: int
    ext_id: str
    member_id: int
    point_cents: int
    reason: str
    note: str | None
    fingerprint: str
    body: msgspec.Raw
    balance_after: int
    occurred_at: datetime
    created_at: datetime


class MemberChange(msgspec.Struct, kw_only=True):
    """Who changed a member, and how (`rewards.tables.member_changes`)."""

    member_id: int
    kind: str
    occurred_at: datetime
    created_at: datetime
    details: dict[str, Any] = {}
    counterpart_member_id: int | None = None
    actor_key_id: int | None = None
    actor_session_id: int | None = None
    actor_system: str | None = None


class Event(msgspec.Struct, kw_only=True):
    """What happened, for the feed and the webhooks (rewards/events/): no personal data."""

    type: str
    member_id: int | None
    occurred_at: datetime
    data: dict[str, Any]
    created_at: datetime


class ConsentWithdrawn(msgspec.Struct, kw_only=True):
    member_id: int
    withdrawn_at: datetime


class KeysRevoked(msgspec.Struct, kw_only=True):
    """A cancellation ends every guest token of the member (api_keys, by member_id)."""

    member_id: int
    revoked_at: datetime


class SessionsEnded(msgspec.Struct, kw_only=True):
    """A cancellation ends every page session of the member (guest_sessions, by member_id)."""

    member_id: int
    ended_at: datetime


def entry(member_id: int, kind: str, point_cents: int, when: datetime, actor: Actor, now: datetime, *,
          purchase_id: int | None = None, return_id: int | None = None, reward_id: int | None = None,
          rules_version: int | None = None, adjustment_id: int | None = None,
          counterpart_member_id: int | None = None) -> Entry:
    return Entry(member_id=member_id, kind=kind, point_cents=point_cents, occurred_at=when, purchase_id=purchase_id,
                 return_id=return_id, reward_id=reward_id, rules_version=rules_version, actor_key_id=actor.key_id,
                 actor_session_id=actor.session_id, actor_system=actor.system, created_at=now,
                 adjustment_id=adjustment_id, counterpart_member_id=counterpart_member_id)


def change(member_id: int, kind: str, when: datetime, actor: Actor, now: datetime, *,
           details: dict[str, Any] | None = None, counterpart_member_id: int | None = None) -> MemberChange:
    return MemberChange(member_id=member_id, kind=kind, occurred_at=when, created_at=now, details=details or {},
                        counterpart_member_id=counterpart_member_id, actor_key_id=actor.key_id,
                        actor_session_id=actor.session_id, actor_system=actor.system)


@dataclass(slots=True)
class Plan:
    """Everything a batch writes, in the order the write statement takes it."""

    purchases: list[Purchase] = field(default_factory=list)
    returns: list[Return] = field(default_factory=list)
    adjustments: list[Adjustment] = field(default_factory=list)
    new_rewards: dict[int, Reward] = field(default_factory=dict)
    changed_rewards: dict[int, Reward] = field(default_factory=dict)
    entries: list[Entry] = field(default_factory=list)
    members: dict[int, Member] = field(default_factory=dict)
    consents_withdrawn: list[ConsentWithdrawn] = field(default_factory=list)
    keys_revoked: list[KeysRevoked] = field(default_factory=list)
    sessions_ended: list[SessionsEnded] = field(default_factory=list)
    member_changes: list[MemberChange] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
