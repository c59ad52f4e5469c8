"""The §7102 metrics of a calendar year, and the §7101 record of each request: computed in pure
Python from the requests' rows, read in one statement, written as text, JSON or CSV.

11 CCR §7102(a)(1) asks, for the previous calendar year, how many requests to know, to delete
and to correct the business received, complied with in whole or in part, and denied, and the
median or mean number of days within which it substantively responded. Here:
- a request counts in the year it was received (the program's calendar, `REWARDS_TIMEZONE`), with
  its disposition as of the report; requests of the year still open are counted apart (`open`)
  and a warning says so: run the report once they are closed;
- "complied with in whole or in part" is every completed request; "denied", every denied one;
- days to respond are calendar days from the day of receipt to the day of the response (a
  completion or a denial; the same day is 0); the median is over the requests responded to.
"""

from __future__ import annotations

import csv
import io
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

import msgspec

from rewards.db import Database
from rewards.privacy import calendar

TYPES = ("access", "delete", "correct")
LABELS = {"access": "requests to know", "delete": "requests to delete", "correct": "requests to correct"}
REGULATION = "11 CCR §7102(a)(1)"
Format = Literal["text", "json", "csv"]


@dataclass(frozen=True, slots=True)
class RequestRow:
    """A request as the metrics and the record read it."""

    request_id: int
    type: str
    channel: str
    verification_method: str
    received_at: datetime
    confirmed_at: datetime | None
    status: str
    closed_at: datetime | None
    outcome: str | None
    reason: str | None


class TypeMetrics(msgspec.Struct, kw_only=True):
    label: str
    received: int
    complied_in_whole_or_in_part: int
    complied_in_whole: int
    complied_in_part: int
    denied: int
    open: int
    """Received in the year and not yet responded to when the report was made."""
    median_days_to_respond: float | None
    """Over the requests responded to (completed or denied); null when there is none."""
    mean_days_to_respond: float | None


class PrivacyMetrics(msgspec.Struct, kw_only=True):
    year: int
    time_zone: str
    regulation: str
    as_of: datetime
    by_type: dict[str, TypeMetrics]
    warnings: list[str]


def _of_type(rows: Sequence[RequestRow], type: str, zone: str) -> TypeMetrics:
    mine = [r for r in rows if r.type == type]
    completed = [r for r in mine if r.status == "completed"]
    days = [calendar.days_to_respond(r.received_at, r.closed_at, zone) for r in mine if r.closed_at is not None]
    return TypeMetrics(
        label=LABELS[type], received=len(mine), complied_in_whole_or_in_part=len(completed),
        complied_in_whole=sum(r.outcome == "in_whole" for r in completed),
        complied_in_part=sum(r.outcome == "in_part" for r in completed),
        denied=sum(r.status == "denied" for r in mine), open=sum(r.status == "open" for r in mine),
        median_days_to_respond=float(statistics.median(days)) if days else None,
        mean_days_to_respond=round(statistics.fmean(days), 1) if days else None,
    )


def metrics(rows: Sequence[RequestRow], year: int, zone: str, as_of: datetime) -> PrivacyMetrics:
    """The year's metrics from the requests received in it (rows of other years are ignored)."""
    mine = [r for r in rows if calendar.local_day(r.received_at, zone).year == year]
    warnings = []
    if calendar.local_day(as_of, zone) <= date(year, 12, 31):
        warnings.append(f"{year} is not over: requests received later in the year are not counted yet.")
    still_open = sum(r.status == "open" for r in mine)
    if still_open:
        warnings.append(f"{still_open} request(s) received in {year} are still open: they count as received, "
                        "not yet as complied with or denied, and not in the days to respond.")
    if calendar.local_day(as_of, zone).year - year >= 2:
        warnings.append(f"requests closed more than 24 months ago are deleted (their records are kept 24 months): "
                        f"{year}'s figures may be incomplete.")
    return PrivacyMetrics(year=year, time_zone=zone, regulation=REGULATION, as_of=as_of,
                          by_type={t: _of_type(mine, t, zone) for t in TYPES}, warnings=warnings)


