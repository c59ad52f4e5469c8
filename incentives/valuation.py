"""The incentive-value report, assembled: pure functions from what the SQL read to the figures.

Nothing here touches the database. `incentives.queries` computes every sum, count and
percentile in SQL over the whole population; this module names them, rounds them once
(half up, to whole cents), applies the method's program expense, suppresses small cells,
annualises, and shapes the report (`IncentiveReport`, below).

Choices, stated once:
- A period is whole UTC days, `from` and `to` included: [from 00:00Z, to + 1 day 00:00Z).
- Percentiles are `percentile_disc`: each is a value some member actually has (for the
  rewards program, a whole number of $10 Rewards), never an interpolation between two
  members such as "$12.50" that describes nobody; and it is exact over integers, so two
  runs can never differ in the last digit.
- Money is integer cents, rounded half up once, at the end; shares and rates are
  fractions rounded to four decimals.
- `as_of` is the end of the period, or the snapshot's time while the period is still open:
  a closed period's figures depend only on rows dated inside it, so asking again gives the
  same figures, the same `as_of` and the same digest until something dated inside the
  period is recorded.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Literal

import msgspec

Program = Literal["rewards", "mailing_list"]
MethodCode = Literal["expenses", "rewards_issued", "expenses_plus_program"]
PROGRAMS: tuple[str, ...] = ("rewards", "mailing_list")
METHODS: tuple[str, ...] = ("expenses", "rewards_issued", "expenses_plus_program")
PERCENTILES: tuple[float, ...] = (0.25, 0.5, 0.75, 0.9, 0.99)
SEGMENTS: tuple[str, ...] = ("card_holders", "others")
DAYS_PER_YEAR = 365
LONGEST_PERIOD_DAYS = 3660

# Where each method sits in 11 CCR §7081(a): (a)(6) is "expenses related to the offer,
# provision, or imposition of any financial incentive"; (a)(5) is "expenses related to the
# sale, collection, or retention of consumers' personal information".
REGULATION = {
    "expenses": "11 CCR §7081(a)(6)",
    "rewards_issued": "11 CCR §7081(a)(6)",
    "expenses_plus_program": "11 CCR §7081(a)(5) and (a)(6)",
}

DESCRIPTIONS = {
    ("rewards", "expenses"): (
        "Expenses of providing the incentive: the face value of the $10 Rewards that members redeemed "
        "in the period. Every member enrolled at any time in the period counts once, at $0 if they "
        "redeemed nothing; a member's value is the Rewards they redeemed in the period."
    ),
    ("rewards", "rewards_issued"): (
        "Expenses of providing the incentive, counted when earned: the face value of the $10 Rewards "
        "issued to members in the period, whether or not they were redeemed. Every member enrolled at "
        "any time in the period counts once, at $0 if they earned no Reward."
    ),
    ("rewards", "expenses_plus_program"): (
        "Expenses of providing the incentive plus the cost of running the program: the face value of the "
        "$10 Rewards redeemed in the period, plus the program expense the business supplied for the "
        "period (systems, staff, communications), shared equally among the members enrolled at any "
        "time in the period."
    ),
    ("mailing_list", "expenses"): (
        "Expenses of providing the incentive: the offer discounts that subscribers redeemed on their "
        "purchases in the period (offers on the purchase, matched to offers the business sent). Every "
        "subscriber subscribed at any time in the period counts once (a member with an email and a "
        "text subscription once), at $0 if they redeemed no offer."
    ),
    ("mailing_list", "rewards_issued"): (
        "Expenses of providing the incentive, counted when offered: the value of the offers sent to "
        "subscribers in the period, whether or not they were redeemed. Every subscriber subscribed at "
        "any time in the period counts once."
    ),
    ("mailing_list", "expenses_plus_program"): (
        "Expenses of providing the incentive plus the cost of running the mailing list: the offer "
        "discounts subscribers redeemed in the period, plus the program expense the business supplied "
        "for the period, shared equally among the subscribers subscribed at any time in the period."
    ),
}


# --- the request ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """Whole UTC days, both ends included."""

    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def lower(self) -> datetime:
        """The first instant of the period."""
        return datetime.combine(self.start, time(0), tzinfo=UTC)

    @property
    def upper(self) -> datetime:
        """The first instant after the period (the bound is exclusive)."""
        return datetime.combine(self.end + timedelta(days=1), time(0), tzinfo=UTC)


@dataclass(frozen=True)
class ReportRequest:
    program: str
    period: Period
    method: str = "expenses"
    program_expense_cents: int | None = None
    min_cell_size: int | None = None


def check_request(request: ReportRequest) -> list[tuple[str, str]]:
    """What is wrong with the request, as (field, message); empty when it can be run."""
    problems: list[tuple[str, str]] = []
    if request.program not in PROGRAMS:
        problems.append(("program", f"program is one of {', '.join(PROGRAMS)}"))
    if request.method not in METHODS:
        problems.append(("method", f"method is one of {', '.join(METHODS)}"))
    if request.period.end < request.period.start:
        problems.append(("to", "to is before from"))
    elif request.period.days > LONGEST_PERIOD_DAYS:
        problems.append(("to", f"a period is at most {LONGEST_PERIOD_DAYS} days"))
    if request.method == "expenses_plus_program" and request.program_expense_cents is None:
        problems.append(("program_expense_cents", "the expenses_plus_program method needs program_expense_cents"))
    if request.method != "expenses_plus_program" and request.program_expense_cents is not None:
        problems.append(("program_expense_cents", "program_expense_cents goes with method expenses_plus_program"))
    if request.program_expense_cents is not None and request.program_expense_cents < 0:
        problems.append(("program_expense_cents", "program_expense_cents is not negative"))
    if request.min_cell_size is not None and request.min_cell_size < 1:
        problems.append(("min_cell_size", "min_cell_size is at least 1"))
    return problems


def as_of(period: Period, snapshot_time: datetime) -> datetime:
    """The end of the period; the snapshot's time while the period has not ended yet."""
    return min(period.upper, snapshot_time.astimezone(UTC))


