"""The incentive-value report, assembled: pure functions from what the SQL read to the figures.

Nothing here touches the database. `incentives.queries` computes every sum, count and
percentile in SQL over the whole population; this module names them, rounds them once
(half up, to whole cents), applies the method's program expense, suppresses small cells
(`incentives.suppression`), annualises by time enrolled, draws up the warnings
(`incentives.caveats`), and shapes the report (docs/compliance.md describes it).

Choices, stated once:
- A period is whole days in the program's time zone, `from` and `to` included
  (`incentives.periods`).
- Percentiles are `percentile_disc`: each is a value some member actually has (for the
  rewards program, a whole number of $10 Rewards), never an interpolation between two
  members such as "$12.50" that describes nobody; and it is exact over integers, so two
  runs can never differ in the last digit.
- The annualised value is the period's total value divided by member-years: the time each
  member counted was enrolled within the period, up to `as_of`, on the program's clock,
  over 365 days. A member enrolled for a quarter of a year counts 0.25.
- Money is integer cents, rounded half up once, at the end; shares and rates are
  fractions rounded to four decimals.
- `as_of` is the end of the period, or the snapshot's time while the period is still open.
  The digest covers the request and the input rows only, never `as_of`: the same rows give
  the same digest while the period runs and after it ends, and (digest, as_of) together
  reproduce every figure.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime
from fractions import Fraction

import msgspec

from incentives import suppression
from incentives.arithmetic import half_up, ratio
from incentives.caveats import Circumstances, warnings
from incentives.disclosures import Disclosures
from incentives.methods import METHODS, METHODS_BY_CODE
from incentives.periods import SECONDS_PER_YEAR, Period
from incentives.suppression import Bin
from incentives.words import dollars, period_words
from rewards.rules import Rules

PROGRAMS: tuple[str, ...] = ("rewards", "mailing_list")
PERCENTILES: tuple[float, ...] = (0.25, 0.5, 0.75, 0.9, 0.99)
SEGMENTS: tuple[str, ...] = ("card_holders", "others")
LONGEST_PERIOD_DAYS = 3660
__all__ = ["METHODS", "PROGRAMS", "Bin", "Period", "ReportRequest", "Read", "assemble", "half_up", "ratio"]


# --- the request ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportRequest:
    program: str
    period: Period
    method: str = "expenses"
    program_expense_cents: int | None = None
    min_cell_size: int | None = None


def period_problems(period: Period) -> list[tuple[str, str]]:
    """What is wrong with a report's period, as (field, message): at most one."""
    if period.end < period.start:
        return [("to", "to is before from")]
    if period.days > LONGEST_PERIOD_DAYS:
        return [("to", f"a period is at most {LONGEST_PERIOD_DAYS} days")]
    return []


def check_request(request: ReportRequest) -> list[tuple[str, str]]:
    """What is wrong with the request, as (field, message); empty when it can be run."""
    problems: list[tuple[str, str]] = []
    if request.program not in PROGRAMS:
        problems.append(("program", f"program is one of {', '.join(PROGRAMS)}"))
    if request.method not in METHODS:
        problems.append(("method", f"method is one of {', '.join(METHODS)}"))
    problems.extend(period_problems(request.period))
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
    holders: tuple[int, ...]  # how many members have each of those values
    max_cents: int
    max_holders: int
    zero: int


NO_SEGMENT = SegmentFigures(0, 0, (0,) * len(PERCENTILES), (0,) * len(PERCENTILES), 0, 0, 0)


@dataclass(frozen=True)
class Read:
    """Everything the report's queries returned, from one snapshot."""

    members: dict[str, int]  # at_start, at_end, enrolled, cancelled, erased
    member_seconds: int | Fraction  # time the counted were enrolled in the period up to as_of, program clock
    counted_without_time: int
    spend: dict[str, int]
    points: dict[str, int] | None  # None: the program earns no points
    rewards: dict[str, int]
    segments: dict[str, SegmentFigures]  # "all", "card_holders", "others" (missing: nobody)
    histogram: list[Bin]
    rules_versions: list[int]
    rows_read: dict[str, int]
    table_digests: dict[str, str]
    rules: Rules  # in force at as_of: the numbers the notice quotes
    disclosures: Disclosures
    disclosures_version: int
    snapshot_time: datetime
    first_joined: datetime | None = None
    first_purchase: datetime | None = None
    last_purchase: datetime | None = None
    unmatched: int = 0


