"""Migrations: Alembic's revisions in `sql/versions/`, applied under a lock, each kept as it was applied.

`migrate(url)` runs `alembic upgrade head` programmatically. Alembic needs a SQLAlchemy
connection; one is made for the migration alone, with SQLAlchemy's asyncpg dialect and no
pool (the service's own pool is asyncpg's, untouched). Around Alembic's own work:

- one migrator at a time: a session advisory lock, across processes and hosts (every
  `rewards serve` worker migrates at start);
- a revision is never edited once applied: the SHA-256 of each revision's file is recorded
  in the same transaction as the revision, and a database whose recorded digest differs
  from the file is refused before anything runs;
- a database built by the old runner (sql/001..009.sql, recorded in `schema_migrations`)
  is stamped with the baseline revision 0001, which creates that same schema; one with
  only some of those files applied is refused.

`sql/env.py` calls `prepare` and `configure_options` here, so the `alembic` command line
does the same as `rewards migrate` (docs/migrations.md).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from alembic import command
from alembic.config import Config
from alembic.operations.ops import MigrationScript
from alembic.runtime.migration import MigrationContext, MigrationInfo
from alembic.script import Script, ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from sqlalchemy import Column, DateTime, MetaData, String, Table, Text, func, inspect, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from rewards.config import load_settings
from rewards.db import asyncpg_dsn, resolve_database_url

log = logging.getLogger(__name__)
T = TypeVar("T")

MIGRATION_LOCK = 0x5745_5354  # "WEST": one migrator at a time, across processes and hosts
# not the requests' 30 s: rewriting a table of ten million purchases takes minutes
MIGRATION_TIMEOUT = 6 * 3600.0

BASELINE = "0001"
# What the old runner applied, by name: a database with all of them is at the baseline.
LEGACY_MIGRATIONS = (
    "001_core.sql", "002_post_purchase.sql", "003_mailing.sql", "004_hot_balances.sql",
    "005_post_purchases.sql", "006_report_statistics.sql", "007_drop_duplicate_rewards_index.sql",
    "008_report_reads_columns.sql", "009_post_purchases_catch_up.sql",
)
REVISION_ID = re.compile(r"\d{4}")

# The digest of each applied revision's file, written with the revision.
digests = Table(
    "alembic_revision_digest",
    MetaData(),
    Column("revision", String(32), primary_key=True),
    Column("sha256", Text, nullable=False),
    Column("applied_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
# tables of the migrations' bookkeeping, not of the schema (Alembic leaves out alembic_version
# itself); schema_migrations stays on a stamped database so the release before can still run
BOOKKEEPING = frozenset({digests.name, "schema_migrations"})


class MigrationRefused(CommandError):
    """The database cannot be migrated as it is; the message says why and what to do.

    A CommandError, so the `alembic` command line prints it as a failure, without a traceback.
    """


def script_location() -> Path:
    """The folder holding env.py and versions/: packaged in the wheel, or the source tree's sql/."""
    packaged = Path(str(resources.files("rewards") / "sql"))
    if (packaged / "env.py").is_file():
        return packaged
    return Path(__file__).resolve().parent.parent / "sql"


def alembic_config(location: Path | None = None) -> Config:
    """Alembic's configuration without alembic.ini, so an installed wheel migrates too."""
    config = Config()
    config.set_main_option("script_location", str(location or script_location()))
    return config


def engine(url: str) -> AsyncEngine:
    """A SQLAlchemy engine for migrations only: asyncpg underneath, no pool, the long timeout."""
    return create_async_engine(
        "postgresql+asyncpg://",
        async_creator=lambda: asyncpg.connect(
            asyncpg_dsn(url), command_timeout=MIGRATION_TIMEOUT,
            server_settings={"application_name": "rewards migrate"},
        ),
        poolclass=NullPool,
    )


async def run_locked(url: str, work: Callable[[Connection], T]) -> T:
    """Run `work` on a connection of its own to `url`, holding the migration lock."""
    migrations_engine = engine(url)
    try:
        async with migrations_engine.connect() as conn:
            return await conn.run_sync(_locked, work)
    finally:
        await migrations_engine.dispose()


def _locked(connection: Connection, work: Callable[[Connection], T]) -> T:
    connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
    connection.commit()  # the lock is the session's; Alembic then begins its own transactions
    try:
        return work(connection)
    finally:
        connection.rollback()
        connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
        connection.commit()


def command_line_url() -> str:
    """The database the `alembic` command line migrates: the service's own (DATABASE_URL, or the embedded one)."""
    return resolve_database_url(load_settings())


async def migrate(url: str, *, target: str = "head", location: Path | None = None) -> list[str]:
    """`alembic upgrade head` on the database at `url`, under the lock; the revisions applied now.

    `target`: another revision than the newest; `location`: another folder of revisions than
    the service's own (both for tests).
    """
    applied: list[str] = []

    def upgrade(connection: Connection) -> None:
        config = alembic_config(location)
        config.attributes["connection"] = connection
        config.attributes["applied"] = applied
        command.upgrade(config, target)

    await run_locked(url, upgrade)
    return applied


# --- what sql/env.py runs ----------------------------------------------------------------


def digest(script: Script) -> str:
    """SHA-256 of a revision's file, line endings made alike (a Windows checkout is the same file)."""
    assert script.path is not None
    return hashlib.sha256(Path(script.path).read_bytes().replace(b"\r\n", b"\n")).hexdigest()


