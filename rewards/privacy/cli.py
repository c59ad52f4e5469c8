"""`rewards report privacy-requests` (the §7102 metrics) and `rewards report privacy-request-log`
(the §7101 record of each request). `rewards.cli` is imported inside the commands only: it adds
these while it is itself being imported."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from rewards.privacy import metrics

_out = click.option("--out", type=click.Path(dir_okay=False, writable=True, path_type=Path), default=None,
                    help="Write to FILE instead of standard output.")


def _last_year(zone: str) -> int:
    return datetime.now(UTC).astimezone(ZoneInfo(zone)).year - 1


_year_option = click.option("--year", type=click.IntRange(2000, 9998), default=None,
                            help="The calendar year, in REWARDS_TIMEZONE [last year].")


def _read(year: int | None) -> tuple[int, str, list[metrics.RequestRow], datetime]:
    from rewards.cli import with_database
    from rewards.config import load_settings

    zone = load_settings().timezone
    chosen = year if year is not None else _last_year(zone)
    rows, as_of = with_database(lambda db: metrics.read_year(db, chosen, zone))
    return chosen, zone, rows, as_of


def _write(body: bytes, out: Path | None) -> None:
    from rewards.cli import write_output

    write_output(body, out)


@click.command("privacy-requests")
@_year_option
@click.option("--format", "fmt", type=click.Choice(("text", "json", "csv")), default="text", show_default=True)
@_out
def privacy_requests(year: int | None, fmt: str, out: Path | None) -> None:
    """The 11 CCR §7102(a) metrics of a year: requests to know, delete and correct received,
    complied with in whole or in part, denied, and the median days to respond.

    A request counts in the year it was received; one still open is counted apart, with a
    warning on standard error.
    """
    chosen, zone, rows, as_of = _read(year)
    figures = metrics.metrics(rows, chosen, zone, as_of)
    _write(metrics.metrics_document(figures, fmt), out)  # type: ignore[arg-type]
    if fmt != "text":
        for warning in figures.warnings:
            click.echo(f"warning: {warning}", err=True)


@click.command("privacy-request-log")
@_year_option
@click.option("--format", "fmt", type=click.Choice(("csv", "json")), default="csv", show_default=True)
@_out
def privacy_request_log(year: int | None, fmt: str, out: Path | None) -> None:
    """The 11 CCR §7101(b) record of each request received in a year: date, nature and manner of
    the request, how it was verified, date and nature of the response, the basis for a denial.
    Nothing that identifies the consumer."""
    _, zone, rows, _ = _read(year)
    _write(metrics.record_document(metrics.record(rows, zone), fmt), out)  # type: ignore[arg-type]


COMMANDS = [privacy_requests, privacy_request_log]