# --- the report (the JSON's shape) ----------------------------------------------------------


class PeriodOut(msgspec.Struct, kw_only=True):
    from_: date = msgspec.field(name="from")
    to: date
    time_zone: str
    days: int


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
    member_years: float | None


class SpendOut(msgspec.Struct, kw_only=True):
    qualifying_cents: int | None
    card_cents: int | None


class PointsOut(msgspec.Struct, kw_only=True):
    earned_point_cents: int | None
    bonus_point_cents: int | None
    reversed_point_cents: int | None
    forfeited_point_cents: int | None


class RewardsOut(msgspec.Struct, kw_only=True):
    issued_count: int | None
    issued_cents: int | None
    redeemed_count: int | None
    redeemed_cents: int | None
    expired_count: int | None
    expired_cents: int | None
    voided_count: int | None
    voided_cents: int | None
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


class SuppressionOut(msgspec.Struct, kw_only=True):
    min_cell_size: int | None
    withheld: list[str]  # the figures withheld (dotted keys), and "chart" when its bars were merged


class ReproducibilityOut(msgspec.Struct, kw_only=True):
    as_of: datetime
    rules_versions: list[int]
    disclosures_version: int
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
    notice_text: str | None
    notice_withheld: str | None
    warnings: list[str]
    suppression: SuppressionOut
    reproducibility: ReproducibilityOut


@dataclass(frozen=True)
class NoticeFacts:
    """What the notice paragraph states, in exact numbers (`incentives.notice` words them)."""

    program: str
    method: str
    regulation: str
    period: Period
    counted: int
    member_years: Fraction
    annualized_cents: int | None
    share_zero: Fraction | None  # None: withheld, or nobody counted
    p90_cents: int | None
    value_per_100_spend_cents: Fraction | None
    program_expense_cents: int | None
    rules: Rules
    disclosures: Disclosures


@dataclass(frozen=True)
class Valuation:
    """The report and what the renderers draw beside it (not part of the JSON)."""

    report: IncentiveReport
    histogram: list[Bin]
    value_per_100_spend_cents: Fraction | None
    notice_facts: NoticeFacts
    first_purchase: datetime | None = None
    last_purchase: datetime | None = None


# --- arithmetic ----------------------------------------------------------------------------


def annualized(total_cents: Fraction | int, member_seconds: int | Fraction) -> int | None:
    """The value per member-year: the total over the time enrolled, 365 days a year."""
    if member_seconds <= 0:
        return None
    return half_up(Fraction(total_cents) * SECONDS_PER_YEAR / member_seconds)


_STATISTICS = ("p25", "median", "p75", "p90", "p99")


def distribution(figures: SegmentFigures, share_cents: Fraction, k: int | None) -> tuple[DistributionOut, list[str]]:
    """A segment's distribution, each member's value raised by `share_cents` (the program expense),
    and the names of the figures withheld because fewer than k members have that value.

    Adding the same amount to every member moves every percentile, the mean and the
    maximum by that amount, so the order statistics SQL computed stay exact.
    """
    if figures.counted == 0:
        return DistributionOut(mean=None, median=None, p25=None, p75=None, p90=None, p99=None, max=None,
                               share_zero=None), []
    shown = {name: suppression.shown_value(half_up(p + share_cents), holders, k)
             for name, p, holders in zip(_STATISTICS, figures.percentiles, figures.holders, strict=True)}
    shown["max"] = suppression.shown_value(half_up(figures.max_cents + share_cents), figures.max_holders, k)
    zero = figures.zero if share_cents == 0 else 0
    share = ratio(zero, figures.counted) if suppression.share_shown(zero, figures.counted, k) else None
    withheld = [name for name, value in shown.items() if value is None] + ([] if share is not None else ["share_zero"])
    mean = half_up(Fraction(figures.total_cents, figures.counted) + share_cents)
    return DistributionOut(mean=mean, share_zero=share, **shown), withheld


