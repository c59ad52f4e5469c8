"""Request and response structs of the consumer's requests and of erasure (strict inbound, as
`rewards.schemas`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from rewards.schemas import (
    Address,
    Aware,
    Inbound,
    MailChannel,
    MemberId,
    RewardIssuedOut,
)

RequestType = Literal["access", "delete", "correct"]
RequestStatus = Literal["open", "completed", "denied"]
RequestChannel = Literal["online", "phone", "email", "mail", "store", "agent"]
"""How the request reached the business (11 CCR §7101(b): "the manner in which the request was
made"): the web form, Guest Services' phone line, an email, a letter, a store, an authorized agent."""
VerificationMethod = Literal["signed_in", "email_code", "sms_code", "in_person_id", "matched_data_points",
                             "authorized_agent", "not_verified"]
Outcome = Literal["in_whole", "in_part"]
# free text staff write: one paragraph, printable (a newline is fine, a NUL is not)
Note = Annotated[str, Meta(min_length=1, max_length=2000, pattern=r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]+$")]
# an email or phone as people type it (spaces around, any case, any common form of a number): checked
# and normalized as the mailing list does (rewards.mailing.normalize_address)
Phone = Annotated[str, Meta(min_length=1, max_length=32)]


class VerificationIn(Inbound, frozen=True, kw_only=True):
    method: VerificationMethod
    """How the consumer's identity was verified (11 CCR §7060-§7063): `signed_in` (their account),
    `email_code` or `sms_code` (a code sent to the email or phone on file), `in_person_id` (an ID
    shown at a store), `matched_data_points` (details on file matched, §7062), `authorized_agent`
    (an agent with the consumer's signed permission, §7063), or `not_verified` (it could not be:
    file the request, then deny it)."""
    verified_at: Aware | None = None
    """When it was verified; null exactly when `method` is `not_verified`."""

    def __post_init__(self) -> None:
        if (self.method == "not_verified") != (self.verified_at is None):
            raise ValueError("verified_at is required with a verification method, and null with not_verified")
        if self.verified_at is not None and not _plausible(self.verified_at):
            raise ValueError("verified_at is not a time this request could have been verified at")


def _plausible(moment: datetime) -> bool:
    """Not before the CCPA took effect (2020), not in the future (clocks may differ by minutes)."""
    try:
        utc = moment.astimezone(UTC)
    except OverflowError:  # year 1 west of Greenwich, year 9999 east of it
        return False
    return datetime(2020, 1, 1, tzinfo=UTC) <= utc <= datetime.now(UTC) + timedelta(minutes=10)


class PrivacyRequestIn(Inbound, frozen=True, kw_only=True):
    type: RequestType
    """`access` (a request to know), `delete` or `correct`."""
    member_id: MemberId | None = None
    email: Address | None = None  # as people type it; normalized
    phone: Phone | None = None
    """The consumer, by exactly one of `member_id`, `email` or `phone`. An email or phone that
    belongs to a member (not erased) is recorded as that member's request, and the address is not
    kept; one that belongs to no member (a subscriber, or someone unknown) is kept while the
    request is open, so staff can act on it."""
    channel: RequestChannel
    verification: VerificationIn
    details: Note | None = None
    """What the consumer asked for, in a few words ("correct my birth date"). Cleared when the
    member is erased: write no more personal data here than the request needs."""

    def __post_init__(self) -> None:
        if sum(x is not None for x in (self.member_id, self.email, self.phone)) != 1:
            raise ValueError("name the consumer by exactly one of member_id, email or phone")


class VerificationOut(msgspec.Struct, kw_only=True):
    method: str
    verified_at: datetime | None


class PrivacyRequestOut(msgspec.Struct, kw_only=True):
    request_id: int
    type: str
    status: RequestStatus
    member_id: int | None
    subject: Literal["member", "email", "phone"]
    """What the request named the consumer by."""
    address: str | None
    """The email or phone the request named, when it names no member; null once it is closed
    or that address is erased."""
    channel: str
    verification: VerificationOut
    details: str | None
    received_at: datetime
    confirm_by: datetime
    """Receipt must be confirmed by then: the end of the 10th business day after the day of
    receipt (weekdays except US federal holidays, in the program's time zone)."""
    due_at: datetime
    """The response is due by then: the end of the 45th calendar day, the day of receipt counted
    as the first."""
    confirmed_at: datetime | None
    closed_at: datetime | None
    """When it was completed or denied: the date of the response."""
    outcome: Outcome | None
    """For a completed request: complied with `in_whole` or `in_part`."""
    reason: str | None
    """Why it was denied, or what was not done and why for one complied with in part."""


class PrivacyRequestPage(msgspec.Struct, kw_only=True):
    items: list[PrivacyRequestOut]
    next_cursor: str | None


class CompleteIn(Inbound, frozen=True, kw_only=True):
    outcome: Outcome = "in_whole"
    reason: Note | None = None
    """Required when only part of the request was complied with: what was not done, and why."""

    def __post_init__(self) -> None:
        if self.outcome == "in_part" and self.reason is None:
            raise ValueError("a request complied with in part needs the reason: what was not done, and why")


class DenyIn(Inbound, frozen=True, kw_only=True):
    reason: Note
    """The basis for the denial (11 CCR §7101(b)), kept with the record for 24 months: write the
    basis ("could not verify the requestor's identity"), not the consumer's personal data."""


# --- erasure ------------------------------------------------------------------------------------


class ErasureScheduledOut(msgspec.Struct, kw_only=True):
    member_id: int
    status: Literal["scheduled"] = "scheduled"
    requested_at: datetime
    scheduled_for: datetime
    """When the personal data will be erased; it never moves, however often it is asked for."""
    point_cents_to_forfeit: int
    """The points that would be forfeited if the erasure happened now (in hundredths of a point)."""
    rewards_to_void: list[RewardIssuedOut]
    """The rewards that would be voided if the erasure happened now: the guest may still use them
    until `scheduled_for`."""


class SubscriberErasureIn(Inbound, frozen=True, kw_only=True):
    channel: MailChannel
    address: Address


class SubscriberErasedOut(msgspec.Struct, kw_only=True):
    channel: str
    subscriptions_erased: int
    """Subscriptions of the address erased now: 1, or 0 when it had none (or was erased before)."""
    opted_out: bool
    """Whether the address is kept opted out (as a keyed hash): until a new opt-in, nothing may make
    a subscription of it active again."""