# --- what the SQL read ----------------------------------------------------------------------


@dataclass(frozen=True)
class SegmentFigures:
    """One row of the distribution query: a segment's members and their value, in cents."""

    counted: int
    total_cents: int
    percentiles: tuple[int, ...]  # at PERCENTILES, percentile_disc
    max_cents: int
    zero: int


@dataclass(frozen=True)
class Bin:
    """Members whose value lies in [from_cents, to_cents] (a single value when they are equal)."""

    from_cents: int
    to_cents: int
    members: int


@dataclass(frozen=True)
class Read:
    """Everything the report's queries returned, from one snapshot."""

    members: dict[str, int]
    spend: dict[str, int]
    points: dict[str, int] | None  # None: the program earns no points
    rewards: dict[str, int]
    segments: dict[str, SegmentFigures]  # "all", "card_holders", "others" (missing: nobody)
    histogram: list[Bin]
    rules_versions: list[int]
    rows_read: dict[str, int]
    table_digests: dict[str, str]
    earning_per_100: tuple[int, int]  # point-cents $100 earns: paid otherwise, paid with the card
    reward_threshold_point_cents: int
    reward_value_cents: int
    snapshot_time: datetime


# --- the report (the JSON's shape) ----------------------------------------------------------


class PeriodOut(msgspec.Struct, kw_only=True):
    from_: date = msgspec.field(name="from")
    to: date


class MethodOut(msgspec.Struct, kw_only=True):
    code: str
    regulation: str
    description: str


class MembersOut(msgspec.Struct, kw_only=True):
    at_start: int
    at_end: int
    enrolled: int
    cancelled: int
    erased: int
    counted: int


class SpendOut(msgspec.Struct, kw_only=True):
    qualifying_cents: int
    card_cents: int


class PointsOut(msgspec.Struct, kw_only=True):
    earned_point_cents: int | None
    bonus_point_cents: int | None
    reversed_point_cents: int | None
    forfeited_point_cents: int | None


class RewardsOut(msgspec.Struct, kw_only=True):
    issued_count: int
    issued_cents: int
    redeemed_count: int
    redeemed_cents: int
    expired_count: int
    expired_cents: int
    voided_count: int
    voided_cents: int
    redemption_rate: float | None


