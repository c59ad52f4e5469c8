"""Reference arithmetic for the report tests, independent of incentives/: the program's calendar
(Los Angeles), member-years measured on its wall clock, cents rounded half up."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from fractions import Fraction
from zoneinfo import ZoneInfo


LA = ZoneInfo("America/Los_Angeles")


def local(text: str) -> datetime:
    """An instant given in Los Angeles wall-clock time."""
    return datetime.fromisoformat(text).replace(tzinfo=LA)


def years_enrolled(spans: list[tuple[datetime, datetime | None]], start: date, end: date, as_of: datetime) -> Fraction:
    """Reference member-years: each span clipped to the period (LA days) and to as_of, measured on the
    LA wall clock, over 365 days; spans of one member must not overlap."""
    lower = datetime.combine(start, time(0), tzinfo=LA)
    upper = datetime.combine(end + timedelta(days=1), time(0), tzinfo=LA)
    total = 0
    for enrolled, cancelled in spans:
        begin = max(enrolled, lower)
        finish = min(cancelled or upper, upper, as_of)
        if finish > begin:
            wall_begin = begin.astimezone(LA).replace(tzinfo=None)
            wall_finish = finish.astimezone(LA).replace(tzinfo=None)
            total += round((wall_finish - wall_begin).total_seconds())
    return Fraction(total, 365 * 86400)


def cents_half_up(value: Fraction) -> int:
    return int(value + Fraction(1, 2))
