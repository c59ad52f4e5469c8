"""Small-cell suppression: with `min_cell_size` k, no published figure describes fewer than k members.

A figure singles out members when it is the value of fewer than k of them, or when it can
be worked out from other published figures to be one. So, with k set:
- fewer than k members counted in all: every figure drawn from their values and activity
  is withheld (the distribution, the segments, the chart, spend, points, rewards, the
  annualised value and the member-years); only the member counts remain, to say why;
- fewer than k members with any value at all: the total value is theirs (the mean times
  the count), so the distribution, the value totals (rewards), the annualised value and
  the chart are withheld, and with them the notice;
- a segment (card holders, others) smaller than k, or with 1 to k-1 members of any value,
  is withheld, and so is the other one, since the whole less one segment would give it away;
- an order statistic (a percentile or the maximum) is a value some member has: it is
  published only when at least k members have exactly that value;
- the share with $0 is published only when both the members at $0 and the others are
  either nobody or at least k (with the mean, a lone member above $0 would be found out);
- the chart's bars are merged with their neighbours until each holds at least k members,
  and the top bar is open-ended ("$40.00 or more"), so no bar gives the maximum away.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Bin:
    """Members whose value lies in [from_cents, to_cents]; `to_cents` None: that value or more."""

    from_cents: int
    to_cents: int | None
    members: int


def few(members: int, k: int | None) -> bool:
    """A group of 1 to k-1 members: small enough to single someone out."""
    return bool(k) and 0 < members < (k or 0)


def shown_value(value: int | None, holders: int, k: int | None) -> int | None:
    """A member's value (a percentile, the maximum), or None when fewer than k members have it."""
    if value is None or (k and holders < k):
        return None
    return value


def share_shown(zero: int, counted: int, k: int | None) -> bool:
    """Whether the share with $0 may be published: neither side of it is a group of 1..k-1."""
    if not k:
        return True
    return all(group == 0 or group >= k for group in (zero, counted - zero))


def merge_bins(bins: list[Bin], k: int | None) -> list[Bin]:
    """Bars of at least k members each (empty ones kept only between full ones), the top one open."""
    if not k:
        return bins
    merged: list[Bin] = []
    pending: Bin | None = None
    for b in bins:
        pending = b if pending is None else Bin(pending.from_cents, b.to_cents, pending.members + b.members)
        if pending.members >= k:
            merged.append(pending)
            pending = None
    if pending is not None and pending.members and merged:
        last = merged.pop()
        merged.append(Bin(last.from_cents, pending.to_cents, last.members + pending.members))
    elif pending is not None and pending.members:
        merged.append(pending)  # fewer than k in all: the caller withholds the chart
    if merged:
        top = merged.pop()
        merged.append(Bin(top.from_cents, None, top.members))
    return merged