class DistributionOut(msgspec.Struct, kw_only=True):
    mean: int | None
    median: int | None
    p25: int | None
    p75: int | None
    p90: int | None
    p99: int | None
    max: int | None
    share_zero: float | None


class SegmentOut(DistributionOut, kw_only=True):
    """A segment's distribution, its size, and whether it is withheld (all figures then null)."""

    counted: int | None
    suppressed: bool = False


class BySegmentOut(msgspec.Struct, kw_only=True):
    card_holders: SegmentOut
    others: SegmentOut


class ReproducibilityOut(msgspec.Struct, kw_only=True):
    as_of: datetime
    rules_versions: list[int]
    rows_read: dict[str, int]
    digest: str


class IncentiveReport(msgspec.Struct, kw_only=True):
    program: str
    period: PeriodOut
    method: MethodOut
    members: MembersOut
    spend: SpendOut
    points: PointsOut
    rewards: RewardsOut
    value_per_member_cents: DistributionOut
    by_segment: BySegmentOut
    annualized_value_per_member_cents: int | None
    notice_text: str
    reproducibility: ReproducibilityOut


@dataclass(frozen=True)
class Valuation:
    """The report and what the renderers draw beside it (not part of the JSON)."""

    report: IncentiveReport
    histogram: list[Bin]
    value_per_100_spend_cents: Fraction | None
    notice_facts: NoticeFacts


@dataclass(frozen=True)
class NoticeFacts:
    """What the notice paragraph states, in exact numbers (`incentives.notice` words them)."""

    program: str
    method: str
    regulation: str
    period: Period
    counted: int
    annualized_cents: int | None
    mean_cents: Fraction | None
    share_zero: Fraction | None
    median_cents: int | None
    p90_cents: int | None
    value_per_100_spend_cents: Fraction | None
    earning_per_100: tuple[int, int]
    reward_threshold_point_cents: int
    reward_value_cents: int
    program_expense_cents: int | None
    suppressed: bool = False


# --- arithmetic ----------------------------------------------------------------------------


def half_up(value: Fraction | int | Decimal) -> int:
    """Whole cents, halves rounded up (all values here are non-negative)."""
    return _half_up(Fraction(value))


def _half_up(value: Fraction) -> int:
    return math.floor(value + Fraction(1, 2))


def ratio(numerator: int, denominator: int) -> float | None:
    """A share or a rate, to four decimals (half up); None when there is nothing to divide by."""
    if denominator == 0:
        return None
    exact = Decimal(numerator) / Decimal(denominator)
    return float(exact.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP))


def annualized(mean_cents: Fraction, days: int) -> int:
    """The per-member value over a year of DAYS_PER_YEAR days (a calendar year of 365 days: as is)."""
    return _half_up(mean_cents * DAYS_PER_YEAR / days)


def distribution(figures: SegmentFigures | None, share_cents: Fraction) -> tuple[DistributionOut, Fraction | None]:
    """The distribution of one segment, each member's value raised by `share_cents` (the program expense).

    Adding the same amount to every member moves every percentile, the mean and the
    maximum by that amount, so the order statistics SQL computed stay exact.
    """
    if figures is None or figures.counted == 0:
        return DistributionOut(mean=None, median=None, p25=None, p75=None, p90=None, p99=None, max=None,
                               share_zero=None), None
    mean = Fraction(figures.total_cents, figures.counted) + share_cents
    p25, p50, p75, p90, p99 = (_half_up(p + share_cents) for p in figures.percentiles)
    zero = figures.zero if share_cents == 0 else 0
    return DistributionOut(
        mean=_half_up(mean), median=p50, p25=p25, p75=p75, p90=p90, p99=p99,
        max=_half_up(figures.max_cents + share_cents), share_zero=ratio(zero, figures.counted),
    ), mean


def segment(figures: SegmentFigures | None, share_cents: Fraction, *, suppressed: bool) -> SegmentOut:
    if suppressed:
        return SegmentOut(counted=None, mean=None, median=None, p25=None, p75=None, p90=None, p99=None,
                          max=None, share_zero=None, suppressed=True)
    shown, _ = distribution(figures, share_cents)
    return SegmentOut(counted=figures.counted if figures else 0, **msgspec.structs.asdict(shown))


