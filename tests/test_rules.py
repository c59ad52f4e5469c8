"""Property tests of the earning arithmetic in rewards/rules.py (pure: no database)."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from rewards import rules
from rewards.rules import DEFAULT_RULES, REWARD_TENDER, TENDER_METHODS, Rules

CATEGORIES = ["apparel", "home", "beauty", "gift_card", "tax", "shipping"]
SKUS = ["A", "B", "C", "D"]

amounts = st.integers(min_value=0, max_value=200_000)


@st.composite
def rulesets(draw: st.DrawFn) -> Rules:
    return Rules(
        version=1,
        points_per_dollar=draw(st.integers(0, 5)),
        card_bonus_points_per_dollar=draw(st.integers(0, 5)),
        reward_threshold_points=draw(st.sampled_from([1, 50, 300, 1000])),
        excluded_categories=tuple(draw(st.sets(st.sampled_from(CATEGORIES)))),
        bonus_tenders=tuple(draw(st.sets(st.sampled_from(TENDER_METHODS), max_size=3))),
        rounding=draw(st.sampled_from(["carry", "floor_per_purchase"])),
    )


any_rules = st.one_of(st.just(DEFAULT_RULES), rulesets())
category_lines = st.lists(st.tuples(st.sampled_from(CATEGORIES), amounts), min_size=1, max_size=6)
tender_list = st.lists(st.tuples(st.sampled_from(TENDER_METHODS), amounts), min_size=1, max_size=4)


@st.composite
def purchases(draw: st.DrawFn) -> tuple[list[tuple[str, str, int, int]], list[tuple[str, int]]]:
    """Lines as (sku, category, quantity, amount_cents) and tenders that add up to them."""
    lines = draw(st.lists(
        st.tuples(st.sampled_from(SKUS), st.sampled_from(CATEGORIES), st.integers(1, 4), amounts),
        min_size=1, max_size=5,
    ))
    total = sum(line[3] for line in lines)
    methods = draw(st.lists(st.sampled_from(TENDER_METHODS), min_size=1, max_size=4))
    cuts = sorted(draw(st.lists(st.integers(0, total), min_size=len(methods) - 1, max_size=len(methods) - 1)))
    bounds = [0, *cuts, total]
    tenders = [(m, bounds[i + 1] - bounds[i]) for i, m in enumerate(methods)]
    return lines, tenders


def _bought(lines: list[tuple[str, str, int, int]]) -> dict[str, tuple[int, int]]:
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for sku, _, quantity, amount in lines:
        totals[sku][0] += quantity
        totals[sku][1] += amount
    return {sku: (q, a) for sku, (q, a) in totals.items()}


def _as_category_lines(lines: list[tuple[str, str, int, int]]) -> list[tuple[str, int]]:
    return [(category, amount) for _, category, _, amount in lines]


# --- earning ------------------------------------------------------------------------------------


@given(any_rules, category_lines, tender_list)
def test_earning_is_never_negative(r: Rules, lines: list, tenders: list) -> None:
    e = rules.earning(r, lines, tenders)
    assert min(e.qualifying_cents, e.card_cents, e.base_point_cents, e.bonus_point_cents) >= 0
    assert e.point_cents == e.base_point_cents + e.bonus_point_cents


@given(any_rules, category_lines, tender_list)
def test_qualifying_is_at_most_eligible_lines_and_non_reward_tenders(r: Rules, lines: list, tenders: list) -> None:
    e = rules.earning(r, lines, tenders)
    eligible = sum(a for c, a in lines if c not in r.excluded_categories)
    paid = sum(a for m, a in tenders if m != REWARD_TENDER)
    assert e.qualifying_cents <= eligible
    assert e.qualifying_cents <= paid
    assert e.qualifying_cents == min(eligible, paid)


@given(any_rules, category_lines, tender_list)
def test_card_share_is_at_most_qualifying_and_the_bonus_tenders(r: Rules, lines: list, tenders: list) -> None:
    e = rules.earning(r, lines, tenders)
    assert e.card_cents <= e.qualifying_cents
    assert e.card_cents <= sum(a for m, a in tenders if m in r.bonus_tenders)


@given(any_rules, category_lines, tender_list)
def test_bonus_comes_only_from_bonus_tenders(r: Rules, lines: list, tenders: list) -> None:
    without_bonus_tenders = [(m, a) for m, a in tenders if m not in r.bonus_tenders]
    e = rules.earning(r, lines, without_bonus_tenders)
    assert e.card_cents == 0
    assert e.bonus_point_cents == 0
    # and paying with a bonus tender never changes the base earning of the same qualifying spend
    full = rules.earning(r, lines, tenders)
    if r.rounding == "carry":
        assert full.bonus_point_cents == full.card_cents * r.card_bonus_points_per_dollar
        assert full.base_point_cents == full.qualifying_cents * r.points_per_dollar


@given(any_rules, category_lines, tender_list)
def test_excluded_categories_never_earn(r: Rules, lines: list, tenders: list) -> None:
    kept = [(c, a) for c, a in lines if c not in r.excluded_categories]
    assert rules.earning(r, lines, tenders) == rules.earning(r, kept, tenders)
    excluded_only = [(c, a) for c, a in lines if c in r.excluded_categories]
    assert rules.earning(r, excluded_only, tenders).point_cents == 0


@given(rulesets(), category_lines, tender_list)
def test_floor_per_purchase_never_exceeds_carry(r: Rules, lines: list, tenders: list) -> None:
    carry = rules.earning(Rules(**{**_fields(r), "rounding": "carry"}), lines, tenders)
    floor = rules.earning(Rules(**{**_fields(r), "rounding": "floor_per_purchase"}), lines, tenders)
    assert floor.qualifying_cents == carry.qualifying_cents
    assert floor.base_point_cents <= carry.base_point_cents
    assert floor.bonus_point_cents <= carry.bonus_point_cents
    # whole dollars only, and less than a dollar's worth lost per term
    assert floor.base_point_cents % (100 * max(r.points_per_dollar, 1)) == 0
    assert carry.base_point_cents - floor.base_point_cents < 100 * max(r.points_per_dollar, 1)
    assert carry.bonus_point_cents - floor.bonus_point_cents < 100 * max(r.card_bonus_points_per_dollar, 1)


def _fields(r: Rules) -> dict:
    return {f: getattr(r, f) for f in r.__struct_fields__}


# --- returns: the points follow the units ---------------------------------------------------------


def _bought_lines(lines: list[tuple[str, str, int, int]]) -> list[rules.BoughtLine]:
    return [rules.BoughtLine(*line) for line in lines]


def _units(lines: list[tuple[str, str, int, int]]) -> dict[str, int]:
    units: dict[str, int] = defaultdict(int)
    for sku, _, quantity, _ in lines:
        units[sku] += quantity
    return dict(units)


@st.composite
def purchases_with_unit_returns(draw: st.DrawFn) -> tuple:
    """A purchase and a sequence of returns that brings back every unit, in any order and split,
    each return line refunding any amount the register likes (within what the sku cost), with
    price adjustments (quantity 0) mixed in."""
    lines, tenders = draw(purchases())
    paid = {sku: sum(a for s_, _, _, a in lines if s_ == sku) for sku in _units(lines)}
    pieces = [(sku, 1) for sku, n in _units(lines).items() for _ in range(n)]
    pieces = draw(st.permutations(pieces))
    steps: list[list[rules.ReturnedLine]] = []
    refunded: dict[str, int] = defaultdict(int)
    i = 0
    while i < len(pieces):
        size = draw(st.integers(1, len(pieces) - i))
        step = []
        for sku, _ in pieces[i:i + size]:
            refund = draw(st.integers(0, paid[sku] - refunded[sku]))
            refunded[sku] += refund
            step.append(rules.ReturnedLine(sku, 1, refund))
        if draw(st.booleans()):  # a price adjustment on a sku, before the units come back
            sku = draw(st.sampled_from(sorted(paid)))
            refund = draw(st.integers(0, paid[sku] - refunded[sku]))
            refunded[sku] += refund
            step.insert(0, rules.ReturnedLine(sku, 0, refund))
        steps.append(step)
        i += size
    return lines, tenders, steps


@given(any_rules, purchases())
def test_a_return_of_every_unit_takes_back_exactly_the_earning(r: Rules, purchase: tuple) -> None:
    lines, tenders = purchase
    bought = _bought_lines(lines)
    earned = rules.earning(r, _as_category_lines(lines), tenders).point_cents
    everything = [rules.ReturnedLine(sku, n, 0) for sku, n in _units(lines).items()]
    before = rules.nothing_returned(bought)
    after = rules.take_back(bought, before, everything)
    assert rules.point_cents_reversed(r, bought, tenders, before, after) == earned


@given(any_rules, purchases_with_unit_returns())
@example(DEFAULT_RULES, ([("A", "apparel", 2, 1000), ("B", "tax", 1, 80)],
                         [("westique_credit_card", 540), ("reward", 540)],
                         [[rules.ReturnedLine("A", 1, 500)], [rules.ReturnedLine("B", 1, 80)],
                          [rules.ReturnedLine("A", 1, 500)]]))
def test_returns_in_any_order_and_split_take_back_exactly_the_earning(r: Rules, case: tuple) -> None:
    lines, tenders, steps = case
    bought = _bought_lines(lines)
    earned = rules.earning(r, _as_category_lines(lines), tenders).point_cents
    left = rules.nothing_returned(bought)
    total = 0
    for step in steps:
        after = rules.take_back(bought, left, step)
        taken = rules.point_cents_reversed(r, bought, tenders, left, after)
        assert taken >= 0, (left, step)
        total += taken
        assert total <= earned
        left = after
    assert all(x.units == 0 and x.value_cents == 0 for x in left.lines)
    assert total == earned


@given(any_rules, purchases(), st.data())
def test_what_the_register_refunds_never_changes_the_points(r: Rules, purchase: tuple, data: st.DataObject) -> None:
    lines, tenders = purchase
    bought = _bought_lines(lines)
    sku = data.draw(st.sampled_from(sorted(_units(lines))))
    k = data.draw(st.integers(1, _units(lines)[sku]))
    paid = sum(a for s_, _, _, a in lines if s_ == sku)
    before = rules.nothing_returned(bought)
    taken = {rules.point_cents_reversed(r, bought, tenders, before, rules.take_back(
        bought, before, [rules.ReturnedLine(sku, k, refund)])) for refund in {0, min(1, paid), paid // 2, paid}}
    assert len(taken) == 1


@given(any_rules, purchases())
def test_returning_nothing_takes_back_nothing(r: Rules, purchase: tuple) -> None:
    lines, tenders = purchase
    bought = _bought_lines(lines)
    before = rules.nothing_returned(bought)
    assert rules.earning_left(r, bought, tenders, before) == rules.earning(r, _as_category_lines(lines), tenders)
    assert rules.point_cents_reversed(r, bought, tenders, before, rules.take_back(bought, before, [])) == 0


# the worked cases of the program's rules (docs/rules.md): 2 units for $100 on the Westique card
TWO_FOR_100 = [rules.BoughtLine("A", "apparel", 2, 10000)]
CARD = [("westique_credit_card", 10000)]


def test_both_units_back_for_a_cent_take_back_all_20000_point_cents() -> None:
    start = rules.nothing_returned(TWO_FOR_100)
    after = rules.take_back(TWO_FOR_100, start, [rules.ReturnedLine("A", 2, 1)])
    assert rules.point_cents_reversed(DEFAULT_RULES, TWO_FOR_100, CARD, start, after) == 20000


def test_one_unit_back_takes_10000_and_the_other_the_other_10000_whatever_is_refunded() -> None:
    start = rules.nothing_returned(TWO_FOR_100)
    one = rules.take_back(TWO_FOR_100, start, [rules.ReturnedLine("A", 1, 10000)])
    assert rules.point_cents_reversed(DEFAULT_RULES, TWO_FOR_100, CARD, start, one) == 10000
    two = rules.take_back(TWO_FOR_100, one, [rules.ReturnedLine("A", 1, 0)])
    assert rules.point_cents_reversed(DEFAULT_RULES, TWO_FOR_100, CARD, one, two) == 10000


def test_a_units_value_is_the_line_divided_by_its_units_the_remainder_on_the_last() -> None:
    three = [rules.BoughtLine("A", "apparel", 3, 1000)]  # 333 + 333 + 334
    left = rules.nothing_returned(three)
    taken = []
    for _ in range(3):
        after = rules.take_back(three, left, [rules.ReturnedLine("A", 1, 0)])
        taken.append(rules.point_cents_reversed(DEFAULT_RULES, three, [("cash", 1000)], left, after))
        left = after
    assert taken == [333, 333, 334]


def test_a_price_adjustment_takes_back_the_points_of_its_amount_and_no_unit() -> None:
    start = rules.nothing_returned(TWO_FOR_100)
    after = rules.take_back(TWO_FOR_100, start, [rules.ReturnedLine("A", 0, 2500)])
    assert after.lines == (rules.LineLeft(2, 7500),)
    assert rules.point_cents_reversed(DEFAULT_RULES, TWO_FOR_100, CARD, start, after) == 5000  # $25, bonus too


@pytest.mark.parametrize(("asked", "why"), [
    ([rules.ReturnedLine("A", 3, 0)], "units left"),
    ([rules.ReturnedLine("A", 1, 6000), rules.ReturnedLine("A", 1, 4001)], "refunded"),
    ([rules.ReturnedLine("Z", 1, 0)], "not bought"),
])
def test_a_return_asking_more_than_is_left_is_refused(asked: list, why: str) -> None:
    with pytest.raises(rules.ReturnRefused, match=why):
        rules.take_back(TWO_FOR_100, rules.nothing_returned(TWO_FOR_100), asked)


# --- rewards ------------------------------------------------------------------------------------


@given(any_rules, st.integers(min_value=-10**9, max_value=10**9))
def test_rewards_due_never_issues_below_the_threshold(r: Rules, balance: int) -> None:
    due = rules.rewards_due(balance, r)
    threshold = r.reward_threshold_point_cents
    assert due >= 0
    if balance < threshold:
        assert due == 0
    else:
        # as many as the balance allows, leaving less than one threshold and never going negative
        assert 0 <= balance - due * threshold < threshold


@given(st.integers(min_value=-10**9, max_value=10**9))
def test_points_shown_are_whole_points_rounded_down(point_cents: int) -> None:
    assert rules.whole_points(point_cents) * 100 <= point_cents < (rules.whole_points(point_cents) + 1) * 100


# --- the worked figures of docs/rules.md ----------------------------------------------------------


def test_twelve_dollars_thirty_four_earns_1234_point_cents() -> None:
    e = rules.earning(DEFAULT_RULES, [("apparel", 1234)], [("cash", 1234)])
    assert (e.qualifying_cents, e.point_cents, e.bonus_point_cents) == (1234, 1234, 0)
    assert rules.whole_points(e.point_cents) == 12


def test_three_hundred_dollars_earns_exactly_one_reward() -> None:
    e = rules.earning(DEFAULT_RULES, [("apparel", 30000)], [("debit_card", 30000)])
    assert e.point_cents == 30000
    assert rules.rewards_due(e.point_cents, DEFAULT_RULES) == 1
    assert rules.rewards_due(e.point_cents - 1, DEFAULT_RULES) == 0
    assert rules.points_to_next_reward(e.point_cents - 1, DEFAULT_RULES) == 1


def test_card_bonus_applies_to_the_card_paid_qualifying_share_only() -> None:
    e = rules.earning(DEFAULT_RULES, [("apparel", 10000), ("tax", 800)],
                      [("westique_credit_card", 6000), ("cash", 4800)])
    assert (e.qualifying_cents, e.card_cents) == (10000, 6000)
    assert (e.base_point_cents, e.bonus_point_cents) == (10000, 6000)


def test_the_part_paid_with_a_reward_does_not_qualify() -> None:
    e = rules.earning(DEFAULT_RULES, [("apparel", 5000)], [(REWARD_TENDER, 1000), ("cash", 4000)])
    assert e.qualifying_cents == 4000


def test_floor_per_purchase_rounds_each_purchase_down_to_whole_dollars() -> None:
    floor = Rules(version=2, rounding="floor_per_purchase")
    e = rules.earning(floor, [("apparel", 1234)], [("westique_credit_card", 1234)])
    assert (e.base_point_cents, e.bonus_point_cents) == (1200, 1200)


# --- versions -----------------------------------------------------------------------------------


def test_rules_in_force_are_the_latest_effective_version() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    v1 = Rules(version=1, effective_from=t0)
    v2 = Rules(version=2, effective_from=t0 + timedelta(days=10), points_per_dollar=2)
    assert rules.rules_for([v1, v2], t0 + timedelta(days=9)) is v1
    assert rules.rules_for([v1, v2], t0 + timedelta(days=10)) is v2
    with pytest.raises(LookupError):
        rules.rules_for([v1, v2], t0 - timedelta(seconds=1))


@settings(max_examples=200)
@given(st.lists(st.one_of(st.none(), st.integers(0, 6)), min_size=0, max_size=5), st.integers(-2, 8))
def test_the_bisected_lookup_answers_as_rules_for(starts: list[int | None], day: int) -> None:
    # versions on shared days (a tie goes to the newest), without a date, and instants before all
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    versions = [Rules(version=n + 1, effective_from=None if d is None else t0 + timedelta(days=d))
                for n, d in enumerate(starts)]
    lookup = rules.in_force_lookup(versions)
    for when in (t0 + timedelta(days=day), t0 + timedelta(days=day, microseconds=-1)):
        try:
            expected = rules.rules_for(versions, when)
        except LookupError:
            with pytest.raises(LookupError):
                lookup(when)
        else:
            assert lookup(when) is expected


@settings(max_examples=50)
@given(any_rules, purchases())
def test_earning_ignores_the_order_of_lines_and_tenders(r: Rules, purchase: tuple) -> None:
    lines, tenders = purchase
    forward = rules.earning(r, _as_category_lines(lines), tenders)
    backward = rules.earning(r, list(reversed(_as_category_lines(lines))), list(reversed(tenders)))
    assert forward == backward
