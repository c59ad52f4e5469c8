"""The report's warnings: what a reader must know before trusting or publishing its figures.

Each is a sentence in words. They say when the period is still running or has not begun,
when it starts before the program (or its records) did, when its purchases cover much
less of it than its length suggests, when members are counted with no time enrolled,
when the rules changed inside it, when the figures describe very few people, and, for the
mailing list, when subscribers cannot be matched to purchases.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from incentives.periods import Period
from incentives.words import day, instant

# purchases spread over less than this share of the period's elapsed days: the period holds
# less data than its length suggests
COVERAGE_WARNING = 0.9
# with no min_cell_size, a segment smaller than this is pointed out before anyone publishes it
FEW_PEOPLE = 10


@dataclass(frozen=True)
class Circumstances:
    """What the warnings are drawn from (all instants aware)."""

    program: str
    period: Period
    snapshot_time: datetime
    as_of: datetime
    first_joined: datetime | None  # the first enrollment (the first subscription), of all time
    first_purchase: datetime | None  # within the period
    last_purchase: datetime | None
    counted: int
    counted_without_time: int  # counted, yet no time enrolled in the period is on record
    unmatched: int  # mailing list: counted subscribers who are not members
    rules_versions: list[int]
    rules_quoted: int  # the rules version whose numbers the notice quotes
    min_cell_size: int | None
    smallest_segment: int


def warnings(c: Circumstances) -> list[str]:
    who = "members" if c.program == "rewards" else "subscribers"
    joined = "enrollment" if c.program == "rewards" else "subscription"
    period, zone = c.period, c.period.zone
    found: list[str] = []
    local_today = c.snapshot_time.astimezone(period.tz).date()
    if c.snapshot_time < period.lower:
        found.append(
            f"The period has not begun: it starts on {day(period.start)} and it is now {day(local_today)} "
            f"({zone}). Its figures describe nothing yet, so there is no notice to publish.")
    elif c.snapshot_time < period.upper:
        elapsed = (local_today - period.start).days + 1
        found.append(
            f"The period is still running: it ends on {day(period.end)}. These figures are as of "
            f"{instant(c.as_of, zone)}, {elapsed} of its {period.days} days, and will change as the period goes "
            "on; the digest stays the same only while no input row changes.")
    if c.first_joined is None:
        found.append(f"No {joined} is on record at all: the program has no {who} yet.")
    elif c.first_joined >= c.as_of and c.snapshot_time >= period.lower:
        found.append(
            f"The period ends before the first {joined} on record "
            f"({day(c.first_joined.astimezone(period.tz).date())}): none of its {period.days} days hold {who}.")
    elif c.first_joined > period.lower:
        first_day = c.first_joined.astimezone(period.tz).date()
        found.append(
            f"The period starts on {day(period.start)}, before the first {joined} on record "
            f"({day(first_day)}): {(first_day - period.start).days} of its {period.days} days hold no "
            f"{who}. The per-year figure is weighted by time enrolled, but a period that begins with the "
            "program describes it at its start.")
    found.extend(_coverage(c, who))
    if c.counted_without_time:
        found.append(
            f"{c.counted_without_time:,} of the {c.counted:,} {who} counted have purchases dated in the period "
            f"but no time {'enrolled' if c.program == 'rewards' else 'subscribed'} in it on record (their "
            f"{joined} was recorded after the purchase was made): they count in the distribution but add no "
            f"time to the {'member' if c.program == 'rewards' else 'subscriber'}-years.")
    if c.unmatched:
        found.append(
            f"{c.unmatched:,} of the {c.counted:,} subscribers counted are not members: a purchase names a "
            "member, never a subscriber, so their offer discounts cannot be matched to them and they count "
            "at $0.")
    if len(c.rules_versions) > 1:
        found.append(
            f"The program's rules changed during the period (versions {', '.join(map(str, c.rules_versions))}); "
            f"the notice quotes the numbers of version {c.rules_quoted}, in force at the end of the period.")
    if not c.min_cell_size and 0 < c.smallest_segment < FEW_PEOPLE:
        found.append(
            f"Some figures describe fewer than {FEW_PEOPLE} {who} (the smallest group shown has "
            f"{c.smallest_segment:,}): set min_cell_size before publishing them, so that no figure singles "
            "anyone out.")
    return found


def _coverage(c: Circumstances, who: str) -> list[str]:
    period = c.period
    start = max(period.lower, c.first_joined) if c.first_joined else period.lower
    end = min(period.upper, c.as_of)
    if end <= start or c.counted == 0:
        return []
    if c.first_purchase is None or c.last_purchase is None:
        return [f"No purchase of the {who} counted is dated in the period."]
    first = c.first_purchase.astimezone(period.tz).date()
    last = c.last_purchase.astimezone(period.tz).date()
    covered = (last - first).days + 1
    elapsed = (end - start) / timedelta(days=1)
    if covered >= COVERAGE_WARNING * elapsed:
        return []
    return [
        f"The purchases in the period are dated from {day(first)} to {day(last)} only: {covered} days of the "
        f"{round(elapsed):,} the period has held {who}. The period holds less data than its length suggests."]
