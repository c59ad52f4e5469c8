"""What the engine is asked to do: one command per posting, each saying who asked."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import msgspec

from rewards import errors
from rewards.idempotency import canonical, fingerprint
from rewards.schemas import AdjustmentIn, PurchaseIn, ReturnIn


@dataclass(frozen=True, slots=True)
class Actor:
    """Who made a change: an API key (a staff key or a guest token), a guest's page session,
    or the service itself (`system` names the command or job: import, demo, jobs)."""

    key_id: int | None = None
    session_id: int | None = None
    system: str | None = None

    def __post_init__(self) -> None:
        if sum(x is not None for x in (self.key_id, self.session_id, self.system)) != 1:
            raise ValueError("an actor is exactly one of a key, a session or the system")


def system(name: str) -> Actor:
    return Actor(system=name)


AS_OF = """`as_of`: the moment a command is decided at, when it is not now. The synthetic demo and
the tests of past periods post a program's past as it would have been posted live (a reward
then unexpired can be redeemed, a cancellation happens on its day). Never set from a request:
the API and `rewards import` post now. What the rows record as their `created_at` stays the
real time of writing."""


@dataclass(frozen=True, slots=True)
class Limits:
    """What protects the figures from a request: REWARDS_MAX_BACKDATE, REWARDS_MAX_PURCHASE_CENTS."""

    max_backdate: timedelta = timedelta(days=7)
    max_purchase_cents: int = 5_000_000
    clock_skew: timedelta = timedelta(minutes=10)
    """A register's clock may run this much ahead of ours; a posting from further ahead is refused."""


def in_utc(when: datetime) -> datetime:
    """The instant in UTC (the same instant written with any offset is the same request)."""
    try:
        return when.astimezone(UTC)
    except OverflowError:  # year 1 west of Greenwich, year 9999 east of it
        raise errors.ValidationFailed("occurred_at is outside the dates this program can hold",
                                      field="occurred_at") from None


@dataclass(frozen=True, slots=True)
class PostPurchase:
    purchase: PurchaseIn
    """The request, `occurred_at` in UTC (an instant written with another offset is the same
    instant, so the same request)."""
    body: bytes
    """The canonical request (sorted JSON), as stored and fingerprinted."""
    digest: bytes
    actor: Actor
    history: bool = False
    """Older than REWARDS_MAX_BACKDATE is allowed (`rewards import purchases --history`)."""
    as_of: datetime | None = None
    """Posted as if at this moment instead of now (see `AS_OF`)."""

    @classmethod
    def of(cls, purchase: PurchaseIn, actor: Actor, *, history: bool = False,
           as_of: datetime | None = None) -> PostPurchase:
        purchase = msgspec.structs.replace(purchase, occurred_at=in_utc(purchase.occurred_at))
        body = canonical(purchase)
        return cls(purchase, body, fingerprint(body), actor, history, as_of)


@dataclass(frozen=True, slots=True)
class PostReturn:
    purchase_id: str
    """The purchase's `purchase_id` (its key in the API), from the path."""
    ret: ReturnIn
    body: bytes
    digest: bytes
    actor: Actor
    history: bool = False
    """Older than REWARDS_MAX_BACKDATE is allowed."""
    as_of: datetime | None = None
    """Posted as if at this moment instead of now (see `AS_OF`)."""

    @classmethod
    def of(cls, purchase_id: str, ret: ReturnIn, actor: Actor, *, history: bool = False,
           as_of: datetime | None = None) -> PostReturn:
        ret = msgspec.structs.replace(ret, occurred_at=in_utc(ret.occurred_at))
        body = canonical(ret, purchase_id=purchase_id)
        return cls(purchase_id, ret, body, fingerprint(body), actor, history, as_of)


@dataclass(frozen=True, slots=True)
class Cancel:
    """Withdraw from the program: points forfeited, open rewards voided; asking again answers the same."""

    member_id: int
    actor: Actor
    as_of: datetime | None = None
    """Cancelled as if at this moment instead of now (see `AS_OF`)."""


@dataclass(frozen=True, slots=True)
class Adjust:
    """Add or take points with a reason (the desk, or opening balances imported): may issue rewards,
    may leave the balance negative; `adjustment_id` is the idempotency key."""

    member_id: int
    adjustment: AdjustmentIn
    body: bytes
    digest: bytes
    actor: Actor
    as_of: datetime | None = None
    """Adjusted as if at this moment instead of now (see `AS_OF`)."""

    @classmethod
    def of(cls, member_id: int, adjustment: AdjustmentIn, actor: Actor, *, as_of: datetime | None = None) -> Adjust:
        member_id = int(member_id)  # a path's MemberNumber is an int to JSON and to the database
        body = canonical(adjustment, member_id=member_id)
        return cls(member_id, adjustment, body, fingerprint(body), actor, as_of)


@dataclass(frozen=True, slots=True)
class Merge:
    """Fold the duplicate `from_member_id` into `member_id`: its balance and open rewards move,
    it becomes `merged`; asking again answers the same."""

    member_id: int
    from_member_id: int
    actor: Actor
    as_of: datetime | None = None
    """Merged as if at this moment instead of now (see `AS_OF`)."""


@dataclass(frozen=True, slots=True)
class CarryDebt:
    """A new enrollment takes over the negative balances of the guest's cancelled memberships
    (the same email or phone), so cancelling is no way out of a debt of points."""

    member_id: int
    from_member_ids: tuple[int, ...]
    actor: Actor
    as_of: datetime | None = None


@dataclass(frozen=True, slots=True)
class ExpireRewards:
    """Put a member's rewards that reached their expiry on the record (a `reward_expired` entry
    of no points, status `expired`, a `reward.expired` event), and write the `reward.expiring`
    notice of the active member's rewards that expire within `notice`, once each. What is
    already on the record is left as it is: asking again changes nothing."""

    member_id: int
    notice: timedelta
    """How long before its expiry a reward's `reward.expiring` event is written (REWARDS_EXPIRY_NOTICE)."""
    actor: Actor
    as_of: datetime | None = None
    """Decided as if at this moment instead of now (see `AS_OF`)."""


Command = PostPurchase | PostReturn | Cancel | Adjust | Merge | CarryDebt | ExpireRewards