def prepare(connection: Connection, scripts: ScriptDirectory) -> None:
    """Before any revision runs, in one transaction: stamp an old runner's database, then refuse
    one whose applied revisions were edited, and record the digests of revisions applied
    without one (stamped, or written out with --sql)."""
    with connection.begin():
        _stamp_legacy(connection, scripts)
        digests.create(connection, checkfirst=True)
        applied = _applied_revisions(connection, scripts)
        recorded: dict[str, str] = {row.revision: row.sha256 for row in connection.execute(select(digests))}
        for revision, sha256 in sorted(recorded.items()):
            if revision not in applied:
                continue  # no longer applied (alembic_version changed by hand): nothing to hold it to
            now = digest(applied[revision])
            if now != sha256:
                raise MigrationRefused(
                    f"revision {revision} ({applied[revision].path}) was edited after it was applied to this "
                    f"database (sha256 {sha256[:12]}… then, {now[:12]}… now). An applied revision is never "
                    f"changed: restore its file and make the change in a new revision (docs/migrations.md)."
                )
        for revision, script in applied.items():
            if revision not in recorded:
                _record(connection, script)
                log.info("revision %s was applied without a digest; recorded now", revision)


def _applied_revisions(connection: Connection, scripts: ScriptDirectory) -> dict[str, Script]:
    heads = MigrationContext.configure(connection).get_current_heads()
    try:
        return {script.revision: script for script in scripts.iterate_revisions(heads, "base")}
    except RevisionError as exc:
        raise MigrationRefused(
            f"this database is at revision {', '.join(heads)}, which {scripts.dir} does not have: "
            f"a newer release migrated it ({exc})"
        ) from exc


def _stamp_legacy(connection: Connection, scripts: ScriptDirectory) -> None:
    schema = inspect(connection)
    if schema.has_table("alembic_version") or not schema.has_table("schema_migrations"):
        return
    names = set(connection.execute(text("SELECT name FROM schema_migrations")).scalars())
    missing = [name for name in LEGACY_MIGRATIONS if name not in names]
    unknown = sorted(names - set(LEGACY_MIGRATIONS))
    if missing or unknown:
        raise MigrationRefused(
            "this database was built by the old migration runner (it has schema_migrations) but is not at "
            "its last state: "
            + "; ".join(filter(None, [
                f"not applied: {', '.join(missing)}" if missing else "",
                f"not known to this release: {', '.join(unknown)}" if unknown else "",
            ]))
            + ". Finish it with `rewards migrate` of the release before Alembic, then run this one again."
        )
    MigrationContext.configure(connection).stamp(scripts, BASELINE)
    log.warning("database built by the old migration runner (sql/001..009): stamped with revision %s", BASELINE)


def _record(connection: Connection, script: Script) -> None:
    statement = insert(digests).values(revision=script.revision, sha256=digest(script))
    connection.execute(statement.on_conflict_do_update(
        index_elements=[digests.c.revision],
        set_={"sha256": statement.excluded.sha256, "applied_at": func.now()},
    ))


def digest_recorder(scripts: ScriptDirectory, applied: list[str] | None) -> Callable[..., None]:
    """Alembic's `on_version_apply`: called in each revision's own transaction, so a revision
    and its digest are committed together. `applied` collects the revisions run."""

    def on_version_apply(*, ctx: MigrationContext, step: MigrationInfo, heads: set[str], run_args: Any) -> None:
        if ctx.as_sql:
            return  # written out as SQL: recorded by the next `prepare` on the database
        connection = ctx.connection
        assert connection is not None
        if step.is_upgrade:
            for revision in step.up_revision_ids:
                script = scripts.get_revision(revision)
                assert script is not None
                _record(connection, script)
                if applied is not None and not step.is_stamp:
                    applied.append(revision)
        else:
            connection.execute(digests.delete().where(digests.c.revision.in_(step.up_revision_ids)))

    return on_version_apply


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """What autogenerate and the drift test compare: everything but the migrations' bookkeeping."""
    return not (type_ == "table" and name in BOOKKEEPING)


def number_revision(context: MigrationContext, revision: Any, directives: list[MigrationScript]) -> None:
    """`process_revision_directives`: an autogenerated revision takes the next number (0002, 0003…)
    unless `--rev-id` gave one."""
    script = directives[0]
    if script.rev_id is None or not REVISION_ID.fullmatch(script.rev_id):
        assert context.script is not None
        heads = context.script.get_heads()
        script.rev_id = f"{max((int(head) for head in heads), default=0) + 1:04d}"


def configure_options(
    scripts: ScriptDirectory, applied: list[str] | None, target_metadata: MetaData,
) -> dict[str, Any]:
    """`context.configure`'s options for a database connection (env.py adds the connection)."""
    return {
        "target_metadata": target_metadata,
        # each revision commits alone, with its digest: a failure keeps the ones before it
        "transaction_per_migration": True,
        "on_version_apply": digest_recorder(scripts, applied),
        "process_revision_directives": number_revision,
        **COMPARISON,
    }


# How autogenerate, `alembic check` and the drift test compare the metadata with a database.
COMPARISON: dict[str, Any] = {
    "compare_type": True,
    "compare_server_default": True,
    "include_name": include_name,
}
