"""The `rewards` command: serve, migrate, keys, verify, demo, and what plugins add (reports)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import click

from rewards.config import load_settings, parse_duration, secret_key
from rewards.db import Database, database_from_env, describe_url
from rewards.embedded import embedded
from rewards.plugins import plugin_commands
from rewards.privacy import cli as privacy_cli

T = TypeVar("T")


def with_database(work: Callable[[Database], Awaitable[T]], *, migrated: bool = True) -> T:
    """Run `work` against the configured database (starting the embedded one if need be)."""

    async def main() -> T:
        db = database_from_env(load_settings())
        try:
            if migrated:
                await _migrate(db)
            return await work(db)
        finally:
            await db.close()

    return asyncio.run(main())


def write_output(body: bytes, out: Path | None) -> None:
    """A report's bytes to standard output, or to the file `--out` names (saying so on stderr)."""
    if out is None:
        click.echo(body, nl=False)
    else:
        out.write_bytes(body)
        click.echo(f"wrote {out} ({len(body):,} bytes)", err=True)


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
    """Run the HTTP service (migrating the database first).

    SIGINT (Ctrl-C) or SIGTERM stops it gracefully: accepted requests finish, then the
    embedded PostgreSQL, if this command started it, stops too unless another `rewards`
    process still uses it.
    """
    import uvicorn

    # the workers read their settings from the environment: the public URL's default follows these
    if host:
        os.environ["REWARDS_HOST"] = host
    if port:
        os.environ["REWARDS_PORT"] = str(port)
    settings = load_settings()
    # uvicorn answers SIGINT and SIGTERM itself while it serves, then raises the signal again
    # once it has shut down: here, so that this process leaves the embedded server on its way out
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _stop_serving)
    metrics_dir = _metrics_dir()
    jobs: subprocess.Popen[bytes] | None = None
    try:
        secret_key(settings)  # made once here, not raced for by the workers; an unwritable data folder fails now
        db = database_from_env(settings)  # starts the embedded server once, before the workers start
        applied = asyncio.run(_migrate(db))
        click.echo(f"database {describe_url(db.url)}; revisions applied now: {', '.join(applied) or 'none'}",
                   err=True)
        if settings.jobs:
            jobs = _start_jobs()
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
    finally:
        if jobs is not None:
            _stop_jobs(jobs)
        if not settings.database_url and embedded(settings.data_dir).leave():
            click.echo(f"stopped the embedded PostgreSQL under {settings.data_dir}", err=True)
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


JOBS_NICE = 10  # the jobs yield the CPU to the workers' requests
JOBS_STOP_SECONDS = 20


def _start_jobs() -> subprocess.Popen[bytes]:
    """`rewards jobs run` beside the workers, in this process group (a signal to the group reaches
    it), exiting by itself should this process vanish without stopping it."""
    command = [sys.executable, "-c", "from rewards.cli import main; main()", "jobs", "run",
               "--nice", str(JOBS_NICE), "--parent", str(os.getpid())]
    click.echo("background jobs: rewards jobs run (webhook delivery, reward expiry)", err=True)
    return subprocess.Popen(command)


