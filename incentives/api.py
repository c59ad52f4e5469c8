"""HTTP handlers of the reports (scope `compliance`): thin, they call `incentives.reports`."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from litestar import Response, get
from litestar.datastructures import State
from litestar.params import QueryParameter

from incentives import reports
from incentives.examples import INCENTIVE_VALUE_RESPONSE, LIABILITY_RESPONSE
from incentives.render import MEDIA_TYPES
from incentives.valuation import Period, ReportRequest
from rewards import errors
from rewards.access import scoped

Program = Literal["rewards", "mailing_list"]
Method = Literal["expenses", "rewards_issued", "expenses_plus_program"]
Format = Literal["json", "csv", "html"]


def _document(body: bytes, fmt: str, filename: str) -> Response[bytes]:
    headers = {"content-disposition": f'attachment; filename="{filename}.csv"'} if fmt == "csv" else None
    # Litestar adds "; charset=utf-8" to a text/ type itself: given it too, it was sent twice
    return Response(body, media_type=MEDIA_TYPES[fmt].removesuffix("; charset=utf-8"), headers=headers)


@scoped("compliance", errors=[errors.NoEstimate], ok=INCENTIVE_VALUE_RESPONSE)
@get("/v1/reports/incentive-value", tags=["reports"], summary="The value of personal information (the notice's figures)")
async def incentive_value(
    state: State,
    program: Annotated[Program, QueryParameter(description="the program valued")],
    from_: Annotated[date, QueryParameter(name="from", description="first day of the period (UTC), YYYY-MM-DD")],
    to: Annotated[date, QueryParameter(description="last day of the period, included (UTC), YYYY-MM-DD")],
    fmt: Annotated[Format, QueryParameter(name="format", description="json, csv or html")] = "json",
    method: Annotated[Method, QueryParameter(description="the 11 CCR §7081(a) method")] = "expenses",
    program_expense_cents: Annotated[
        int | None, QueryParameter(ge=0, le=10**13, description="the program's expense for the period "
                                                            "(method expenses_plus_program only)")
    ] = None,
    min_cell_size: Annotated[
        int | None, QueryParameter(ge=1, le=1_000_000, description="withhold any segment with fewer members")
    ] = None,
) -> Response[bytes]:
    """The value of members' personal information, with the notice paragraph.

    422 `no_estimate` when there is no estimate to state (nobody counted, or a value of $0).
    """
    request = ReportRequest(program=program, period=Period(from_, to), method=method,
                            program_expense_cents=program_expense_cents, min_cell_size=min_cell_size)
    result = await reports.incentive_value(state.db, request)
    return _document(reports.incentive_value_document(result, fmt), fmt,
                     f"incentive-value-{program}-{from_.isoformat()}-{to.isoformat()}")


@scoped("compliance", ok=LIABILITY_RESPONSE)
@get("/v1/reports/liability", tags=["reports"], summary="The program's liability at a date's close")
async def liability(
    state: State,
    as_of: Annotated[date, QueryParameter(description="the date whose close the report describes (UTC), YYYY-MM-DD")],
    fmt: Annotated[Literal["json", "csv"], QueryParameter(name="format", description="json or csv")] = "json",
) -> Response[bytes]:
    """Points outstanding and rewards issued but not redeemed, aged by expiry, at the close of `as_of`."""
    report = await reports.liability(state.db, as_of)
    return _document(reports.liability_document(report, fmt), fmt, f"liability-{as_of.isoformat()}")


ROUTES = [incentive_value, liability]
