"""msgspec request and response structs of the HTTP API (v1).

Inbound structs are strict (unknown fields refused, frozen); sizes and amounts are bounded
so nothing can overflow a bigint or exhaust memory.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from rewards.rules import TENDER_METHODS, Category

# printable text, no control characters
Text = Annotated[str, Meta(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]
Key = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:\-]+$")]
Version = Annotated[str, Meta(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9._\-]+$")]
Cents = Annotated[int, Meta(ge=0, le=1_000_000_000)]  # at most $10M a line or a tender
MAX_PURCHASE_CENTS = 1_000_000_000  # and at most $10M a purchase, all lines together
Quantity = Annotated[int, Meta(ge=1, le=100_000)]
Email = Annotated[str, Meta(min_length=3, max_length=254, pattern=r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+$")]
# as typed: rewards.contacts normalizes (NFKC, trimmed) and checks them, and says what is wrong
EmailText = Annotated[str, Meta(min_length=1, max_length=300, pattern=r"^[^\x00-\x1f\x7f]+$",
                                description="An email address; compared trimmed, NFKC-normalized and case-folded.")]
Phone = Annotated[str, Meta(min_length=1, max_length=40, pattern=r"^[^\x00-\x1f\x7f]+$",
                            description="A phone number in any common form (`(213) 555-0123`, `+1 213 555 0123`); "
                                        "kept in E.164.")]
Aware = Annotated[datetime, Meta(tz=True)]
MemberId = Annotated[int, Meta(ge=1, le=2**62)]
Channel = Literal["store", "online"]
USState = Literal[
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "DC", "FL", "GA", "HI", "ID", "IL", "IN", "IA",
    "KS", "KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM",
    "NY", "NC", "ND", "OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA",
    "WV", "WI", "WY", "PR", "GU", "VI", "AS", "MP",
]


class Inbound(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    pass


class MemberNumber(int):
    """A member id in a path: 1 to 2^62 in plain ASCII digits, with no sign, no leading zero
    and no separator. `int()` would also read `025`, `+25`, `2_5`, `٢٥` and `２５` as 25:
    one member would have many addresses, and a cache or a log would not see them as one.
    Anything else is 422 `validation_error` on `member_id`."""


_MEMBER_NUMBER = re.compile(r"[1-9][0-9]{0,18}")


def member_number_or_none(text: object) -> MemberNumber | None:
    if isinstance(text, str) and _MEMBER_NUMBER.fullmatch(text) and int(text) <= 2**62:
        return MemberNumber(text)
    return None


def _decode_member_number(_: Any, value: object) -> MemberNumber:
    found = member_number_or_none(value)
    if found is None:
        raise ValueError("a member id is a whole number from 1 to 2^62 in plain digits (0-9), "
                         "with no sign and no leading zero")
    return found


# for Litestar's `type_decoders`: how a path parameter annotated MemberNumber is read
TYPE_DECODERS = [(lambda kind: kind is MemberNumber, _decode_member_number)]


# --- members -------------------------------------------------------------------------------


class EnrollmentIn(Inbound, frozen=True, kw_only=True):
    name: Text
    email: EmailText
    phone: Phone
    birth_date: date
    state: USState
    terms_version: Version
    notice_version: Version
    channel: Channel
    guardian_consent: bool = False
    external_id: Key | None = None


class ConsentOut(msgspec.Struct, kw_only=True):
    terms_version: str
    notice_version: str
    channel: str
    guardian_consent: bool
    accepted_at: datetime
    withdrawn_at: datetime | None = None


class ActorOut(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Who made a change: an API key (its id and label), a guest's page session, or the service
    itself (`system`: import, demo, jobs, migrated). Shown to staff, never to a guest."""

    key_id: int | None = None
    label: str | None = None
    session_id: int | None = None
    system: str | None = None


class MemberChangeOut(msgspec.Struct, kw_only=True):
    kind: Literal["enrolled", "corrected", "cancelled", "erased", "merged_out", "merged_in"]
    occurred_at: datetime
    fields: list[str] | None = None
    """For `corrected`: the fields changed (never their values)."""
    counterpart_member_id: int | None = None
    """For `merged_out`: the member it was merged into; for `merged_in`: the duplicate merged in."""
    actor: ActorOut | None = None
    """Who made the change (staff see it; null for a guest)."""


