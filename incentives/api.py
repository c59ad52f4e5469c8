"""HTTP handlers of the reports (scope `compliance`): thin, they call `incentives.reports`."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from litestar import Response, get, put
from litestar.datastructures import State
from litestar.params import JSONBody, QueryParameter

from incentives import program_texts, reports, stores
from incentives.disclosures import Disclosures, DisclosuresOut
from incentives.examples import INCENTIVE_VALUE_RESPONSE, LIABILITY_RESPONSE, STORES_RESPONSE
from incentives.periods import Period
from incentives.program_texts import DocumentIn, DocumentOut, DocumentsOut
from incentives.render import MEDIA_TYPES
from incentives.valuation import ReportRequest
from rewards import errors
from rewards.access import scoped

Program = Literal["rewards", "mailing_list"]
Method = Literal["expenses", "rewards_issued", "expenses_plus_program"]
Format = Literal["json", "csv", "html"]


def _document(body: bytes, fmt: str, filename: str) -> Response[bytes]:
    headers = {"content-disposition": f'attachment; filename="{filename}.csv"'} if fmt == "csv" else None
    # Litestar adds "; charset=utf-8" to a text/ type itself: given it too, it was sent twice
    return Response(body, media_type=MEDIA_TYPES[fmt].removesuffix("; charset=utf-8"), headers=headers)


@scoped("compliance", ok=INCENTIVE_VALUE_RESPONSE)
@get("/v1/reports/incentive-value", tags=["reports"], summary="The value of personal information (the notice's figures)")
async def incentive_value(
    state: State,
    program: Annotated[Program, QueryParameter(description="the program valued")],
    from_: Annotated[date, QueryParameter(name="from", description="first day of the period (the program's time zone), YYYY-MM-DD")],
    to: Annotated[date, QueryParameter(description="last day of the period, included, YYYY-MM-DD")],
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

    Periods are whole days in the program's time zone (`REWARDS_TIMEZONE`). With no estimate
    to state (nobody counted, a value of $0, a period to come) the report still answers 200
    with every figure: `notice_text` is null and `notice_withheld` says why.
    """
    period = Period(from_, to, state.settings.timezone)
    request = ReportRequest(program=program, period=period, method=method,
                            program_expense_cents=program_expense_cents, min_cell_size=min_cell_size)
    result = await reports.incentive_value(state.db, request)
    return _document(reports.incentive_value_document(result, fmt), fmt,
                     f"incentive-value-{program}-{from_.isoformat()}-{to.isoformat()}")


@scoped("compliance", ok=LIABILITY_RESPONSE)
@get("/v1/reports/liability", tags=["reports"], summary="The program's liability at a date's close")
async def liability(
    state: State,
    as_of: Annotated[date | None, QueryParameter(
        description="the date whose close the report describes, in the program's time zone (YYYY-MM-DD); "
                    "default today, as of now; a date to come is refused")] = None,
    fmt: Annotated[Literal["json", "csv"], QueryParameter(name="format", description="json or csv")] = "json",
) -> Response[bytes]:
    """Points outstanding and rewards issued but not redeemed, aged by expiry, at the close of `as_of`."""
    report = await reports.liability(state.db, as_of, state.settings.timezone)
    return _document(reports.liability_document(report, fmt), fmt, f"liability-{report.as_of.isoformat()}")


@scoped("compliance", "admin", ok=STORES_RESPONSE)
@get("/v1/reports/stores", tags=["reports"], summary="Purchases, spend, points and rewards by store")
async def stores_report(
    state: State,
    from_: Annotated[date, QueryParameter(name="from", description="first day of the period (the program's time zone), YYYY-MM-DD")],
    to: Annotated[date, QueryParameter(description="last day of the period, included, YYYY-MM-DD")],
    fmt: Annotated[Literal["json", "csv"], QueryParameter(name="format", description="json or csv")] = "json",
) -> Response[bytes]:
    """Per store, for the period: purchases, qualifying spend, points earned (bonus included, and
    the bonus alone), and the rewards redeemed there (count and cents); then the totals."""
    report = await stores.stores(state.db, Period(from_, to, state.settings.timezone))
    return _document(stores.document(report, fmt), fmt, f"stores-{from_.isoformat()}-{to.isoformat()}")


@scoped("admin")
@get("/v1/program/disclosures", tags=["program"], summary="Read the program's disclosures")
async def get_disclosures(state: State) -> DisclosuresOut:
    """The words the notice and the report use, as last stored."""
    return await program_texts.current_disclosures(state.db)


@scoped("admin")
@put("/v1/program/disclosures", status_code=201, tags=["program"], summary="Store a new version of the disclosures")
async def put_disclosures(data: JSONBody[Disclosures], state: State) -> DisclosuresOut:
    """Store a new version of the disclosures: Guest Services' contacts, the categories of personal
    information, sources, purposes, sale and sharing, Colorado Rule 6.05(F) items, and the notice's
    sentences (templates; `incentives.disclosures` lists their placeholders)."""
    return await program_texts.store_disclosures(state.db, data)


@scoped("admin", errors=[errors.DocumentVersionExists], replays=True)
@put("/v1/program/documents", tags=["program"], summary="Publish a version of the terms or the notice")
async def put_document(data: JSONBody[DocumentIn], state: State) -> Response[DocumentOut]:
    """Publish a version of the program terms or of the notice; once a kind has a published
    version, enrollment must name one (422 `unknown_notice_version`, `unknown_terms_version`).
    The same version and text again answer 200; another text for a published version is 409."""
    created, document = await program_texts.publish(state.db, data)
    return Response(document, status_code=201 if created else 200)


@scoped("admin")
@get("/v1/program/documents", tags=["program"], summary="List the published terms and notices")
async def get_documents(
    state: State, kind: Annotated[Literal["terms", "notice"] | None, QueryParameter(description="terms or notice")] = None,
) -> DocumentsOut:
    """The published versions of the terms and the notice, oldest first."""
    return await program_texts.documents(state.db, kind)


ROUTES = [incentive_value, liability, stores_report, get_disclosures, put_disclosures, put_document, get_documents]
