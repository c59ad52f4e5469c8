"""A report's period: whole days in the program's time zone, both ends included."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from rewards.config import DEFAULT_TIMEZONE

SECONDS_PER_YEAR = 365 * 86_400  # a year of 365 days: a member enrolled all of 2025 counts 1.0


@dataclass(frozen=True)
class Period:
    """Days `start` to `end` (both included) on the calendar of `zone`.

    The period runs from local midnight at the start of `start` to local midnight after
    `end`, so a purchase at 23:30 on the last day in Los Angeles is in it and one at 00:30
    the next morning is not, whatever their UTC dates.
    """

    start: date
    end: date
    zone: str = DEFAULT_TIMEZONE

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.zone)

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def lower(self) -> datetime:
        """The first instant of the period (UTC)."""
        return datetime.combine(self.start, time(0), tzinfo=self.tz).astimezone(UTC)

    @property
    def upper(self) -> datetime:
        """The first instant after the period (UTC; the bound is exclusive)."""
        return datetime.combine(self.end + timedelta(days=1), time(0), tzinfo=self.tz).astimezone(UTC)
