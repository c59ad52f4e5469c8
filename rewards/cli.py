"""The `rewards` command: serve, migrate, keys, verify, demo, and what plugins add (reports)."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import click

from rewards.config import load_settings, secret_key
from rewards.db import Database, database_from_env, describe_url, migrate
from rewards.plugins import plugin_commands

T = TypeVar("T")


def with_database(work: Callable[[Database], Awaitable[T]], *, migrated: bool = True) -> T:
    """Run `work` against the configured database (starting the embedded one if need be)."""

    async def main() -> T:
        db = database_from_env(load_settings())
        try:
            if migrated:
                async with db.connection() as conn:
                    await migrate(conn)
            return await work(db)
        finally:
            await db.close()

    return asyncio.run(main())


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Westique Rewards: the rewards program and its financial-incentive disclosures.

    Configuration comes from the environment: DATABASE_URL (unset: an embedded
    PostgreSQL under REWARDS_DATA_DIR), REWARDS_HOST, REWARDS_PORT, REWARDS_POOL_SIZE,
    REWARDS_SECRET_KEY (unset: kept in REWARDS_DATA_DIR), REWARDS_PUBLIC_URL,
    REWARDS_TWILIO_AUTH_TOKEN; README.md lists them all.
    """


@main.command()
@click.option("--host", default=None, help="Address to listen on [REWARDS_HOST, 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port to listen on [REWARDS_PORT, 8000].")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Worker processes; one per core is the production setting.")
@click.option("--access-log/--no-access-log", default=False, show_default=True)
def serve(host: str | None, port: int | None, workers: int, access_log: bool) -> None:
    """Run the HTTP service (migrating the database first)."""
    import uvicorn

    # the workers read their settings from the environment: the public URL's default follows these
    if host:
        os.environ["REWARDS_HOST"] = host
    if port:
        os.environ["REWARDS_PORT"] = str(port)
    settings = load_settings()
    secret_key(settings)  # made once here, not raced for by the workers; an unwritable data folder fails now
    db = database_from_env(settings)  # starts the embedded server once, before the workers fork
    applied = asyncio.run(_migrate(db))
    click.echo(f"database {describe_url(db.url)}; migrations applied now: {applied or 'none'}", err=True)
    uvicorn.run(
        "rewards.app:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        access_log=access_log,
        loop="uvloop",
        http="httptools",
        timeout_graceful_shutdown=30,
        server_header=False,  # says nothing useful to a client; one header less to write per answer
        log_level="info",
    )


async def _migrate(db: Database) -> list[str]:
    try:
        async with db.connection() as conn:
            return await migrate(conn)
    finally:
        await db.close()


@main.command("migrate")
def migrate_command() -> None:
    """Apply the schema migrations in sql/ that are not applied yet."""
    db = database_from_env(load_settings())
    applied = asyncio.run(_migrate(db))
    click.echo(f"applied: {', '.join(applied)}" if applied else "the schema is up to date")


@main.group()
def keys() -> None:
    """API keys and guest tokens."""


@keys.command("create")
@click.option("--scope", "scopes", multiple=True, required=True,
              type=click.Choice(["checkout", "guest_services", "compliance", "admin", "guest"]),
              help="A scope the key holds; repeat for several. `guest` needs --member.")
@click.option("--member", "member_id", type=int, default=None, help="The member a guest token is bound to.")
@click.option("--label", default=None, help="What the key is for (a store, a system).")
def keys_create(scopes: tuple[str, ...], member_id: int | None, label: str | None) -> None:
    """Make a key; its token is printed once, alone on the last line."""
    from rewards.auth import create_key
    from rewards.errors import DomainError

    try:
        token = with_database(lambda db: create_key(db, list(scopes), member_id=member_id, label=label))
    except DomainError as exc:
        raise click.ClickException(exc.detail) from exc
    click.echo(f"scopes: {', '.join(sorted(set(scopes)))}" + (f"; member {member_id}" if member_id else ""), err=True)
    click.echo(token)


