"""Figures in words, as the notice and the page for counsel write them: money, shares, dates."""

from __future__ import annotations

from datetime import date, datetime
from fractions import Fraction
from zoneinfo import ZoneInfo

from incentives.arithmetic import half_up


def dollars(cents: int | Fraction) -> str:
    """$1,234.56 (exact cents rounded half up)."""
    whole = half_up(cents)
    return f"${whole // 100:,}.{whole % 100:02d}"


def short_dollars(cents: int) -> str:
    """$10 for whole dollars, $10.50 otherwise: how the notice names a Reward."""
    return f"${cents // 100:,}" if cents % 100 == 0 else dollars(cents)


def percent(share: Fraction) -> str:
    return f"{half_up(share * 100)}%"


def day(d: date) -> str:
    """March 1, 2025."""
    return f"{d:%B} {d.day}, {d.year}"


def instant(when: datetime, zone: str) -> str:
    """March 1, 2025 at 4:05 PM (America/Los_Angeles)."""
    local = when.astimezone(ZoneInfo(zone))
    hour = local.hour % 12 or 12
    return f"{day(local.date())} at {hour}:{local.minute:02d} {'AM' if local.hour < 12 else 'PM'} ({zone})"


def period_words(start: date, end: date) -> str:
    """'in 2025' for a calendar year, otherwise 'from March 1, 2025 to March 31, 2025'."""
    if (start.month, start.day, end.month, end.day) == (1, 1, 12, 31) and start.year == end.year:
        return f"in {start.year}"
    return f"from {day(start)} to {day(end)}"


def listing(items: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]
