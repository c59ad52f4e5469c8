"""The liability report: what finance books against the program at the close of a date.

Points outstanding are the members' positive balances (a negative balance, left by a
return, is shown apart: it is not owed to anyone), valued at the reward rate in force
($10 per 300 points: a point-cent is worth reward_value_cents / threshold point-cents).
Rewards issued but not redeemed are those issued by the cutoff and neither redeemed nor
voided by then, aged by their expiry: already expired (no longer owed: breakage), then
expiring within 30, 31-60, 61-90 days, and later. Everything is dated by business time,
so a past date's report does not change when later postings arrive.

The close of a date is local midnight after it in the program's time zone. Without a date
the report is as of now (today, not closed: `closed` false, the cutoff is the moment of
the read); a date still to come is refused, since its close has not happened.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from fractions import Fraction
from zoneinfo import ZoneInfo

import asyncpg
import msgspec

from incentives.arithmetic import half_up
from rewards.rules import Rules

BUCKETS = ("expired", "within_30_days", "within_60_days", "within_90_days", "later")


class Bucket(msgspec.Struct, kw_only=True):
    count: int
    cents: int


class Aged(msgspec.Struct, kw_only=True):
    expired: Bucket
    within_30_days: Bucket
    within_60_days: Bucket
    within_90_days: Bucket
    later: Bucket


class PointsOutstanding(msgspec.Struct, kw_only=True):
    point_cents: int
    points: int
    value_cents: int
    members: int
    negative_point_cents: int
    members_negative: int


class RewardsUnredeemed(msgspec.Struct, kw_only=True):
    count: int
    cents: int
    outstanding_count: int
    outstanding_cents: int
    aged: Aged


class RewardRate(msgspec.Struct, kw_only=True):
    rules_version: int
    reward_threshold_points: int
    reward_value_cents: int


class LiabilityReport(msgspec.Struct, kw_only=True):
    as_of: date
    time_zone: str
    closed: bool  # false for today: the figures are those of the moment of the read (`cutoff`)
    cutoff: datetime
    reward_rate: RewardRate
    points_outstanding: PointsOutstanding
    rewards_unredeemed: RewardsUnredeemed
    total_liability_cents: int
    rows_read: dict[str, int]


def close_of(as_of: date, zone: str) -> datetime:
    """The close of the as-of date: the first instant of the next day in the program's time zone."""
    return datetime.combine(as_of + timedelta(days=1), time(0), tzinfo=ZoneInfo(zone))


def point_value_cents(point_cents: int, version: Rules) -> int:
    """What points are worth at the reward rate, in whole cents (half up)."""
    return half_up(Fraction(point_cents * version.reward_value_cents, version.reward_threshold_point_cents))


def assemble(as_of: date, zone: str, cutoff: datetime, closed: bool, points: asyncpg.Record | dict, buckets: list,
             version: Rules) -> LiabilityReport:
    found = {b["bucket"]: Bucket(count=b["count"], cents=b["cents"]) for b in buckets}
    aged = Aged(**{name: found.get(name, Bucket(count=0, cents=0)) for name in BUCKETS})
    outstanding = [found[n] for n in BUCKETS if n != "expired" and n in found]
    out_count, out_cents = sum(b.count for b in outstanding), sum(b.cents for b in outstanding)
    value = point_value_cents(points["point_cents"], version)
    return LiabilityReport(
        as_of=as_of,
        time_zone=zone,
        closed=closed,
        cutoff=cutoff,
        reward_rate=RewardRate(rules_version=version.version, reward_threshold_points=version.reward_threshold_points,
                               reward_value_cents=version.reward_value_cents),
        points_outstanding=PointsOutstanding(
            point_cents=points["point_cents"], points=points["point_cents"] // 100, value_cents=value,
            members=points["members_with_points"], negative_point_cents=points["negative_point_cents"],
            members_negative=points["members_negative"],
        ),
        rewards_unredeemed=RewardsUnredeemed(
            count=out_count + aged.expired.count, cents=out_cents + aged.expired.cents,
            outstanding_count=out_count, outstanding_cents=out_cents, aged=aged,
        ),
        total_liability_cents=value + out_cents,
        rows_read={"ledger": points["ledger_rows"], "rewards": sum(b.count for b in found.values())},
    )
