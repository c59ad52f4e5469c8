"""A request's clocks: 10 business days to confirm (weekdays, US federal holidays as observed
skipped, the day of receipt not counted), 45 calendar days to respond (the day of receipt the
first), each ending at the last second of its day in the program's time zone. Expected dates are
counted by hand on the calendar, never by the code under test."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from rewards.privacy import calendar

LA = "America/Los_Angeles"
PST, PDT = timezone(timedelta(hours=-8)), timezone(timedelta(hours=-7))


def la(y: int, m: int, d: int, hh: int = 12, mm: int = 0, tz: timezone = PST) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=tz)


@pytest.mark.parametrize(("received", "confirm_day", "why"), [
    # Monday Feb 2, 2026: Tue 3 … Fri 6 (4), Mon 9 … Fri 13 (9), Mon 16 is Presidents' Day, Tue 17 (10)
    (la(2026, 2, 2), date(2026, 2, 17), "a holiday in the second week adds a day"),
    # Friday Feb 6: Mon 9 … Fri 13 (5), Presidents' Day skipped, Tue 17 … Fri 20 (9), Mon 23 (10)
    (la(2026, 2, 6), date(2026, 2, 23), "received on a Friday: the weekend is not counted"),
    # Saturday Feb 7: the count starts on Monday the 9th, as for the Friday before
    (la(2026, 2, 7), date(2026, 2, 23), "received on a weekend"),
    # Monday Feb 16, Presidents' Day itself: Tue 17 … Fri 20 (4), Mon 23 … Fri 27 (9), Mon Mar 2 (10)
    (la(2026, 2, 16), date(2026, 3, 2), "received on a holiday"),
    # Wednesday Nov 19, 2025: Thu 20, Fri 21, Mon 24, Tue 25, Wed 26, (Thanksgiving Thu 27), Fri 28,
    # Mon Dec 1, Tue 2, Wed 3, Thu 4
    (la(2025, 11, 19), date(2025, 12, 4), "Thanksgiving in between"),
    # Wednesday Jun 24, 2026: Thu 25, Fri 26, Mon 29, Tue 30, Wed Jul 1, Thu 2, (Fri 3: Independence Day
    # observed, the 4th being a Saturday), Mon 6, Tue 7, Wed 8, Thu 9
    (la(2026, 6, 24, tz=PDT), date(2026, 7, 9), "a Saturday holiday observed on the Friday"),
])
def test_receipt_is_confirmed_by_the_tenth_business_day_after_it(received, confirm_day, why):
    assert calendar.confirm_by(received, LA) == datetime(confirm_day.year, confirm_day.month, confirm_day.day,
                                                         23, 59, 59, tzinfo=received.tzinfo), why


def test_the_days_are_the_programs_not_utc():
    # 11:30 PM on Friday Feb 6 in Los Angeles is already Saturday in UTC: still received on the Friday
    late_friday = la(2026, 2, 6, 23, 30)
    assert late_friday.astimezone(UTC).date() == date(2026, 2, 7)
    assert calendar.confirm_by(late_friday, LA).date() == date(2026, 2, 23)
    # in New York the same instant is 2:30 AM Saturday: a day later everywhere on its calendar
    assert calendar.due_at(late_friday, "America/New_York").date() == date(2026, 3, 23)
    assert calendar.due_at(late_friday, LA).date() == date(2026, 3, 22)


@pytest.mark.parametrize(("received", "due_day"), [
    (la(2026, 3, 2), date(2026, 4, 15)),     # March 2 is day 1: 30 days of March, 15 of April
    (la(2025, 12, 20), date(2026, 2, 2)),    # 12 days of December, 31 of January, 2 of February
    (la(2024, 1, 31), date(2024, 3, 15)),    # 1 + 29 (a leap February) + 15
])
def test_the_response_is_due_by_the_end_of_the_45th_calendar_day(received, due_day):
    due = calendar.due_at(received, LA)
    assert due.date() == due_day and (due.hour, due.minute, due.second) == (23, 59, 59)
    # weekends and holidays count: 44 whole days after the day of receipt
    assert (due_day - received.date()).days == 44


def test_a_clock_across_the_change_to_summer_time_ends_at_local_midnight():
    due = calendar.due_at(la(2026, 2, 20), LA)  # due April 5, 2026: summer time (UTC-7) by then
    assert due.utcoffset() == timedelta(hours=-7)
    assert due.astimezone(UTC) == datetime(2026, 4, 6, 6, 59, 59, tzinfo=UTC)


def test_days_to_respond_count_calendar_days_on_the_programs_calendar():
    received = la(2025, 3, 3, 23, 0)  # Monday night in Los Angeles: Tuesday in UTC
    assert calendar.days_to_respond(received, la(2025, 3, 3, 23, 50), LA) == 0
    assert calendar.days_to_respond(received, la(2025, 3, 4, 0, 10), LA) == 1
    assert calendar.days_to_respond(received, la(2025, 4, 2, 9, 0, PDT), LA) == 30
