"""The program's rules and the earning arithmetic: pure functions over integers, no I/O.

Points are kept in point-cents (hundredths of a point): $12.34 earns 1234 point-cents.
Everything that computes points or rewards (the ledger, the quote, the reference model in
the tests, `rewards verify`) calls these functions, so the arithmetic exists once.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Annotated, Literal

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


def remaining_after_returns(
    lines: Sequence[tuple[str, str, int, int]],
    tenders: Sequence[tuple[str, int]],
    returned: Mapping[str, tuple[int, int]],
) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """The purchase as if the returned goods had not been bought.

    `lines` are (sku, category, quantity, amount_cents); `returned` maps a sku to the
    (quantity, amount_cents) returned so far. Returned amounts come off the sku's lines in
    order; each tender keeps its share of what remains (rounded down), so a full return
    leaves nothing and a partial one never earns more than before.
    """
    left = {sku: amount for sku, (_, amount) in returned.items()}
    remaining_lines: list[tuple[str, int]] = []
    for sku, category, _quantity, amount in lines:
        taken = min(amount, left.get(sku, 0))
        left[sku] = left.get(sku, 0) - taken
        remaining_lines.append((category, amount - taken))
    total = sum(amount for *_, amount in lines)
    remaining = sum(amount for _, amount in remaining_lines)
    remaining_tenders = [(method, amount * remaining // total if total else 0) for method, amount in tenders]
    return remaining_lines, remaining_tenders


def point_cents_to_reverse(
    rules: Rules,
    lines: Sequence[tuple[str, str, int, int]],
    tenders: Sequence[tuple[str, int]],
    returned_before: Mapping[str, tuple[int, int]],
    returned_now: Mapping[str, tuple[int, int]],
) -> int:
    """Point-cents a return takes back: the earning before it minus the earning after it."""
    both = {
        sku: (
            returned_before.get(sku, (0, 0))[0] + returned_now.get(sku, (0, 0))[0],
            returned_before.get(sku, (0, 0))[1] + returned_now.get(sku, (0, 0))[1],
        )
        for sku in set(returned_before) | set(returned_now)
    }
    before = earning(rules, *remaining_after_returns(lines, tenders, returned_before)).point_cents
    after = earning(rules, *remaining_after_returns(lines, tenders, both)).point_cents
    return before - after


def rewards_due(balance_point_cents: int, rules: Rules) -> int:
    """How many rewards a posting issues at this balance: none while below the threshold."""
    threshold = rules.reward_threshold_point_cents
    return balance_point_cents // threshold if balance_point_cents >= threshold else 0


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
