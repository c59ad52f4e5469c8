"""The per-member distribution from the members counted at each value: percentiles, maximum, chart.

The SQL adds up each member's value and counts the members at each (segment, value) pair
(`incentives.queries`): a few rows, since values are mostly whole Rewards. Everything
else is worked out here, exactly, from those counts:
- percentiles are `percentile_disc` (PostgreSQL's definition): the smallest value whose
  members reach rank ceil(p × N), with the same float arithmetic, so each is a value some
  member actually has; beside each, how many members have it (for small-cell suppression);
- the chart has one bar per value when there are at most HISTOGRAM_EXACT_VALUES of them;
  otherwise a bar for $0, then bars of a round width (1, 2 or 5 times a power of ten
  cents) over (0, max], at most HISTOGRAM_BINS of them: bar k holds ((k-1)w, kw].
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from incentives.suppression import Bin
from incentives.valuation import PERCENTILES, SEGMENTS, SegmentFigures

HISTOGRAM_EXACT_VALUES = 24
HISTOGRAM_BINS = 20

Counts = list[tuple[bool, int, int]]  # (card holder, value in cents, members)


def _figures(values: dict[int, int]) -> SegmentFigures:
    ordered = sorted(values.items())
    counted = sum(members for _, members in ordered)
    percentiles, holders = [], []
    for p in PERCENTILES:
        rank = max(1, math.ceil(p * counted))
        upto = 0
        for cents, members in ordered:
            upto += members
            if upto >= rank:
                percentiles.append(cents)
                holders.append(members)
                break
    top, top_holders = ordered[-1]
    return SegmentFigures(counted=counted, total_cents=sum(c * m for c, m in ordered), percentiles=tuple(percentiles),
                          holders=tuple(holders), max_cents=top, max_holders=top_holders, zero=values.get(0, 0))


def segments(counts: Iterable[tuple[bool, int, int]]) -> dict[str, SegmentFigures]:
    """Figures for "all", "card_holders" and "others"; a segment with nobody is left out."""
    by: dict[str, dict[int, int]] = {"all": {}, SEGMENTS[0]: {}, SEGMENTS[1]: {}}
    for card_holder, cents, members in counts:
        for name in ("all", SEGMENTS[0] if card_holder else SEGMENTS[1]):
            by[name][cents] = by[name].get(cents, 0) + members
    return {name: _figures(values) for name, values in by.items() if values}


def round_width(top_cents: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, ... cents that covers (0, top] in HISTOGRAM_BINS bars."""
    needed = max(1, -(-top_cents // HISTOGRAM_BINS))
    scale = 1
    while True:
        for step in (1, 2, 5):
            if step * scale >= needed:
                return step * scale
        scale *= 10


def histogram(counts: Iterable[tuple[bool, int, int]]) -> list[Bin]:
    values: dict[int, int] = {}
    for _, cents, members in counts:
        values[cents] = values.get(cents, 0) + members
    if len(values) <= HISTOGRAM_EXACT_VALUES:
        return [Bin(cents, cents, members) for cents, members in sorted(values.items())]
    top = max(values)
    width = round_width(top)
    bars = [0] * (-(-top // width) + 1)
    for cents, members in values.items():
        bars[-(-cents // width)] += members
    return [Bin(0, 0, bars[0])] + [Bin((k - 1) * width + 1, k * width, bars[k]) for k in range(1, len(bars))]