def _segment(figures: SegmentFigures, share_cents: Fraction, k: int | None, *, hidden: bool
             ) -> tuple[SegmentOut, list[str]]:
    if hidden:
        return SegmentOut(counted=None, mean=None, median=None, p25=None, p75=None, p90=None, p99=None,
                          max=None, share_zero=None, suppressed=True), []
    shown, withheld = distribution(figures, share_cents, k)
    return SegmentOut(counted=figures.counted, **msgspec.structs.asdict(shown)), withheld


def digest(request: ReportRequest, read: Read) -> str:
    """SHA-256 of the request and of each table's rows read (each digested in SQL: a hash of every
    row read, of the columns the figures use, added up; incentives.queries) and of the
    disclosures version the notice's words come from. Not of `as_of`: see the module's docstring."""
    inputs = {
        "program": request.program,
        "period": [request.period.start.isoformat(), request.period.end.isoformat(), request.period.zone],
        "method": request.method,
        "program_expense_cents": request.program_expense_cents,
        "tables": read.table_digests,
        "rows": read.rows_read,
        "disclosures_version": read.disclosures_version,
    }
    return hashlib.sha256(msgspec.json.encode(inputs, order="sorted")).hexdigest()


def withheld_reason(program: str, period: Period, snapshot_time: datetime, counted: int, member_seconds: int | Fraction,
                    total_cents: Fraction, yearly: int | None, method: str, k: int | None,
                    few_valued: bool = False) -> str | None:
    """Why there is no notice paragraph to publish, in words; None when there is one."""
    who = "members" if program == "rewards" else "subscribers"
    when = period_words(period.start, period.end)
    if snapshot_time < period.lower:
        return ("The period has not begun: there is nothing yet to estimate from, so no notice is published "
                "for it. Run the report for a period that has started.")
    if counted == 0:
        return (f"Nobody was counted {when}: there is no good-faith estimate of the value of {who}' data, and "
                "without one the incentive may not be offered (11 CCR §7080(b)).")
    if k and counted < k:
        return (f"Only {counted:,} {who} were counted {when}, fewer than the minimum cell size of {k:,}: the "
                "estimate is withheld, so there is no notice to publish.")
    if few_valued:
        return (f"Fewer than the minimum cell size of {k:,} {who} counted {when} have any value under the {method} "
                "method: the estimate would be theirs alone, so it is withheld and there is no notice to publish.")
    if member_seconds <= 0:
        return (f"The {counted:,} {who} counted {when} have no time "
                f"{'enrolled' if program == 'rewards' else 'subscribed'} in the period on record, so no value "
                "per year can be stated.")
    if total_cents == 0 or not yearly:
        return (f"The {counted:,} {who} counted {when} have a value of {dollars(0)} under the {method} method: "
                "there is no estimate to state, and with no estimate the incentive may not be offered "
                "(11 CCR §7080(b)). Choose another method or period.")
    return None


