"""The report by store: per store and period, purchases, qualifying spend, points earned, and the
rewards redeemed there (count and cents).

A period is whole days in the program's time zone, as for the other reports
(`incentives.periods`); a purchase belongs to the period of its `occurred_at`, and a reward to
the store and period of the purchase that redeemed it (a reward given back by a return that
reinstated it is not counted). Every figure comes from the purchases' own columns (`store_id`
is one since revision 0005), read in one statement. CSV has one row per store, then the totals.
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime

import msgspec

from incentives.periods import Period
from incentives.render import to_json
from incentives.valuation import period_problems
from rewards.db import Database
from rewards.errors import ValidationFailed

STORES = """
WITH bought AS (
    SELECT store_id, count(*) AS purchases, sum(qualifying_cents)::bigint AS qualifying_cents,
           sum(point_cents)::bigint AS point_cents, sum(bonus_point_cents)::bigint AS bonus_point_cents
    FROM purchases WHERE occurred_at >= $1 AND occurred_at < $2 GROUP BY store_id),
redeemed AS (
    SELECT p.store_id, count(*) AS n, sum(w.value_cents)::bigint AS cents
    FROM purchases p JOIN rewards w ON w.redeemed_purchase_id = p.id
    WHERE p.occurred_at >= $1 AND p.occurred_at < $2 GROUP BY p.store_id)
SELECT b.store_id, b.purchases, b.qualifying_cents, b.point_cents, b.bonus_point_cents,
       coalesce(r.n, 0) AS rewards_redeemed_count, coalesce(r.cents, 0) AS rewards_redeemed_cents
FROM bought b LEFT JOIN redeemed r ON r.store_id = b.store_id
ORDER BY b.store_id"""

COLUMNS = ("store_id", "purchases", "qualifying_cents", "point_cents_earned", "bonus_point_cents",
           "rewards_redeemed_count", "rewards_redeemed_cents")


class StoreFigures(msgspec.Struct, kw_only=True):
    purchases: int
    qualifying_cents: int
    point_cents_earned: int
    """Earned by the purchases, the card bonus included."""
    bonus_point_cents: int
    rewards_redeemed_count: int
    rewards_redeemed_cents: int


class StoreRow(StoreFigures, kw_only=True):
    store_id: str


class StoresPeriod(msgspec.Struct):
    from_: date = msgspec.field(name="from")
    to: date


class StoresReport(msgspec.Struct, kw_only=True):
    period: StoresPeriod
    time_zone: str
    generated_at: datetime
    stores: list[StoreRow]
    """Each store with a purchase in the period, by store_id."""
    totals: StoreFigures


def check_period(period: Period) -> None:
    if problems := period_problems(period):
        field, message = problems[0]
        raise ValidationFailed(message, field=field)


async def stores(db: Database, period: Period) -> StoresReport:
    check_period(period)
    async with db.connection() as conn:
        rows = await conn.fetch(STORES, period.lower, period.upper)
        generated_at = await conn.fetchval("SELECT clock_timestamp()")
    found = [StoreRow(store_id=r["store_id"], purchases=r["purchases"], qualifying_cents=r["qualifying_cents"],
                      point_cents_earned=r["point_cents"], bonus_point_cents=r["bonus_point_cents"],
                      rewards_redeemed_count=r["rewards_redeemed_count"],
                      rewards_redeemed_cents=r["rewards_redeemed_cents"]) for r in rows]
    totals = StoreFigures(**{name: sum(getattr(row, name) for row in found) for name in COLUMNS[1:]})
    return StoresReport(period=StoresPeriod(period.start, period.end), time_zone=period.zone,
                        generated_at=generated_at, stores=found, totals=totals)


def document(report: StoresReport, fmt: str) -> bytes:
    if fmt != "csv":
        return to_json(report)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row in report.stores:
        writer.writerow([getattr(row, name) for name in COLUMNS])
    writer.writerow(["(all stores)", *(getattr(report.totals, name) for name in COLUMNS[1:])])
    return out.getvalue().encode()
