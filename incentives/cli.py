"""`rewards report`: the incentive-value report (the notice's figures) and the liability report.

Registered through `incentives.plugin`; `rewards.cli` is imported inside the commands only,
since it loads this module while it is itself being imported.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from incentives import reports, stores
from incentives.methods import METHODS
from incentives.periods import Period
from incentives.render import FORMATS
from incentives.valuation import PROGRAMS, ReportRequest
from incentives.words import dollars
from rewards.config import DEFAULT_TIMEZONE

DATE = click.DateTime(formats=["%Y-%m-%d"])


def last_year(today: date | None = None, zone: str = DEFAULT_TIMEZONE) -> Period:
    """The previous calendar year in the program's time zone: what the notice's figures usually describe."""
    year = (today or datetime.now(UTC).astimezone(ZoneInfo(zone)).date()).year - 1
    return Period(date(year, 1, 1), date(year, 12, 31), zone)


def _zone() -> str:
    from rewards.config import load_settings

    return load_settings().timezone


def _run(work):
    from rewards.cli import with_database
    from rewards.errors import DomainError

    try:
        return with_database(work)
    except DomainError as exc:
        raise click.ClickException(f"{exc.code}: {exc.detail}") from exc


def _write(body: bytes, out: Path | None) -> None:
    from rewards.cli import write_output

    write_output(body, out)


@click.group()
def report() -> None:
    """Compliance reports: the value of personal information behind the notice, the liability, and by store."""


@report.command("incentive-value")
@click.option("--program", type=click.Choice(PROGRAMS), default="rewards", show_default=True)
@click.option("--from", "from_", type=DATE, default=None,
              help="First day of the period, in REWARDS_TIMEZONE [last year's Jan 1].")
@click.option("--to", "to", type=DATE, default=None, help="Last day of the period, included [last year's Dec 31].")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="json", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, writable=True, path_type=Path), default=None,
              help="Write the report to FILE instead of standard output.")
@click.option("--method", type=click.Choice(METHODS), default="expenses", show_default=True,
              help="The 11 CCR §7081(a) method.")
@click.option("--program-expense-cents", type=click.IntRange(0), default=None,
              help="The program's expense for the period (method expenses_plus_program).")
@click.option("--min-cell-size", type=click.IntRange(1), default=None,
              help="Withhold any segment with fewer members (for figures to publish).")
def incentive_value(program: str, from_: datetime | None, to: datetime | None, fmt: str, out: Path | None,
                    method: str, program_expense_cents: int | None, min_cell_size: int | None) -> None:
    """The value of members' personal information for a period, with the notice paragraph.

    Without --from and --to: last calendar year. With no estimate to state the report is
    still written, without a notice paragraph; the reason and any warnings go to stderr.
    """
    zone = _zone()
    default = last_year(zone=zone)
    period = Period(from_.date() if from_ else default.start, to.date() if to else default.end, zone)
    request = ReportRequest(program=program, period=period, method=method,
                            program_expense_cents=program_expense_cents, min_cell_size=min_cell_size)
    result = _run(lambda db: reports.incentive_value(db, request))
    _write(reports.incentive_value_document(result, fmt), out)
    r = result.report
    yearly = r.annualized_value_per_member_cents
    click.echo(
        f"{r.program} {period.start}..{period.end} ({zone}): "
        f"{'no estimate' if yearly is None else dollars(yearly)} per "
        f"{'member' if program == 'rewards' else 'subscriber'} per year ({r.members.counted:,} counted, "
        f"method {method}); digest {r.reproducibility.digest[:16]}",
        err=True,
    )
    if r.notice_withheld:
        click.echo(f"notice withheld: {r.notice_withheld}", err=True)
    for warning in r.warnings:
        click.echo(f"warning: {warning}", err=True)


@report.command("liability")
@click.option("--as-of", "as_of", type=DATE, default=None,
              help="The date whose close the report describes, in REWARDS_TIMEZONE [today, as of now].")
@click.option("--format", "fmt", type=click.Choice(("json", "csv")), default="json", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, writable=True, path_type=Path), default=None)
def liability(as_of: datetime | None, fmt: str, out: Path | None) -> None:
    """Points outstanding and rewards issued but not redeemed, aged by expiry."""
    zone = _zone()
    result = _run(lambda db: reports.liability(db, as_of.date() if as_of else None, zone))
    _write(reports.liability_document(result, fmt), out)
    moment = f"the close of {result.as_of}" if result.closed else f"now ({result.as_of}, not closed)"
    click.echo(f"liability at {moment}: {dollars(result.total_liability_cents)}", err=True)


@report.command("stores")
@click.option("--from", "from_", type=DATE, default=None,
              help="First day of the period, in REWARDS_TIMEZONE [last year's Jan 1].")
@click.option("--to", "to", type=DATE, default=None, help="Last day of the period, included [last year's Dec 31].")
@click.option("--format", "fmt", type=click.Choice(("json", "csv")), default="json", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, writable=True, path_type=Path), default=None)
def stores_report(from_: datetime | None, to: datetime | None, fmt: str, out: Path | None) -> None:
    """Per store: purchases, qualifying spend, points earned, rewards redeemed (count and cents)."""
    zone = _zone()
    default = last_year(zone=zone)
    period = Period(from_.date() if from_ else default.start, to.date() if to else default.end, zone)
    result = _run(lambda db: stores.stores(db, period))
    _write(stores.document(result, fmt), out)
    click.echo(f"{len(result.stores)} stores, {result.totals.purchases:,} purchases, "
               f"{dollars(result.totals.qualifying_cents)} qualifying, {period.start}..{period.end} ({zone})", err=True)
