"""The reports as service functions: check the request, read one snapshot, assemble, render.

The HTTP handlers (`incentives.api`) and the `rewards report` commands (`incentives.cli`)
both call these, so the two give the same figures byte for byte.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from incentives import liability as liability_report
from incentives import notice, queries, render, valuation
from incentives.valuation import ReportRequest, Valuation
from incentives.words import day
from rewards.db import Database
from rewards.errors import ValidationFailed


async def incentive_value(db: Database, request: ReportRequest) -> Valuation:
    """The incentive-value report: every figure, and the notice paragraph or why it is withheld."""
    problems = valuation.check_request(request)
    if problems:
        field, message = problems[0]
        raise ValidationFailed(message, field=field)
    async with db.connection() as conn, db.connection() as side:
        read = await queries.read_valuation(conn, side, request)
    return valuation.assemble(request, read, notice.paragraph)


def incentive_value_document(result: Valuation, fmt: str) -> bytes:
    if fmt == "csv":
        return render.to_csv(result.report, result.histogram)
    if fmt == "html":
        return render.to_html(result)
    return render.to_json(result.report)


def liability_date(as_of: date | None, zone: str, now: datetime | None = None) -> tuple[date, datetime, bool]:
    """The date reported (today when none is given), its cutoff and whether that day is closed.

    A date still to come is refused: its close has not happened, and the report would
    describe it as closed with today's figures.
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    today = now.astimezone(ZoneInfo(zone)).date()
    as_of = as_of or today
    if as_of > today:
        raise ValidationFailed(f"as_of {as_of.isoformat()} is in the future: the close of {day(as_of)} has not "
                               f"happened yet (today is {day(today)}, {zone})", field="as_of")
    close = liability_report.close_of(as_of, zone).astimezone(UTC)
    return as_of, min(close, now), close <= now


async def liability(db: Database, as_of: date | None, zone: str) -> liability_report.LiabilityReport:
    as_of, cutoff, closed = liability_date(as_of, zone)
    async with db.connection() as conn:
        points, buckets, version = await queries.read_liability(conn, cutoff)
    return liability_report.assemble(as_of, zone, cutoff, closed, points, buckets, version)


def liability_document(report: liability_report.LiabilityReport, fmt: str) -> bytes:
    return render.to_csv(report) if fmt == "csv" else render.to_json(report)