def _stop_jobs(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=JOBS_STOP_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class _Stopped(SystemExit):
    """SIGINT or SIGTERM asked `rewards serve` to stop: a clean stop, exit status 0."""


def _stop_serving(signum: int, _frame: object) -> None:
    raise _Stopped(0)


def _metrics_dir() -> str | None:
    """Prometheus' multiprocess mode for the workers: each writes its metrics to files in one
    folder and a scrape of any worker adds them all up. The folder is emptied first (figures
    of an earlier run would be added in); one this command made is removed when it stops."""
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    folder = Path(given) if given else Path(tempfile.mkdtemp(prefix="rewards-metrics-"))
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    return None if given else str(folder)


async def _migrate(db: Database) -> list[str]:
    """`alembic upgrade head` on the database; the revisions applied now. A database that cannot
    be migrated (an edited revision, a half-built old one) stops the command with the reason."""
    from rewards.migrations import MigrationRefused, migrate

    try:
        return await migrate(db.url)
    except MigrationRefused as exc:
        raise click.ClickException(str(exc)) from exc


@main.command("migrate")
def migrate_command() -> None:
    """Apply the schema revisions in sql/versions/ not applied yet (`alembic upgrade head`)."""
    db = database_from_env(load_settings())
    applied = asyncio.run(_migrate(db))
    click.echo(f"applied: {', '.join(applied)}" if applied else "the schema is up to date")


@main.group()
def keys() -> None:
    """API keys and guest tokens."""


class Duration(click.ParamType):
    name = "duration"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> timedelta:
        if isinstance(value, timedelta):
            return value
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


@keys.command("create")
@click.option("--scope", "scopes", multiple=True, required=True,
              type=click.Choice(["checkout", "guest_services", "compliance", "admin", "web_shop", "integrations",
                                 "guest"]),
              help="A scope the key holds; repeat for several. `guest` needs --member; `integrations` reads "
                   "the events feed.")
@click.option("--member", "member_id", type=int, default=None, help="The member a guest token is bound to.")
@click.option("--label", default=None, help="What the key is for (a store, a system).")
@click.option("--ttl", type=Duration(), default=None,
              help="How long the key works (30d, 12h, 90m). A guest token: 30d unless given, at most 366d; "
                   "a staff key: for good unless given.")
def keys_create(scopes: tuple[str, ...], member_id: int | None, label: str | None, ttl: timedelta | None) -> None:
    """Make a key; its token is printed once, alone on the last line."""
    from rewards.auth import GUEST_TTL, KEY_BY_TOKEN, create_key, token_hash
    from rewards.errors import DomainError

    async def make(db: Database) -> tuple[str, int]:
        token = await create_key(db, list(scopes), member_id=member_id, label=label, ttl=ttl)
        return token, (await db.run(KEY_BY_TOKEN, token_hash=token_hash(token)))[0]["id"]

    try:
        token, key_id = with_database(make)
    except DomainError as exc:
        raise click.ClickException(exc.detail) from exc
    lasts = f"; expires {(datetime.now(UTC) + (ttl or GUEST_TTL)):%Y-%m-%d %H:%M} UTC" if ttl or member_id else ""
    click.echo(f"key {key_id} (revoke it with `rewards keys revoke {key_id}`); scopes: {', '.join(sorted(set(scopes)))}"
               + (f"; member {member_id}" if member_id else "") + lasts, err=True)
    click.echo(token)


@keys.command("list")
@click.option("--all", "everything", is_flag=True, help="Guest tokens too (by default staff keys only).")
def keys_list(everything: bool) -> None:
    """List the keys: id, scopes, label, created, revoked. Tokens are never shown again."""
    from rewards.desk.keys import list_keys
    from rewards.schemas import KeyOut

    async def every(db: Database) -> list[KeyOut]:
        found, cursor = [], None
        while True:
            page = await list_keys(db, cursor=cursor, limit=500)
            found.extend(page.items)
            if page.next_cursor is None:
                return found
            cursor = page.next_cursor

    shown = [k for k in with_database(every) if everything or k.member_id is None]
    click.echo(f"{'id':>6}  {'scopes':<40}  {'label':<24}  {'created (UTC)':<16}  revoked (UTC)")
    for k in shown:
        scopes = ", ".join(k.scopes) + (f" (member {k.member_id})" if k.member_id else "")
        click.echo(f"{k.key_id:>6}  {scopes:<40}  {(k.label or ''):<24}  {k.created_at:%Y-%m-%d %H:%M}  "
                   + (f"{k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "-"))


@keys.command("revoke")
@click.argument("key_id", type=click.IntRange(1))
def keys_revoke(key_id: int) -> None:
    """Revoke key KEY_ID: it stops working at once, on every worker of every running service."""
    from rewards.desk.keys import revoke_key
    from rewards.errors import DomainError

    try:
        revoked, key = with_database(lambda db: revoke_key(db, key_id))
    except DomainError as exc:
        raise click.ClickException(exc.detail) from exc
    label = f" ({key.label})" if key.label else ""
    assert key.revoked_at is not None
    click.echo(f"revoked key {key_id}{label}" if revoked
               else f"key {key_id}{label} was already revoked, at {key.revoked_at:%Y-%m-%d %H:%M:%S} UTC")


@main.group("jobs")
def jobs_group() -> None:
    """The background jobs: webhook delivery, reward expiry (`rewards serve` runs them too)."""


@jobs_group.command("run")
@click.option("--once", is_flag=True, help="Run each job until it finds nothing to do, then exit "
                                          "(exit status 3 when another runner holds the jobs lock).")
@click.option("--nice", "niceness", type=click.IntRange(0, 19), default=0, hidden=True)
@click.option("--parent", type=int, default=None, hidden=True, help="Exit when this process is gone.")
def jobs_run(once: bool, niceness: int, parent: int | None) -> None:
    """Run the background jobs without the HTTP service: webhook delivery and reward expiry.

    One runner at a time across every process and host (a PostgreSQL advisory lock): a second
    one waits, and takes over when the first stops. SIGINT or SIGTERM stops it; attempts under
    way are given up and made again later, with the same webhook-id.
    """
    import logging

    from rewards.jobs import Runner, standard_jobs

    if niceness:
        os.nice(niceness)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = load_settings()

    async def work(db: Database) -> bool:
        runner = Runner(db.url, standard_jobs(db, settings))
        if once:
            return await runner.run_once()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        watch = asyncio.create_task(_watch_parent(parent, stop)) if parent else None
        await runner.run(stop)
        if watch is not None:
            watch.cancel()
        return True

    # started by `rewards serve`, which migrated the database already
    if not with_database(work, migrated=parent is None):
        click.echo("another runner holds the jobs lock (rewards serve, or rewards jobs run); nothing was run", err=True)
        sys.exit(3)


async def _watch_parent(parent: int, stop: asyncio.Event) -> None:
    while os.getppid() == parent:
        await asyncio.sleep(1)
    stop.set()


@main.command()
@click.option("--no-recompute", is_flag=True, help="Skip recomputing every purchase's earning (faster).")
def verify(no_recompute: bool) -> None:
    """Check every ledger invariant; print each problem and exit 1 if there is any."""
    from rewards.verify import find_problems

    expiry_interval = load_settings().expiry_interval

    async def work(db: Database) -> list[str]:
        async with db.connection() as conn:
            return await find_problems(conn, recompute=not no_recompute, expiry_interval=expiry_interval,
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
    from rewards.bulk_demo import run_bulk_demo
    from rewards.demo import run_demo

    run = run_bulk_demo if (purchases > 100_000 if bulk is None else bulk) else run_demo
    started = time.perf_counter()
    summary = with_database(lambda db: run(db, members=members, purchases=purchases, days=days, seed=seed))
    summary["seconds"] = round(time.perf_counter() - started)
    for key, value in summary.items():
        click.echo(f"{key}: {value}")
    today = datetime.now(UTC).date()
    click.echo(f"the demo's purchases span {today - timedelta(days=days)} to {today}; its report:\n"
               f"  rewards report incentive-value --program rewards --from {today - timedelta(days=days)} --to {today}")


@main.group("import")
def import_group() -> None:
    """Bulk imports."""


# `rewards import purchases` and `rewards import adjustments` exit statuses, for scripts
IMPORT_OK, IMPORT_FAILED, IMPORT_REJECTED = 0, 1, 3


def _import_options(command: Callable[..., None]) -> Callable[..., None]:
    """The options every `rewards import` command takes."""
    for option in reversed((
        click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path)),
        click.option("--rejected", "rejected", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     help="Where refused records go, each with its reason, in line order [FILE.rejected.jsonl]."),
        click.option("--batch-size", type=click.IntRange(1, 50_000), default=2000, show_default=True,
                     help="Records applied per transaction."),
        click.option("--connections", type=click.IntRange(1, 16), default=2, show_default=True,
                     help="Batches applied at the same time, each on its own connection, split by member."),
        click.option("--format", "file_format", type=click.Choice(["jsonl", "csv"]), default=None,
                     help="The file's format [csv for a *.csv file, otherwise jsonl]."),
    )):
        command = option(command)
    return command


def _run_import(kind_name: str, file: Path, file_format: str | None, **options: object) -> None:
    """Import with a progress bar, print the summary, exit with the import's status."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from rewards.engine import limits_of
    from rewards.importer import ADJUSTMENTS, PURCHASES, CsvHeaderError, count_records, format_of, import_records

    kind = PURCHASES if kind_name == "purchases" else ADJUSTMENTS
    fmt = file_format or format_of(file)
    settings = load_settings()
    with Progress(TextColumn(f"importing {kind_name}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  transient=False) as progress:
        task = progress.add_task("import", total=count_records(file, kind, fmt))  # type: ignore[arg-type]
        try:
            summary = with_database(lambda db: import_records(
                db, file, kind, limits=limits_of(settings), file_format=fmt,  # type: ignore[arg-type]
                progress=lambda done: progress.update(task, completed=done), **options))  # type: ignore[arg-type]
        except CsvHeaderError as exc:
            raise click.ClickException(f"{file}: {exc}; nothing was imported") from exc
    click.echo(f"{kind_name} read: {summary.lines}")
    click.echo(f"imported: {summary.imported}")
    click.echo(f"already imported (same {kind.key} and body): {summary.already_imported}")
    click.echo(f"rejected: {summary.rejected}" + (f" -> {summary.rejected_file}" if summary.rejected_file else ""))
    for code, count in sorted(summary.reasons.items()):
        click.echo(f"  {code}: {count}")
    if kind is ADJUSTMENTS:
        click.echo(f"points adjusted: {summary.point_cents_adjusted / 100:,.2f}")
    click.echo(f"rewards issued: {summary.rewards_issued}")
    rate = f" ({summary.per_second:,.0f} {kind_name}/s)" if summary.per_second is not None else ""
    click.echo(f"time: {summary.seconds:.1f} s{rate}; peak memory: {summary.peak_rss_mib:.0f} MiB")
    sys.exit(IMPORT_REJECTED if summary.rejected else IMPORT_OK)


@import_group.command("purchases")
@_import_options
@click.option("--history", is_flag=True,
              help="Accept purchases older than REWARDS_MAX_BACKDATE (each with the rules of its day; "
                   "the rewards it issues may already have expired).")
def import_purchases(file: Path, history: bool, rejected: Path | None, batch_size: int, connections: int,
                     file_format: str | None) -> None:
    """Import purchases from FILE: JSON lines (one purchase per line, exactly the API's body) or CSV.

    CSV: a header naming the columns, then one row per purchase line, the rows of a
    purchase consecutive and sharing its purchase_id. Columns: purchase_id, member_id,
    occurred_at, store_id, channel, currency (empty: USD), on the purchase's first row
    and empty or the same on the others; sku, category, quantity, amount_cents for the
    line; tender_method, tender_amount_cents, reward_code for a tender, one a row, on
    any row of the purchase; optionally offer_code, offer_discount_cents likewise.

    The API's rules apply (the same posting engine: same earning, same rewards, same
    refusals); purchase_id is the idempotency key, so running the same file again imports
    nothing twice.

    Exit status: 0 when every purchase was imported or had been already; 3 when the import
    finished but refused some purchases (listed in the rejected file); 1 when it could not
    run (a CSV header that names the wrong columns, the database unreachable).
    """
    _run_import("purchases", file, file_format, history=history, rejected_path=rejected, batch_size=batch_size,
                connections=connections)


@import_group.command("adjustments")
@_import_options
def import_adjustments(file: Path, rejected: Path | None, batch_size: int, connections: int,
                       file_format: str | None) -> None:
    """Import adjustments from FILE (opening balances from a previous program): JSON lines or CSV.

    Each record: adjustment_id, the member by member_id or external_id (the retailer's own
    id), point_cents (non-zero; negative takes points), reason (goodwill, correction,
    migration, other) and optionally note. CSV: a header naming those columns, one row per
    adjustment. Each posts as POST /v1/members/{id}/adjustments does (rewards issued as the
    balance allows; a cancelled member is refused), with no limit by scope; adjustment_id is
    the idempotency key, so running the same file again imports nothing twice.

    Exit status: as `rewards import purchases` (0 all imported or already, 3 some refused,
    1 could not run).
    """
    _run_import("adjustments", file, file_format, rejected_path=rejected, batch_size=batch_size,
                connections=connections)


@main.group("db")
def db_group() -> None:
    """The embedded PostgreSQL (used when DATABASE_URL is not set)."""


_data_dir_option = click.option(
    "--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="The embedded server's data folder [REWARDS_DATA_DIR].")


@db_group.command("status")
@_data_dir_option
def db_status(data_dir: Path | None) -> None:
    """Whether the embedded PostgreSQL runs, where, and which `rewards` processes use it.

    Exit status: 0 running, 3 not running (as `pg_ctl status`).
    """
    settings = load_settings()
    if settings.database_url:
        click.echo(f"DATABASE_URL is set: the service uses {describe_url(settings.database_url)}, "
                   "not the embedded server")
    status = embedded(data_dir or settings.data_dir).status()
    click.echo(f"embedded PostgreSQL: {'running' if status.running else 'not running'}")
    click.echo(f"data folder: {status.pgdata}")
    if status.running:
        click.echo(f"server pid: {status.pid}, started {status.started_at:%Y-%m-%d %H:%M:%S} UTC")
        click.echo(f"socket folder: {status.socket_dir}")
    if status.users:
        click.echo("used by:")
        for user in status.users:
            click.echo(f"  pid {user.pid} since {user.since:%Y-%m-%d %H:%M:%S} UTC: {user.command}")
    else:
        click.echo("used by: no rewards process")
    sys.exit(0 if status.running else 3)


@db_group.command("stop")
@_data_dir_option
@click.option("--force", is_flag=True, help="Stop it even while other rewards processes use it.")
def db_stop(data_dir: Path | None, force: bool) -> None:
    """Stop the embedded PostgreSQL (fast shutdown: open transactions are rolled back).

    Refuses, exit status 1, while another `rewards` process uses it, unless --force.
    """
    server = embedded(data_dir or load_settings().data_dir)
    running = server.status().running
    users = server.stop(force=force)
    if users:
        click.echo("the embedded PostgreSQL is in use by:", err=True)
        for user in users:
            click.echo(f"  pid {user.pid}: {user.command}", err=True)
        click.echo("stop those first, or pass --force", err=True)
        sys.exit(1)
    click.echo(f"stopped the embedded PostgreSQL under {server.pgdata}" if running
               else f"the embedded PostgreSQL under {server.pgdata} is not running")


@main.command()
@click.option("--port", type=int, default=None, help="The service's port [REWARDS_PORT, 8000].")
@click.option("--timeout", type=float, default=3.0, show_default=True, help="Seconds to wait for the answer.")
def health(port: int | None, timeout: float) -> None:
    """Exit 0 if the service on this machine answers GET /health with 200, else 1 (a
    container's health check)."""
    import urllib.request

    url = f"http://127.0.0.1:{port or load_settings().port}/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310 (a fixed http URL)
            ok = answer.status == 200
    except OSError as exc:  # refused, timed out, or an HTTP error status
        click.echo(f"{url}: {exc}", err=True)
        ok = False
    sys.exit(0 if ok else 1)


@main.group()
def report() -> None:
    """Reports: the consumers' privacy requests, and what plugins add (the notice's figures, the liability)."""


for _command in privacy_cli.COMMANDS:
    report.add_command(_command)

for _command in plugin_commands():
    # a plugin's group of the same name (incentives' `report`) adds its commands to ours
    _ours = main.commands.get(_command.name or "")
    if isinstance(_ours, click.Group) and isinstance(_command, click.Group):
        for _sub in _command.commands.values():
            _ours.add_command(_sub)
    else:
        main.add_command(_command)
