"""The engine's write statement is built from its row structs: each field is a column of its table
(rewards/tables.py), and an insert names every column that has neither a default nor a null."""

from __future__ import annotations

import pytest

from rewards.engine.posting import WRITES, Write
from rewards.tables import metadata


@pytest.mark.parametrize("write", WRITES, ids=lambda w: f"{w.field}->{w.table}")
def test_every_field_of_a_written_row_is_a_column_of_its_table(write: Write) -> None:
    table = metadata.tables[write.table]
    fields = set(write.row.__struct_fields__)
    assert fields <= set(table.columns.keys()), fields - set(table.columns.keys())
    assert set(write.columns) <= fields
    if write.key is None:
        required = {c.name for c in table.columns if not c.nullable and c.server_default is None
                    and c.identity is None and c.computed is None}
        assert required <= fields, required - fields


async def test_the_snapshot_function_takes_the_same_rules_lock_as_a_publication(db) -> None:
    """engine_snapshot (a migration) writes the lock's key as a number: it must be RULES_LOCK."""
    from rewards.db import RULES_LOCK

    [row] = await db.run("SELECT prosrc FROM pg_proc WHERE proname = 'engine_snapshot'")
    assert f"pg_advisory_xact_lock_shared({RULES_LOCK})" in row["prosrc"]
