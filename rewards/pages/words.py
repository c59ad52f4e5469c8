"""What the guest's pages say, in words: points, money, dates, expiry, and each ledger entry.

Pure functions of integers and dates; the pages' templates show what they return (escaped,
as everything is). Points are shown with their hundredths (`45.50 points`), as the ledger
keeps them, so that every line of the activity adds up to the balance shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo


def points(point_cents: int) -> str:
    """Point-cents as points with two decimals and thousands separators: 123456 → '1,234.56'."""
    sign = "-" if point_cents < 0 else ""
    whole, cents = divmod(abs(point_cents), 100)
    return f"{sign}{whole:,}.{cents:02d}"


def money(cents: int) -> str:
    """Cents as dollars, without cents when there are none: 1000 → '$10', 1050 → '$10.50'."""
    dollars, rest = divmod(cents, 100)
    return f"${dollars:,}" if rest == 0 else f"${dollars:,}.{rest:02d}"


def day(when: datetime, zone: ZoneInfo) -> str:
    """The day of an instant in the program's time zone: 'Nov 25, 2026'."""
    local = when.astimezone(zone)
    return f"{local:%b} {local.day}, {local.year}"


def days_until(when: datetime, now: datetime, zone: ZoneInfo) -> int:
    """Whole calendar days from today to the day of `when`, both in the program's time zone."""
    return (when.astimezone(zone).date() - now.astimezone(zone).date()).days


def expires_in(when: datetime, now: datetime, zone: ZoneInfo) -> str:
    """'expires today', 'expires tomorrow', 'expires in 90 days'."""
    days = days_until(when, now, zone)
    if days <= 0:
        return "expires today"
    if days == 1:
        return "expires tomorrow"
    return f"expires in {days} days"


def card_number(number: str) -> str:
    """A card number in groups of four, as printed on a card: '7020 4187 3356 9012'."""
    return " ".join(number[i:i + 4] for i in range(0, len(number), 4))


def phone(number: str | None) -> str | None:
    """A North American number as people write it, '(555) 123-4567'; any other as stored."""
    digits = (number or "").removeprefix("+")
    if len(digits) == 11 and digits.isdigit() and digits.startswith("1"):
        return f"({digits[1:4]}) {digits[4:7]}-{digits[7:]}"
    return number


def first_name(name: str | None) -> str | None:
    """The first word of a member's name, to greet them; None when there is none."""
    words = (name or "").split()
    return words[0] if words else None


@dataclass(frozen=True, slots=True)
class Entry:
    """A ledger entry with what the words need about what caused it."""

    kind: str
    point_cents: int
    store_id: str | None = None
    """The store of the purchase the entry refers to (for a return, the purchase returned)."""
    online: bool = False
    """That purchase was made online (the web shop), not at a store."""
    reward_code: str | None = None
    reward_value_cents: int | None = None
    by_return: bool = False
    """A reward voided by a return (not by the membership's cancellation)."""


def _where(entry: Entry) -> str:
    if entry.online:
        return "an online order"
    return f"a purchase at store {entry.store_id}" if entry.store_id else "a purchase"


def _reward(entry: Entry) -> str:
    """'$10 reward WR…', or 'Reward WR…' when its value is not known: the start of a sentence."""
    value = money(entry.reward_value_cents) + " reward" if entry.reward_value_cents is not None else "Reward"
    return f"{value} {entry.reward_code}" if entry.reward_code else value


def explain(entry: Entry) -> str:
    """One entry of the activity as a sentence: '45.50 points for a purchase at store S012'."""
    amount = points(abs(entry.point_cents))
    kind = entry.kind
    if kind == "earn":
        return f"{amount} points for {_where(entry)}"
    if kind == "card_bonus":
        return f"{amount} bonus points for paying with the Westique Credit Card ({_where(entry)})"
    if kind == "reward_issued":
        return f"{amount} points turned into your {_reward(entry)}"
    if kind == "reward_redeemed":
        return f"{_reward(entry)} used on {_where(entry)}"
    if kind == "reward_voided" and entry.by_return:
        back = f"; its {amount} points came back" if entry.point_cents > 0 else ""
        return f"{_reward(entry)} taken back by a return from {_where(entry)}{back}"
    if kind == "reward_voided":
        return f"{_reward(entry)} closed when the membership was cancelled"
    if kind == "reward_reinstated":
        return f"{_reward(entry)} is yours to use again after a return"
    if kind == "reward_expired":
        return f"{_reward(entry)} expired unused"
    if kind == "return":
        return f"{amount} points taken back for items returned from {_where(entry)}"
    if kind == "forfeit":
        return f"{amount} points given up when the membership was cancelled"
    if kind == "adjustment":
        return f"{amount} points {'added' if entry.point_cents >= 0 else 'taken off'} by Guest Services"
    if kind == "merge_in":
        return f"{amount} points moved here from another membership of yours"
    if kind == "merge_out":
        return f"{amount} points moved to your other membership"
    return f"{amount} points: {kind.replace('_', ' ')}"


def signed_points(point_cents: int) -> str:
    """The change an entry makes, signed: '+45.50', '−12.00' (a true minus sign), '0.00'."""
    if point_cents > 0:
        return "+" + points(point_cents)
    if point_cents < 0:
        return "\u2212" + points(-point_cents)
    return points(0)


def progress(point_cents: int, threshold_point_cents: int) -> int:
    """How far the balance is towards the next reward, in point-cents from 0 to the threshold."""
    return max(0, min(point_cents, threshold_point_cents))