def assemble(request: ReportRequest, read: Read, notice_text: object) -> Valuation:
    """The report from what SQL read; `notice_text(facts) -> str` words the notice."""
    period, k = request.period, request.min_cell_size
    everyone = read.segments.get("all") or NO_SEGMENT
    counted = everyone.counted
    expense = request.program_expense_cents or 0
    share = Fraction(expense, counted) if counted and expense else Fraction(0)
    hide_all = bool(k) and counted < (k or 0)
    # the value comes from fewer than k members: its total (the mean times the count) is theirs
    few_valued = suppression.few(counted - everyone.zero, k)
    hide_values = hide_all or few_valued
    figures_by = {name: read.segments.get(name) or NO_SEGMENT for name in SEGMENTS}
    segment_sizes = {name: f.counted for name, f in figures_by.items()}
    hide_segments = hide_values or any(suppression.few(f.counted, k) or suppression.few(f.counted - f.zero, k)
                                       for f in figures_by.values())
    withheld: list[str] = []

    if hide_values:
        overall, _ = distribution(NO_SEGMENT, share, k)
        withheld += (["members.member_years", "spend", "points"] if hide_all else []) + [
            "rewards", "value_per_member_cents", "annualized_value_per_member_cents"]
    else:
        overall, hidden = distribution(everyone, share, k)
        withheld += [f"value_per_member_cents.{name}" for name in hidden]
    segments = {}
    for name in SEGMENTS:
        segments[name], hidden = _segment(figures_by[name], share, k, hidden=hide_segments)
        withheld += [f"by_segment.{name}.{h}" for h in hidden]
    if hide_segments:
        withheld.append("by_segment")

    total = Fraction(everyone.total_cents + (expense if counted else 0))
    yearly = annualized(total, read.member_seconds) if counted else None
    member_years = Fraction(read.member_seconds, SECONDS_PER_YEAR)
    redeemed = read.rewards["redeemed_cents"]
    qualifying = read.spend["qualifying_cents"]
    per_100 = Fraction(redeemed * 10_000, qualifying) if qualifying else None
    when = as_of(period, read.snapshot_time)
    method = METHODS_BY_CODE[request.method]

    reason = withheld_reason(request.program, period, read.snapshot_time, counted, read.member_seconds, total,
                             yearly, request.method, k, few_valued)
    zero = everyone.zero if not share else 0
    facts = NoticeFacts(
        program=request.program, method=request.method, regulation=method.regulation, period=period,
        counted=counted, member_years=member_years, annualized_cents=yearly,
        share_zero=Fraction(zero, counted) if counted and overall.share_zero is not None else None,
        p90_cents=overall.p90, value_per_100_spend_cents=per_100, program_expense_cents=request.program_expense_cents,
        rules=read.rules, disclosures=read.disclosures,
    )
    text = None if reason else notice_text(facts)  # type: ignore[operator]

    raw = [Bin(half_up(b.from_cents + share), None if b.to_cents is None else half_up(b.to_cents + share),
               b.members) for b in read.histogram]
    histogram = [] if hide_values else suppression.merge_bins(raw, k)
    if k and not hide_values and histogram != raw:
        withheld.append("chart")

    points = read.points or {}
    rewards = dict(read.rewards)
    report = IncentiveReport(
        program=request.program,
        period=PeriodOut(from_=period.start, to=period.end, time_zone=period.zone, days=period.days),
        method=MethodOut(code=method.code, regulation=method.regulation,
                         description=method.description[request.program]),
        members=MembersOut(**read.members, counted=counted,
                           member_years=None if hide_all else ratio(read.member_seconds, SECONDS_PER_YEAR)),
        spend=SpendOut(**{key: None if hide_all else value for key, value in read.spend.items()}),
        points=PointsOut(**{key: None if hide_all else points.get(key) for key in (
            "earned_point_cents", "bonus_point_cents", "reversed_point_cents", "forfeited_point_cents")}),
        rewards=RewardsOut(**{key: None if hide_values else value for key, value in rewards.items()},
                           redemption_rate=None if hide_values else ratio(rewards["redeemed_count"],
                                                                            rewards["issued_count"])),
        value_per_member_cents=overall,
        by_segment=BySegmentOut(**segments),
        annualized_value_per_member_cents=None if hide_values else yearly,
        notice_text=text,
        notice_withheld=reason,
        warnings=warnings(Circumstances(
            program=request.program, period=period, snapshot_time=read.snapshot_time, as_of=when,
            first_joined=read.first_joined, first_purchase=read.first_purchase, last_purchase=read.last_purchase,
            counted=counted, counted_without_time=read.counted_without_time, unmatched=read.unmatched,
            rules_versions=read.rules_versions, rules_quoted=read.rules.version, min_cell_size=k,
            smallest_segment=min((n for n in (counted, *segment_sizes.values()) if n > 0), default=0),
        )),
        suppression=SuppressionOut(min_cell_size=k, withheld=withheld),
        reproducibility=ReproducibilityOut(
            as_of=when, rules_versions=read.rules_versions, disclosures_version=read.disclosures_version,
            rows_read=read.rows_read, digest=digest(request, read),
        ),
    )
    return Valuation(report=report, histogram=histogram, value_per_100_spend_cents=None if hide_values else per_100,
                     notice_facts=facts, first_purchase=read.first_purchase, last_purchase=read.last_purchase)