class MemberOut(msgspec.Struct, kw_only=True):
    member_id: int
    status: str
    name: str | None
    email: str | None
    phone: str | None
    """In E.164 (`+15551234567`)."""
    birth_date: date | None
    state: str
    external_id: str | None
    enrolled_at: datetime
    cancelled_at: datetime | None
    """When the membership ended: cancelled, or merged into another member."""
    erased_at: datetime | None
    consent: ConsentOut | None
    card_number: str | None = None
    merged_into: int | None = None
    """For a `merged` member: the member it was merged into."""
    changes: list[MemberChangeOut] = []
    """Enrollment, corrections, cancellation, erasure and merges, newest first, each with who made it."""


class CorrectionIn(Inbound, frozen=True, kw_only=True, omit_defaults=True):
    """The fields to correct (at least one); the others stay as they are."""

    name: Text | None = None
    email: EmailText | None = None
    phone: Phone | None = None
    birth_date: date | None = None
    state: USState | None = None
    guardian_consent: bool | None = None
    """For a corrected birth date that makes the guest 13 to 17: the guardian's consent."""


class MemberFound(msgspec.Struct, kw_only=True):
    member_id: int
    status: Literal["active", "cancelled"]
    display_name: str | None
    """The first name and the initial of the last ("Ann L."): no contact data is shown."""
    card_number: str | None
    points: int


class MembersFound(msgspec.Struct, kw_only=True):
    items: list[MemberFound]


AdjustmentReason = Literal["goodwill", "correction", "migration", "other"]


class AdjustmentIn(Inbound, frozen=True, kw_only=True):
    adjustment_id: Key
    """The idempotency key, like a purchase_id."""
    point_cents: Annotated[int, Meta(ge=-1_000_000_000, le=1_000_000_000)]
    """Points to add (positive) or take (negative), in point-cents; never 0."""
    reason: AdjustmentReason
    note: Annotated[str, Meta(min_length=1, max_length=500, pattern=r"^[^\x00-\x08\x0b-\x1f\x7f]+$")] | None = None
    """Why, in words, for the audit (shown to staff)."""


class AdjustmentLine(Inbound, frozen=True, kw_only=True):
    """A line of `rewards import adjustments`: an adjustment and its member, by id or by the retailer's own id."""

    adjustment_id: Key
    member_id: MemberId | None = None
    external_id: Key | None = None
    point_cents: Annotated[int, Meta(ge=-1_000_000_000, le=1_000_000_000)]
    reason: AdjustmentReason
    note: Annotated[str, Meta(min_length=1, max_length=500, pattern=r"^[^\x00-\x08\x0b-\x1f\x7f]+$")] | None = None

    def __post_init__(self) -> None:
        if (self.member_id is None) == (self.external_id is None):
            raise ValueError("name the member by member_id or by external_id, one of them")

    def adjustment(self) -> AdjustmentIn:
        return AdjustmentIn(adjustment_id=self.adjustment_id, point_cents=self.point_cents, reason=self.reason,
                            note=self.note)


class MergeIn(Inbound, frozen=True, kw_only=True):
    from_member_id: MemberId
    """The duplicate, folded into the member in the path."""


# --- purchases and returns -----------------------------------------------------------------


class LineIn(Inbound, frozen=True, kw_only=True):
    sku: Key
    category: Category
    quantity: Quantity
    amount_cents: Cents


class TenderIn(Inbound, frozen=True, kw_only=True):
    method: Literal[TENDER_METHODS]  # type: ignore[valid-type]
    amount_cents: Cents
    reward_code: Key | None = None


class OfferUseIn(Inbound, frozen=True, kw_only=True):
    code: Key
    discount_cents: Cents


class PurchaseIn(Inbound, frozen=True, kw_only=True):
    purchase_id: Key
    member_id: MemberId
    occurred_at: Aware
    store_id: Key
    channel: Channel
    currency: Annotated[str, Meta(min_length=3, max_length=3)] = "USD"
    lines: Annotated[list[LineIn], Meta(min_length=1, max_length=500)]
    tenders: Annotated[list[TenderIn], Meta(min_length=1, max_length=20)]
    offers: Annotated[list[OfferUseIn], Meta(max_length=20)] = []

    def __post_init__(self) -> None:
        # 500 lines of $10M would issue millions of rewards in one posting (minutes of work, a
        # response of hundreds of MB): a purchase is at most what one line may be
        if sum(line.amount_cents for line in self.lines) > MAX_PURCHASE_CENTS:
            raise ValueError(f"a purchase is at most {MAX_PURCHASE_CENTS} cents in all")


