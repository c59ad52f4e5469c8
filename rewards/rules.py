"""The program's rules and the earning arithmetic: pure functions over integers, no I/O.

Points are kept in point-cents (hundredths of a point): $12.34 earns 1234 point-cents.
Everything in the service that computes points or rewards (the posting engine, the quote,
`rewards verify`) calls these functions, so the arithmetic exists once. The tests' reference
model does not: it has arithmetic of its own, or it could only catch plumbing bugs.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Annotated, Literal, NamedTuple

import msgspec
from msgspec import Meta

REWARD_TENDER = "reward"
TENDER_METHODS = (
    "westique_credit_card",
    "credit_card",
    "debit_card",
    "cash",
    "gift_card",
    REWARD_TENDER,
    "other",
)

PositiveInt = Annotated[int, Meta(ge=1, le=1_000_000)]
NonNegativeInt = Annotated[int, Meta(ge=0, le=1_000_000)]
Category = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[a-z0-9_]+$")]


class Rules(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One version of the program's rules, as stored in `program_rules`."""

    version: int = 0
    effective_from: datetime | None = None
    points_per_dollar: NonNegativeInt = 1
    card_bonus_points_per_dollar: NonNegativeInt = 1
    reward_threshold_points: PositiveInt = 300
    reward_value_cents: PositiveInt = 1000
    reward_validity_days: Annotated[int, Meta(ge=1, le=3650)] = 90
    excluded_categories: Annotated[tuple[Category, ...], Meta(max_length=100)] = ("gift_card", "tax", "shipping")
    bonus_tenders: Annotated[tuple[Literal[TENDER_METHODS], ...], Meta(max_length=10)] = ("westique_credit_card",)  # type: ignore[valid-type]
    rounding: Literal["carry", "floor_per_purchase"] = "carry"
    reinstate_rewards_on_return: bool = False
    """A return that brings back a whole purchase makes each reward it redeemed `issued` again,
    with its original expiry."""

    @property
    def reward_threshold_point_cents(self) -> int:
        return self.reward_threshold_points * 100


DEFAULT_RULES = Rules(version=1)


class Earning(msgspec.Struct, frozen=True):
    """What one purchase earns under one version of the rules."""

    qualifying_cents: int
    card_cents: int
    base_point_cents: int
    bonus_point_cents: int

    @property
    def point_cents(self) -> int:
        return self.base_point_cents + self.bonus_point_cents


def earning(rules: Rules, lines: Iterable[tuple[str, int]], tenders: Iterable[tuple[str, int]]) -> Earning:
    """Earning for `lines` as (category, amount_cents) paid with `tenders` as (method, amount_cents).

    Only lines outside the excluded categories qualify, and only the part paid with
    something other than a reward; the card bonus applies to the card-paid part of that.
    """
    # plain loops, one pass over the tenders: the big demo computes this ten million times
    excluded = rules.excluded_categories
    eligible = 0
    for category, amount in lines:
        if category not in excluded:
            eligible += amount
    bonus_methods = rules.bonus_tenders
    earning_tenders = bonus_tenders = 0
    for method, amount in tenders:
        if method != REWARD_TENDER:
            earning_tenders += amount
        if method in bonus_methods:
            bonus_tenders += amount
    qualifying = max(0, min(eligible, earning_tenders))
    card = max(0, min(qualifying, bonus_tenders))
    base_dollars, bonus_dollars = qualifying, card
    if rules.rounding == "floor_per_purchase":
        base_dollars, bonus_dollars = qualifying // 100 * 100, card // 100 * 100
    return Earning(qualifying, card, base_dollars * rules.points_per_dollar,
                   bonus_dollars * rules.card_bonus_points_per_dollar)


class BoughtLine(NamedTuple):
    """A purchase line as bought."""

    sku: str
    category: str
    quantity: int
    amount_cents: int


class ReturnedLine(NamedTuple):
    """A return's line as the register sends it: `quantity` 0 is a price adjustment."""

    sku: str
    quantity: int
    amount_cents: int
    """What the register refunds: recorded and capped, but it is the units that carry the points."""


class LineLeft(NamedTuple):
    """What is left of a bought line after returns: its units, and the value that still earns."""

    units: int
    value_cents: int


class Remaining(NamedTuple):
    """A purchase after its returns so far: each line's units and value, and the refunds by sku."""

    lines: tuple[LineLeft, ...]
    refunded: tuple[tuple[str, int], ...] = ()

    def refunded_cents(self, sku: str) -> int:
        return dict(self.refunded).get(sku, 0)


class ReturnRefused(ValueError):
    """A return asks for more than is left of a sku (units or refund), or a sku never bought."""

    def __init__(self, sku: str, reason: str) -> None:
        super().__init__(reason)
        self.sku = sku


def nothing_returned(lines: Sequence[BoughtLine]) -> Remaining:
    return Remaining(tuple(LineLeft(line.quantity, line.amount_cents) for line in lines))


