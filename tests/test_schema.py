"""rewards/tables.py describes the migrated database exactly: the drift tests.

Two comparisons, because Alembic's autogenerate compares much but not all: tables, columns,
types, nullability, server defaults, identities, primary and foreign keys, unique
constraints and indexes (expression indexes included) by Alembic, and everything it cannot
see (CHECK expressions, partial-index predicates, a generated column's expression, table
options) by comparing PostgreSQL's own rendering of a database built by `create_all` from
the metadata with the migrated one.
"""

from __future__ import annotations

from sqlalchemy import MetaData

from rewards.tables import metadata
from tests.databases import scratch_database
from tests.schema_catalog import METADATA_KINDS, catalog, create_all, differences, drift


async def test_the_migrated_database_has_no_drift_from_the_tables_metadata(database_url: str) -> None:
    assert await drift(database_url) == []


async def test_the_drift_test_sees_an_index_the_metadata_lacks(database_url: str) -> None:
    lacking = MetaData(naming_convention=metadata.naming_convention)
    for table in metadata.tables.values():
        table.to_metadata(lacking)
    members = lacking.tables["members"]
    members.indexes.remove(next(index for index in members.indexes if index.name == "members_active_email"))

    found = await drift(database_url, lacking)
    assert [(kind, index.name) for kind, index in found] == [("remove_index", "members_active_email")]


async def test_create_all_from_the_metadata_builds_the_migrated_catalog(database_url: str) -> None:
    async with scratch_database(database_url, "create_all", migrated=False) as built:
        await create_all(built)
        assert differences(await catalog(built, METADATA_KINDS), await catalog(database_url, METADATA_KINDS)) == []
