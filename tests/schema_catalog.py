"""What PostgreSQL's catalog says a database's schema is, as plain data two databases can be compared by.

Every object is rendered by PostgreSQL itself (`pg_get_constraintdef`, `pg_get_indexdef`,
`pg_get_functiondef`…), so two databases built by different routes (the old SQL files, the
Alembic revisions, `metadata.create_all`) compare equal only if PostgreSQL sees the same schema.
"""

from __future__ import annotations

import warnings
from typing import Any

import asyncpg
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData

from rewards import migrations
from rewards.tables import metadata

# the migrations' bookkeeping, not the schema
BOOKKEEPING = ("alembic_version", "alembic_revision_digest", "schema_migrations")

QUERIES: dict[str, str] = {
    "tables": """
        SELECT c.relname, coalesce(c.reloptions, '{}') AS options
        FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
          AND c.relname <> ALL ($1::text[])
        ORDER BY c.relname""",
    # in column order: a column added later by ALTER TABLE lands last, and so must it here
    "columns": """
        SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull,
               pg_get_expr(d.adbin, d.adrelid) AS default, a.attidentity, a.attgenerated
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') AND a.attnum > 0
          AND NOT a.attisdropped AND c.relname <> ALL ($1::text[])
        ORDER BY c.relname, a.attnum""",
    "constraints": """
        SELECT conrelid::regclass::text AS tab, conname, pg_get_constraintdef(oid) AS definition
        FROM pg_constraint WHERE connamespace = 'public'::regnamespace
          AND conrelid::regclass::text <> ALL ($1::text[])
        ORDER BY 1, 2""",
    "indexes": """
        SELECT indexrelid::regclass::text AS name, pg_get_indexdef(indexrelid) AS definition
        FROM pg_index WHERE indrelid::regclass::text <> ALL ($1::text[])
          AND indrelid IN (SELECT oid FROM pg_class WHERE relnamespace = 'public'::regnamespace)
        ORDER BY 1""",
    "sequences": """
        SELECT sequencename, data_type::text, start_value, min_value, max_value, increment_by, cycle, cache_size
        FROM pg_sequences WHERE schemaname = 'public' AND sequencename <> ALL ($1::text[])
        ORDER BY 1""",
    "triggers": """
        SELECT tgname, pg_get_triggerdef(oid) AS definition FROM pg_trigger
        WHERE NOT tgisinternal AND tgrelid::regclass::text <> ALL ($1::text[])
        ORDER BY 1""",
    "functions": """
        SELECT proname, pg_get_functiondef(oid) AS definition FROM pg_proc
        WHERE pronamespace = 'public'::regnamespace AND proname <> ALL ($1::text[])
        ORDER BY 1, 2""",
    "statistics": """
        SELECT stxname, pg_get_statisticsobjdef(oid) AS definition FROM pg_statistic_ext
        WHERE stxnamespace = 'public'::regnamespace AND stxname <> ALL ($1::text[])
        ORDER BY 1""",
    # the data the schema comes with
    "program_rules": "SELECT version, effective_from, body FROM program_rules ORDER BY version",
}

# the schema alone, not the data it comes with (a database in use has more rules versions)
SCHEMA_KINDS = tuple(kind for kind in QUERIES if kind != "program_rules")
# what SQLAlchemy's MetaData can describe (the rest lives only in the migrations)
METADATA_KINDS = ("tables", "columns", "constraints", "indexes", "sequences")


async def catalog(url: str, kinds: tuple[str, ...] = tuple(QUERIES)) -> dict[str, list[tuple[Any, ...]]]:
    """The schema of the database at `url`, kind by kind, without the migrations' bookkeeping."""
    conn = await asyncpg.connect(url)
    try:
        return {
            kind: [tuple(r) for r in await conn.fetch(QUERIES[kind], *([list(BOOKKEEPING)] if "$1" in QUERIES[kind] else []))]
            for kind in kinds
        }
    finally:
        await conn.close()


def differences(left: dict[str, list[tuple[Any, ...]]], right: dict[str, list[tuple[Any, ...]]]) -> list[str]:
    """Each row one side has and the other lacks, kind by kind, readable in a failed assertion."""
    found = []
    for kind in left:
        for row in left[kind]:
            if row not in right[kind]:
                found.append(f"{kind}: only left: {row}")
        for row in right[kind]:
            if row not in left[kind]:
                found.append(f"{kind}: only right: {row}")
        if not found and left[kind] != right[kind]:
            found.append(f"{kind}: same rows in another order: {left[kind]} / {right[kind]}")
    return found


async def drift(url: str, target: MetaData = metadata) -> list[Any]:
    """Alembic's `compare_metadata` of `target` against the database at `url`, with the options
    autogenerate uses; a warning (a generated column's expression that differs, which Alembic
    cannot alter) counts as a failure too."""
    engine = migrations.engine(url)
    try:
        async with engine.connect() as conn:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                return await conn.run_sync(
                    lambda sync: compare_metadata(MigrationContext.configure(sync, opts=migrations.COMPARISON), target)
                )
    finally:
        await engine.dispose()


async def create_all(url: str, target: MetaData = metadata) -> None:
    """`target.create_all` on the (empty) database at `url`."""
    engine = migrations.engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(target.create_all)
    finally:
        await engine.dispose()