def suppressed_segments(read: Read, min_cell_size: int | None) -> bool:
    """Whether the segments are withheld: one below the minimum cell size withholds both,
    since the total less the other segment would give it away."""
    if not min_cell_size:
        return False
    return any((read.segments.get(name).counted if read.segments.get(name) else 0) < min_cell_size
               for name in SEGMENTS)


def digest(request: ReportRequest, read: Read, as_of_time: datetime) -> str:
    """SHA-256 of the request and of each table's rows read (each digested in SQL: a hash of every
    row read, of the columns the figures use, added up; incentives.queries)."""
    inputs = {
        "program": request.program,
        "period": [request.period.start.isoformat(), request.period.end.isoformat()],
        "method": request.method,
        "program_expense_cents": request.program_expense_cents,
        "as_of": as_of_time.isoformat(),
        "tables": read.table_digests,
        "rows": read.rows_read,
    }
    return hashlib.sha256(msgspec.json.encode(inputs, order="sorted")).hexdigest()


def assemble(request: ReportRequest, read: Read, notice_text: object) -> Valuation:
    """The report from what SQL read; `notice_text(facts) -> str` words the notice (or refuses)."""
    period = request.period
    everyone = read.segments.get("all")
    counted = everyone.counted if everyone else 0
    expense = request.program_expense_cents or 0
    share = Fraction(expense, counted) if counted and expense else Fraction(0)
    total_suppressed = bool(request.min_cell_size) and counted < (request.min_cell_size or 0)
    if total_suppressed:
        overall, mean = distribution(None, share)
    else:
        overall, mean = distribution(everyone, share)
    hide_segments = total_suppressed or suppressed_segments(read, request.min_cell_size)
    yearly = annualized(mean, period.days) if mean is not None else None
    redeemed = read.rewards["redeemed_cents"]
    qualifying = read.spend["qualifying_cents"]
    per_100 = Fraction(redeemed * 10_000, qualifying) if qualifying else None
    when = as_of(period, read.snapshot_time)
    facts = NoticeFacts(
        program=request.program, method=request.method, regulation=REGULATION[request.method], period=period,
        counted=counted, annualized_cents=yearly, mean_cents=mean,
        share_zero=None if total_suppressed or not counted else Fraction(everyone.zero if not share else 0, counted),
        median_cents=overall.median, p90_cents=overall.p90, value_per_100_spend_cents=per_100,
        earning_per_100=read.earning_per_100, reward_threshold_point_cents=read.reward_threshold_point_cents,
        reward_value_cents=read.reward_value_cents, program_expense_cents=request.program_expense_cents,
        suppressed=total_suppressed,
    )
    text = notice_text(facts)  # type: ignore[operator]
    points = read.points or {}
    report = IncentiveReport(
        program=request.program,
        period=PeriodOut(from_=period.start, to=period.end),
        method=MethodOut(code=request.method, regulation=REGULATION[request.method],
                         description=DESCRIPTIONS[(request.program, request.method)]),
        members=MembersOut(**read.members),
        spend=SpendOut(**read.spend),
        points=PointsOut(
            earned_point_cents=points.get("earned_point_cents"),
            bonus_point_cents=points.get("bonus_point_cents"),
            reversed_point_cents=points.get("reversed_point_cents"),
            forfeited_point_cents=points.get("forfeited_point_cents"),
        ),
        rewards=RewardsOut(**read.rewards,
                           redemption_rate=ratio(read.rewards["redeemed_count"], read.rewards["issued_count"])),
        value_per_member_cents=overall,
        by_segment=BySegmentOut(**{
            name: segment(read.segments.get(name), share, suppressed=hide_segments) for name in SEGMENTS
        }),
        annualized_value_per_member_cents=yearly,
        notice_text=text,
        reproducibility=ReproducibilityOut(
            as_of=when, rules_versions=read.rules_versions, rows_read=read.rows_read,
            digest=digest(request, read, when),
        ),
    )
    histogram = [] if total_suppressed else [
        Bin(_half_up(b.from_cents + share), _half_up(b.to_cents + share), b.members) for b in read.histogram
    ]
    return Valuation(report=report, histogram=histogram, value_per_100_spend_cents=per_100, notice_facts=facts)