YEAR = """
    SELECT id, type, channel, verification_method, received_at, confirmed_at, status, closed_at, outcome, reason,
           clock_timestamp() AS as_of
    FROM privacy_requests WHERE received_at >= $1 AND received_at < $2 ORDER BY received_at, id"""


async def read_year(db: Database, year: int, zone: str) -> tuple[list[RequestRow], datetime]:
    """The requests received in `year` (the program's calendar) and the moment they were read."""
    found = await db.run(YEAR, calendar.start_of(date(year, 1, 1), zone), calendar.start_of(date(year + 1, 1, 1), zone))
    as_of = found[0]["as_of"] if found else (await db.run("SELECT clock_timestamp() AS t"))[0]["t"]
    return [RequestRow(r["id"], r["type"], r["channel"], r["verification_method"], r["received_at"],
                       r["confirmed_at"], r["status"], r["closed_at"], r["outcome"], r["reason"])
            for r in found], as_of


# --- the metrics, written out ---------------------------------------------------------------------

COLUMNS = ("received", "complied_in_whole_or_in_part", "complied_in_whole", "complied_in_part", "denied", "open",
           "median_days_to_respond", "mean_days_to_respond")


def _number(value: float | None) -> str:
    return "" if value is None else (f"{value:g}")


def metrics_document(m: PrivacyMetrics, fmt: Format) -> bytes:
    if fmt == "json":
        return msgspec.json.format(msgspec.json.encode(m), indent=2) + b"\n"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["year", "type", "label", *COLUMNS])
        for type, t in m.by_type.items():
            writer.writerow([m.year, type, t.label, *(_number(getattr(t, c)) for c in COLUMNS)])
        return out.getvalue().encode()
    lines = [f"Consumer privacy requests received in {m.year} ({m.time_zone}), {m.regulation}",
             f"as of {m.as_of.isoformat(timespec='seconds')}", ""]
    header = ("", "received", "complied with (whole or part)", "denied", "still open", "median days to respond")
    rows = [(t.label, str(t.received), (f"{t.complied_in_whole_or_in_part} ({t.complied_in_whole} whole, "
             f"{t.complied_in_part} part)"), str(t.denied), str(t.open), _number(t.median_days_to_respond) or "—")
            for t in m.by_type.values()]
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        lines.append("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in
                               enumerate(zip(row, widths, strict=True))).rstrip())
    lines += [""] + [f"warning: {w}" for w in m.warnings]
    return ("\n".join(lines).rstrip() + "\n").encode()


# --- the §7101 record ----------------------------------------------------------------------------

class RecordEntry(msgspec.Struct, kw_only=True):
    """One request as 11 CCR §7101(b) asks it kept: no identifier of the consumer."""

    request_id: int
    type: str
    received_at: datetime
    channel: str
    verification_method: str
    confirmed_at: datetime | None
    status: str
    responded_at: datetime | None
    outcome: str | None
    reason: str | None
    days_to_respond: int | None


def record(rows: Sequence[RequestRow], zone: str) -> list[RecordEntry]:
    return [RecordEntry(
        request_id=r.request_id, type=r.type, received_at=r.received_at, channel=r.channel,
        verification_method=r.verification_method, confirmed_at=r.confirmed_at, status=r.status,
        responded_at=r.closed_at, outcome=r.outcome, reason=r.reason,
        days_to_respond=None if r.closed_at is None else calendar.days_to_respond(r.received_at, r.closed_at, zone),
    ) for r in rows]


def _cell(value: object) -> object:
    """A CSV cell a spreadsheet shows as text: staff's words that start like a formula get a quote."""
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def record_document(entries: list[RecordEntry], fmt: Literal["json", "csv"]) -> bytes:
    if fmt == "json":
        return msgspec.json.format(msgspec.json.encode(entries), indent=2) + b"\n"
    fields = list(RecordEntry.__struct_fields__)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(fields)
    for entry in entries:
        values = msgspec.to_builtins(entry)
        writer.writerow([_cell(values[f]) for f in fields])
    return out.getvalue().encode()