class RewardIssuedOut(msgspec.Struct, kw_only=True):
    code: str
    value_cents: int
    expires_at: datetime


class BalanceBrief(msgspec.Struct, kw_only=True):
    points: int
    point_cents: int


class PurchaseOut(msgspec.Struct, kw_only=True):
    purchase_id: str
    member_id: int
    qualifying_cents: int
    point_cents_earned: int
    bonus_point_cents: int
    rewards_issued: list[RewardIssuedOut]
    rewards_redeemed: list[str]
    balance: BalanceBrief


class QuoteOut(msgspec.Struct, kw_only=True):
    purchase_id: str
    member_id: int
    rules_version: int
    qualifying_cents: int
    card_cents: int
    point_cents_earned: int
    bonus_point_cents: int


class ReturnLineIn(Inbound, frozen=True, kw_only=True):
    sku: Key
    quantity: Annotated[int, Meta(ge=0, le=100_000)]
    """Units brought back; 0 makes the line a price adjustment of `amount_cents`."""
    amount_cents: Cents
    """What the register refunds. The points taken back follow the units, whatever is refunded."""


class ReturnIn(Inbound, frozen=True, kw_only=True):
    return_id: Key
    occurred_at: Aware
    lines: Annotated[list[ReturnLineIn], Meta(min_length=1, max_length=500)]


class ReturnOut(msgspec.Struct, kw_only=True):
    return_id: str
    purchase_id: str
    point_cents_reversed: int
    balance: BalanceBrief
    rewards_voided: list[str] = []
    """Open rewards voided so the balance would not go below zero, newest first."""
    rewards_reinstated: list[str] = []
    """Rewards the purchase redeemed, issued again because it came back whole (the rules'
    `reinstate_rewards_on_return`), with their original expiry."""


# --- balances, rewards, activity ---------------------------------------------------------


class RewardOut(msgspec.Struct, kw_only=True):
    code: str
    value_cents: int
    status: Literal["issued", "redeemed", "expired", "voided"]
    issued_at: datetime
    expires_at: datetime


class BalanceOut(msgspec.Struct, kw_only=True):
    member_id: int
    status: str
    points: int
    point_cents: int
    points_to_next_reward: int
    rewards: list[RewardOut]


class RewardStatusOut(RewardOut, kw_only=True):
    member_id: int
    redeemed_at: datetime | None = None


class ActivityEntry(msgspec.Struct, kw_only=True):
    entry_id: int
    kind: str
    point_cents: int
    occurred_at: datetime
    recorded_at: datetime
    purchase_id: str | None = None
    return_id: str | None = None
    reward_code: str | None = None
    rules_version: int | None = None
    store_id: str | None = None
    """The store of the purchase the entry belongs to."""
    adjustment_id: str | None = None
    reason: str | None = None
    """For an `adjustment`: goodwill, correction, migration or other."""
    note: str | None = None
    """For an `adjustment`: the note staff wrote (staff only)."""
    counterpart_member_id: int | None = None
    """For a merge, a moved reward or a carried debt: the other member."""
    actor: ActorOut | None = None
    """Who made the entry (staff only; null for a guest)."""


class ActivityPage(msgspec.Struct, kw_only=True):
    member_id: int
    entries: list[ActivityEntry]
    next_cursor: str | None


class CancelOut(msgspec.Struct, kw_only=True):
    member_id: int
    status: str
    cancelled_at: datetime
    point_cents_forfeited: int
    rewards_voided: list[str]


class ErasureOut(msgspec.Struct, kw_only=True):
    member_id: int
    status: str
    erased_at: datetime


class CarriedOver(msgspec.Struct, kw_only=True):
    point_cents: int
    """The negative balance the guest's cancelled memberships left, now this member's."""
    from_member_ids: list[int]


class EnrolledOut(msgspec.Struct, kw_only=True):
    member_id: int
    card_number: str
    """The number on the member's card (16 digits, the last a check digit), which a register scans."""
    status: str
    enrolled_at: datetime
    balance: BalanceBrief
    """What the member starts from: 0, or a debt carried over (below)."""
    carried_over: CarriedOver | None = None
    """A guest who cancelled with a negative balance and enrolls again with the same email or
    phone starts from that balance: how much, and from which memberships."""


