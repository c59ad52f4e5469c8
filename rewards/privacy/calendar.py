"""The clocks of a consumer's request, in the program's days: pure, no I/O.

- **Confirm receipt within 10 business days** (11 CCR §7021(a)). Business days are Monday to
  Friday except the US federal holidays as observed (the `holidays` package's United States
  calendar: a holiday on a Saturday is observed on the Friday before, on a Sunday the Monday
  after). The day of receipt is not counted: a request received on a Wednesday is confirmed by
  the end of the Wednesday two weeks later, a day later for each holiday in between.
- **Respond within 45 calendar days** (§7021(b)), a period that "will begin on the day that the
  business receives the request": the day of receipt is day 1, so a request received on
  March 2 is due by the end of April 15.

Days are the program's (`REWARDS_TIMEZONE`); each clock ends at the last second of its day
there (23:59:59), as a person reads a deadline.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

CONFIRM_BUSINESS_DAYS = 10
RESPONSE_CALENDAR_DAYS = 45
END_OF_DAY = time(23, 59, 59)


@lru_cache(maxsize=64)
def federal_holidays(year: int) -> frozenset[date]:
    """The US federal holidays of a year, as observed."""
    return frozenset(holidays.country_holidays("US", years=year))


def is_business_day(day: date) -> bool:
    return day.weekday() < 5 and day not in federal_holidays(day.year)


def business_days_after(day: date, count: int) -> date:
    """The `count`-th business day after `day` (`day` itself not counted)."""
    found = 0
    while found < count:
        day += timedelta(days=1)
        found += is_business_day(day)
    return day


def local_day(moment: datetime, zone: str) -> date:
    return moment.astimezone(ZoneInfo(zone)).date()


def end_of(day: date, zone: str) -> datetime:
    """The last second of `day` in the program's time zone."""
    return datetime.combine(day, END_OF_DAY, tzinfo=ZoneInfo(zone))


def confirm_by(received_at: datetime, zone: str) -> datetime:
    return end_of(business_days_after(local_day(received_at, zone), CONFIRM_BUSINESS_DAYS), zone)


def due_at(received_at: datetime, zone: str) -> datetime:
    return end_of(local_day(received_at, zone) + timedelta(days=RESPONSE_CALENDAR_DAYS - 1), zone)


def start_of(day: date, zone: str) -> datetime:
    """Local midnight at the start of `day`."""
    return datetime.combine(day, time(0), tzinfo=ZoneInfo(zone))


def days_to_respond(received_at: datetime, responded_at: datetime, zone: str) -> int:
    """Calendar days from the day of receipt to the day of the response (0: the same day)."""
    return (local_day(responded_at, zone) - local_day(received_at, zone)).days