def take_back(lines: Sequence[BoughtLine], remaining: Remaining, returned: Iterable[ReturnedLine]) -> Remaining:
    """`remaining` after one more return.

    Points follow the units: a line's value is spread over its units, the remainder of the
    division on the last unit, so returning k of the n units left takes k times the unit
    value, and returning the last units takes whatever value is left. A line with
    `quantity` 0 is a price adjustment: it takes its `amount_cents` off the value left,
    units untouched. Several lines of one sku are taken in the order they were bought.
    Refunds are only recorded: together they may not exceed what the sku cost.
    """
    left = list(remaining.lines)
    refunded = dict(remaining.refunded)
    for asked in returned:
        rows = [i for i, line in enumerate(lines) if line.sku == asked.sku]
        if not rows:
            raise ReturnRefused(asked.sku, f"sku {asked.sku} was not bought in this purchase")
        paid = sum(lines[i].amount_cents for i in rows)
        if refunded.get(asked.sku, 0) + asked.amount_cents > paid:
            raise ReturnRefused(asked.sku, f"sku {asked.sku}: {refunded.get(asked.sku, 0)} of its {paid} cents "
                                           f"refunded before; {asked.amount_cents} more is too much")
        refunded[asked.sku] = refunded.get(asked.sku, 0) + asked.amount_cents
        if asked.quantity == 0:
            cut = asked.amount_cents
            for i in rows:
                taken = min(cut, left[i].value_cents)
                left[i] = LineLeft(left[i].units, left[i].value_cents - taken)
                cut -= taken
            continue
        units_left = sum(left[i].units for i in rows)
        if asked.quantity > units_left:
            raise ReturnRefused(asked.sku, f"sku {asked.sku}: {units_left} units left to return, "
                                           f"{asked.quantity} asked")
        wanted = asked.quantity
        for i in rows:
            units, value = left[i]
            k = min(wanted, units)
            if k == 0:
                continue
            taken = value if k == units else value // units * k
            left[i] = LineLeft(units - k, value - taken)
            wanted -= k
    return Remaining(tuple(left), tuple(sorted(refunded.items())))


def earning_left(rules: Rules, lines: Sequence[BoughtLine], tenders: Sequence[tuple[str, int]],
                 remaining: Remaining) -> Earning:
    """The purchase's earning as if only what is left had been bought, each tender keeping its
    share of what is left (rounded down): nothing left earns nothing."""
    total = sum(line.amount_cents for line in lines)
    value = sum(left.value_cents for left in remaining.lines)
    return earning(rules, [(line.category, left.value_cents) for line, left in zip(lines, remaining.lines, strict=True)],
                   [(method, amount * value // total if total else 0) for method, amount in tenders])


def point_cents_reversed(rules: Rules, lines: Sequence[BoughtLine], tenders: Sequence[tuple[str, int]],
                         before: Remaining, after: Remaining) -> int:
    """What a return takes back: the earning of what was left before it less the earning of what
    is left after it. Summed over returns that bring back every unit, this is the whole earning."""
    return (earning_left(rules, lines, tenders, before).point_cents
            - earning_left(rules, lines, tenders, after).point_cents)


def rewards_due(balance_point_cents: int, rules: Rules) -> int:
    """How many rewards a posting issues at this balance: none while below the threshold."""
    threshold = rules.reward_threshold_point_cents
    return balance_point_cents // threshold if balance_point_cents >= threshold else 0


def reward_expires_at(issued_at: datetime, rules: Rules) -> datetime:
    """A reward expires `reward_validity_days` whole days of 24 hours after it is issued (UTC
    arithmetic: the database session's time zone plays no part)."""
    return issued_at + timedelta(days=rules.reward_validity_days)


def whole_points(point_cents: int) -> int:
    """The balance as shown: whole points, rounded down."""
    return point_cents // 100


def points_to_next_reward(point_cents: int, rules: Rules) -> int:
    """Whole points still to earn before the next reward (rounded up: a fraction still counts)."""
    missing = rules.reward_threshold_point_cents - point_cents
    return max(0, -(-missing // 100))


def rules_for(versions: Sequence[Rules], when: datetime) -> Rules:
    """The version in force at `when`: the latest effective_from not after it (newest version on a tie)."""
    in_force = [r for r in versions if r.effective_from is None or r.effective_from <= when]
    if not in_force:
        raise LookupError(f"no program rules in force at {when.isoformat()}")
    return max(in_force, key=lambda r: (r.effective_from or datetime.min.replace(tzinfo=when.tzinfo), r.version))


def in_force_lookup(versions: Sequence[Rules]) -> Callable[[datetime], Rules]:
    """`rules_for(versions, when)` by bisection: its answer only changes at an effective_from,
    so it is worked out once per effective_from (the big demo asks ten million times)."""
    starts = sorted({r.effective_from for r in versions if r.effective_from is not None})
    answers = [rules_for(versions, s) for s in starts]

    def lookup(when: datetime) -> Rules:
        k = bisect.bisect_right(starts, when)
        return answers[k - 1] if k else rules_for(versions, when)

    return lookup