@main.command()
@click.option("--no-recompute", is_flag=True, help="Skip recomputing every purchase's earning (faster).")
def verify(no_recompute: bool) -> None:
    """Check every ledger invariant; print each problem and exit 1 if there is any."""
    from rewards.verify import find_problems

    async def work(db: Database) -> list[str]:
        async with db.connection() as conn:
            return await find_problems(conn, recompute=not no_recompute,
                                       progress=lambda what: click.echo(f"checking: {what}", err=True))

    problems = with_database(work)
    for line in problems:
        click.echo(line)
    if problems:
        click.echo(f"{len(problems)} problem(s) found", err=True)
        sys.exit(1)
    click.echo("the ledger is sound: every invariant holds")


@main.command()
@click.option("--members", type=click.IntRange(1), default=500, show_default=True)
@click.option("--purchases", type=click.IntRange(0), default=10_000, show_default=True)
@click.option("--days", type=click.IntRange(1, 3650), default=365, show_default=True,
              help="How far back the purchases go.")
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--bulk/--no-bulk", default=None,
              help="Load set-based, for millions of purchases into an empty program "
                   "[default: bulk above 100,000 purchases].")
def demo(members: int, purchases: int, days: int, seed: int, bulk: bool | None) -> None:
    """Fill the database with a realistic synthetic program: members, a year of purchases,
    returns, redemptions and cancellations, all posted through the real rules."""
    from rewards.demo import run_bulk_demo, run_demo

    run = run_bulk_demo if (purchases > 100_000 if bulk is None else bulk) else run_demo
    started = time.perf_counter()
    summary = with_database(lambda db: run(db, members=members, purchases=purchases, days=days, seed=seed))
    summary["seconds"] = round(time.perf_counter() - started)
    for key, value in summary.items():
        click.echo(f"{key}: {value}")


@main.group("import")
def import_group() -> None:
    """Bulk imports."""


@import_group.command("purchases")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--rejected", "rejected", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where refused lines go, each with its reason [FILE.rejected.jsonl].")
@click.option("--batch-size", type=click.IntRange(1, 50_000), default=2000, show_default=True,
              help="Purchases applied per transaction.")
@click.option("--connections", type=click.IntRange(1, 16), default=2, show_default=True,
              help="Batches applied at the same time, each on its own connection, split by member.")
@click.option("--format", "file_format", type=click.Choice(["jsonl", "csv"]), default=None,
              help="The file's format [csv for a *.csv file, otherwise jsonl].")
def import_purchases(file: Path, rejected: Path | None, batch_size: int, connections: int,
                     file_format: str | None) -> None:
    """Import purchases from FILE: JSON lines (one purchase per line, exactly the API's body) or CSV.

    CSV: a header naming the columns, then one row per purchase line, the rows of a
    purchase consecutive and sharing its purchase_id. Columns: purchase_id, member_id,
    occurred_at, store_id, channel, currency (empty: USD), on the purchase's first row
    and empty or the same on the others; sku, category, quantity, amount_cents for the
    line; tender_method, tender_amount_cents, reward_code for a tender, one a row, on
    any row of the purchase; optionally offer_code, offer_discount_cents likewise.

    The API's rules apply (same earning, same rewards, same refusals); purchase_id is
    the idempotency key, so running the same file again imports nothing twice.
    """
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    from rewards.importer import CsvHeaderError, format_of
    from rewards.importer import import_purchases as run_import

    fmt = file_format or format_of(file)

    with Progress(TextColumn("importing"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
                  transient=False) as progress:
        task = progress.add_task("import", total=file.stat().st_size)
        try:
            summary = with_database(lambda db: run_import(
                db, file, rejected_path=rejected, batch_size=batch_size, connections=connections,
                file_format=fmt, progress=lambda done: progress.update(task, completed=done)))
        except CsvHeaderError as exc:
            raise click.ClickException(f"{file}: {exc}; nothing was imported") from exc
    click.echo(f"{'purchases' if fmt == 'csv' else 'lines'} read: {summary.lines}")
    click.echo(f"imported: {summary.imported}")
    click.echo(f"already imported (same purchase_id and body): {summary.already_imported}")
    click.echo(f"rejected: {summary.rejected}" + (f" -> {summary.rejected_file}" if summary.rejected_file else ""))
    for code, count in sorted(summary.reasons.items()):
        click.echo(f"  {code}: {count}")
    click.echo(f"rewards issued: {summary.rewards_issued}")
    click.echo(f"time: {summary.seconds:.1f} s ({summary.per_second:,.0f} purchases/s); "
               f"peak memory: {summary.peak_rss_mib:.0f} MiB")


for _command in plugin_commands():
    main.add_command(_command)