class AdjustmentOut(msgspec.Struct, kw_only=True):
    adjustment_id: str
    member_id: int
    point_cents: int
    rewards_issued: list[RewardIssuedOut]
    balance: BalanceBrief


class MergeOut(msgspec.Struct, kw_only=True):
    member_id: int
    from_member_id: int
    merged_at: datetime
    point_cents_moved: int
    """The duplicate's balance, now this member's (negative when it owed points)."""
    rewards_moved: list[str]
    """The duplicate's open rewards, now this member's, with their codes and expiry."""
    balance: BalanceBrief


class KeyOut(msgspec.Struct, kw_only=True):
    key_id: int
    scopes: list[str]
    member_id: int | None
    """For a guest token: its member."""
    label: str | None
    created_at: datetime
    revoked_at: datetime | None


class KeysPage(msgspec.Struct, kw_only=True):
    items: list[KeyOut]
    """Oldest first; the tokens themselves are never shown again."""
    next_cursor: str | None


class SignInLinkIn(Inbound, frozen=True, kw_only=True):
    channel: Literal["email", "sms"] = "email"
    """Where the retailer's sender delivers the link: the member's email, or a text to their phone."""


class SignInLinkOut(msgspec.Struct, kw_only=True):
    url: str
    """The link to the guest's page: it signs in once, until `expires_at`."""
    expires_at: datetime


class RulesIn(Inbound, frozen=True, kw_only=True):
    effective_from: Aware | None = None
    points_per_dollar: Annotated[int, Meta(ge=0, le=100)] = 1
    card_bonus_points_per_dollar: Annotated[int, Meta(ge=0, le=100)] = 1
    reward_threshold_points: Annotated[int, Meta(ge=1, le=1_000_000)] = 300
    reward_value_cents: Annotated[int, Meta(ge=1, le=1_000_000)] = 1000
    reward_validity_days: Annotated[int, Meta(ge=1, le=3650)] = 90
    excluded_categories: Annotated[list[Category], Meta(max_length=100)] = msgspec.field(
        default_factory=lambda: ["gift_card", "tax", "shipping"])
    bonus_tenders: Annotated[list[Literal[TENDER_METHODS]], Meta(max_length=10)] = msgspec.field(  # type: ignore[valid-type]
        default_factory=lambda: ["westique_credit_card"])
    rounding: Literal["carry", "floor_per_purchase"] = "carry"
    reinstate_rewards_on_return: bool = False


# --- mailing list and Guest Connect (texts) ------------------------------------------------

MailChannel = Literal["email", "sms"]
# checked against the channel's shape by rewards.mailing.normalize_address
Address = Annotated[str, Meta(min_length=1, max_length=254)]


class SubscriptionIn(Inbound, frozen=True, kw_only=True):
    channel: MailChannel
    address: Address
    source: Channel
    member_id: MemberId | None = None


class SubscriptionOut(msgspec.Struct, kw_only=True):
    subscription_id: int
    status: Literal["active"] = "active"


class UnsubscribeIn(Inbound, frozen=True, kw_only=True):
    channel: MailChannel
    address: Address


class UnsubscribedOut(msgspec.Struct, kw_only=True):
    status: Literal["unsubscribed"] = "unsubscribed"


class SmsInboundIn(Inbound, frozen=True, kw_only=True):
    sender: Address = msgspec.field(name="from")
    body: Annotated[str, Meta(max_length=1600)]  # ten concatenated SMS segments


class SmsInboundOut(msgspec.Struct, kw_only=True):
    action: Literal["unsubscribed", "renewed", "unchanged", "help", "refused", "ignored"]
    """What the text did: `unchanged` is a keyword whose outcome already held, `help` a HELP or
    INFO answered, `refused` a START or UNSTOP where texts may not be restarted (`detail` says why)."""
    keyword: str | None
    """The keyword recognised (upper case, `OPT OUT` as `OPTOUT`), or null for any other text."""
    detail: str
    reply: str | None
    """The text the SMS gateway should send back to the guest, or null for none."""


class OfferIn(Inbound, frozen=True, kw_only=True):
    code: Key
    value_cents: Annotated[int, Meta(ge=1, le=1_000_000_000)]
    channel: MailChannel


class OfferOut(msgspec.Struct, kw_only=True):
    offer_id: int
    code: str
    value_cents: int
    channel: str
    created_at: datetime
    deliveries: int
    """Subscriptions the offer was sent to: every active one of its channel when it was made."""
