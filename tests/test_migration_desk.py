"""The desk's revision on a program that already has members and purchases: emails and phones
normalized as rewards.contacts does (the older of two active members keeps a shared number),
store_id taken from the purchases' bodies, and the changes before it recorded as `migrated`."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType

import asyncpg
import pytest

from rewards.migrations import migrate
from tests.databases import scratch_database

ROOT = Path(__file__).resolve().parent.parent


def desk_revision() -> ModuleType:
    [path] = (ROOT / "sql" / "versions").glob("*_desk.py")
    spec = importlib.util.spec_from_file_location("desk_revision", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BEFORE = desk_revision().down_revision
REVISION = desk_revision().revision


@pytest.fixture
async def before_url(database_url: str) -> AsyncIterator[str]:
    """A program at the revision before the desk's, with the members and purchases of before."""
    async with scratch_database(database_url, "rewards_desk_migration", migrated=False) as url:
        await migrate(url, target=BEFORE)
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("""
                INSERT INTO members (id, status, name, email, phone, state, cancelled_at) OVERRIDING SYSTEM VALUE VALUES
                    (1, 'active', 'Ann Lee', ' Ann.Lee@Example.COM', '5558882535', 'CA', NULL),
                    (2, 'active', 'Ann Lee', 'ann.lee@example.org', '+15558882535', 'CA', NULL),
                    (3, 'cancelled', 'Ann Lee', 'ann.lee@example.com', '15558882535', 'CA', now()),
                    (4, 'active', 'Bo Chen', 'bo@example.com', '5551234', 'WA', NULL),
                    (5, 'active', 'Cy Diaz', 'ＣＹ@example.com', '4155550100', 'NY', NULL);
                INSERT INTO purchases (ext_id, member_id, occurred_at, rules_version, fingerprint, body,
                                       qualifying_cents, card_cents, point_cents, bonus_point_cents, balance_after)
                VALUES ('old-1', 1, now(), 1, '\\x00', '{"store_id": "S012", "tenders": []}', 0, 0, 0, 0, 0),
                       ('old-2', 4, now(), 1, '\\x01', '{"store_id": "WEB", "tenders": []}', 0, 0, 0, 0, 0);
                SELECT setval('members_id_seq', 5);""")
        finally:
            await conn.close()
        yield url


async def test_existing_members_are_normalized_and_a_shared_number_stays_with_the_older_member(
        before_url: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert await migrate(before_url, target=REVISION) == [REVISION]
    conn = await asyncpg.connect(before_url)
    try:
        members = {r["id"]: (r["email_normalized"], r["phone_normalized"]) for r in await conn.fetch(
            "SELECT id, email_normalized, phone_normalized FROM members ORDER BY id")}
        stores = {r["ext_id"]: r["store_id"] for r in await conn.fetch("SELECT ext_id, store_id FROM purchases")}
        changes = [(r["member_id"], r["kind"], r["actor_system"]) for r in await conn.fetch(
            "SELECT member_id, kind, actor_system FROM member_changes ORDER BY member_id, id")]
        phone_holder = await conn.fetch("SELECT id FROM members WHERE phone_normalized = '+15558882535' "
                                        "AND status = 'active'")
    finally:
        await conn.close()
    assert members == {
        1: ("ann.lee@example.com", "+15558882535"),
        2: ("ann.lee@example.org", None),  # its number is member 1's: found by it once merged or corrected
        3: ("ann.lee@example.com", "+15558882535"),  # cancelled: no clash
        4: ("bo@example.com", None),  # a local number without its area code is no phone to find
        5: ("cy@example.com", "+14155550100"),
    }
    assert [r["id"] for r in phone_holder] == [1]
    assert stores == {"old-1": "S012", "old-2": "WEB"}
    assert changes == [(1, "enrolled", "migrated"), (2, "enrolled", "migrated"), (3, "enrolled", "migrated"),
                       (3, "cancelled", "migrated"), (4, "enrolled", "migrated"), (5, "enrolled", "migrated")]
    assert "older active member has: 2;" in caplog.text


def alembic(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(Path(sys.executable).with_name("alembic")), *args], cwd=ROOT,
                          env={**os.environ, "DATABASE_URL": database_url}, capture_output=True, text=True,
                          timeout=120, check=False)


async def test_the_sql_written_out_refuses_a_database_with_members_to_normalize(before_url: str) -> None:
    written = await asyncio.to_thread(alembic, "upgrade", f"{BEFORE}:{REVISION}", "--sql", database_url=before_url)
    assert written.returncode == 0, written.stderr
    conn = await asyncpg.connect(before_url)
    try:
        with pytest.raises(asyncpg.RaiseError, match="run rewards migrate on this database"):
            await conn.execute(written.stdout)
        await conn.execute("ROLLBACK")  # the script's own transaction, left failed
        assert await conn.fetchval("SELECT version_num FROM alembic_version") == BEFORE
    finally:
        await conn.close()
