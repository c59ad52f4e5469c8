"""The reports as service functions: check the request, read one snapshot, assemble, render.

The HTTP handlers (`incentives.api`) and the `rewards report` commands (`incentives.cli`)
both call these, so the two give the same figures byte for byte.
"""

from __future__ import annotations

from datetime import date

from incentives import liability as liability_report
from incentives import notice, queries, render, valuation
from incentives.valuation import ReportRequest, Valuation
from rewards.db import Database
from rewards.errors import ValidationFailed


async def incentive_value(db: Database, request: ReportRequest) -> Valuation:
    """The incentive-value report; `NoEstimate` (422) when there is no estimate to state."""
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


async def liability(db: Database, as_of: date) -> liability_report.LiabilityReport:
    async with db.connection() as conn:
        points, buckets, version = await queries.read_liability(conn, liability_report.cutoff(as_of))
    return liability_report.assemble(as_of, points, buckets, version)


def liability_document(report: liability_report.LiabilityReport, fmt: str) -> bytes:
    return render.to_csv(report) if fmt == "csv" else render.to_json(report)
