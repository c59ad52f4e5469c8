"""Migrations: the baseline builds what the old SQL files built, an old runner's database is
stamped and not rebuilt, an applied revision cannot change, one migrator at a time, revisions
numbered in order, and the `alembic` command line (online and `--sql`) and the installed
wheel migrate alike.

The old runner's files are kept in tests/legacy_sql/ for these tests only.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import asyncpg
import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from rewards.migrations import (
    BASELINE,
    LEGACY_MIGRATIONS,
    MigrationRefused,
    alembic_config,
    migrate,
    run_locked,
)
from tests.databases import scratch_database
from tests.schema_catalog import SCHEMA_KINDS, catalog, differences, drift

ROOT = Path(__file__).resolve().parent.parent
LEGACY_SQL = Path(__file__).resolve().parent / "legacy_sql"
SCRIPTS = ScriptDirectory.from_config(alembic_config())
REVISIONS = [script.revision for script in reversed(list(SCRIPTS.walk_revisions()))]
HEAD = REVISIONS[-1]


async def build_with_old_runner(url: str, names: Sequence[str] = LEGACY_MIGRATIONS) -> None:
    """What the old runner did: each file in its own transaction, recorded in schema_migrations."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("""CREATE TABLE schema_migrations (
            name text PRIMARY KEY, sha256 text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())""")
        for name in names:
            sql = (LEGACY_SQL / name).read_text()
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (name, sha256) VALUES ($1, $2)",
                                   name, hashlib.sha256(sql.encode()).hexdigest())
    finally:
        await conn.close()


async def fetch(url: str, query: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(query)
    finally:
        await conn.close()


async def recorded_digests(url: str) -> dict[str, str]:
    return {r["revision"]: r["sha256"] for r in await fetch(url, "SELECT revision, sha256 FROM alembic_revision_digest")}


async def public_tables(url: str) -> set[str]:
    rows = await fetch(url, "SELECT relname FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace")
    return {r["relname"] for r in rows}


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
async def empty_url(database_url: str) -> AsyncIterator[str]:
    async with scratch_database(database_url, "migrations", migrated=False) as url:
        yield url


@pytest.fixture
def revisions(tmp_path: Path) -> Path:
    """A copy of sql/ that a test may edit and add revisions to."""
    copy = tmp_path / "sql"
    shutil.copytree(ROOT / "sql", copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def add_revision(folder: Path, number: int, upgrade: str) -> Path:
    revision = f"{number:04d}"
    path = folder / "versions" / f"{revision}_test.py"
    path.write_text(
        f'"""A test\'s revision."""\nfrom alembic import op\nimport sqlalchemy as sa\n\n'
        f'revision = "{revision}"\ndown_revision = "{number - 1:04d}"\n\n\n'
        f"def upgrade() -> None:\n    {upgrade}\n\n\ndef downgrade() -> None:\n    pass\n"
    )
    return path


# --- the baseline and the old runner ------------------------------------------------------------


async def test_the_baseline_builds_exactly_the_schema_the_old_sql_files_built(database_url: str) -> None:
    async with (scratch_database(database_url, "old_runner", migrated=False) as old,
                scratch_database(database_url, "baseline", migrated=False) as new):
        await build_with_old_runner(old)
        assert await migrate(new, target=BASELINE) == [BASELINE]
        # tables, columns, constraints, indexes, identities, the trigger function and triggers,
        # post_purchases, the statistics and the program_rules row, as PostgreSQL renders them
        old_catalog, new_catalog = await catalog(old), await catalog(new)
        assert differences(old_catalog, new_catalog) == []
        assert {kind: len(rows) for kind, rows in new_catalog.items()} == {
            "tables": 12, "columns": 102, "constraints": 72, "indexes": 33, "sequences": 10,
            "triggers": 2, "functions": 2, "statistics": 1, "program_rules": 1,
        }


async def test_a_database_of_the_old_runner_is_stamped_with_the_baseline_not_rebuilt(empty_url: str) -> None:
    await build_with_old_runner(empty_url)
    conn = await asyncpg.connect(empty_url)
    try:
        member_id = await conn.fetchval("INSERT INTO members (name, state) VALUES ('Ada Old', 'CA') RETURNING id")
    finally:
        await conn.close()

    assert await migrate(empty_url) == REVISIONS[1:]  # the baseline itself does not run

    assert [r["version_num"] for r in await fetch(empty_url, "SELECT version_num FROM alembic_version")] == [HEAD]
    assert [tuple(r) for r in await fetch(empty_url, "SELECT id, name FROM members")] == [(member_id, "Ada Old")]
    baseline_script = SCRIPTS.get_revision(BASELINE)
    assert baseline_script is not None and baseline_script.path is not None
    baseline_file = Path(baseline_script.path)
    assert (await recorded_digests(empty_url))[BASELINE] == file_digest(baseline_file)
    # the old runner's record stays, so the release before can still start against the database
    assert len(await fetch(empty_url, "SELECT name FROM schema_migrations")) == len(LEGACY_MIGRATIONS)
    assert await drift(empty_url) == []


async def test_a_database_the_old_runner_left_half_built_is_refused_and_left_as_it_was(empty_url: str) -> None:
    await build_with_old_runner(empty_url, LEGACY_MIGRATIONS[:5])

    with pytest.raises(MigrationRefused) as refused:
        await migrate(empty_url)

    message = str(refused.value)
    assert "old migration runner" in message
    assert "not applied: 006_report_statistics.sql, 007_drop_duplicate_rewards_index.sql" in message
    assert "release before Alembic" in message
    tables = await public_tables(empty_url)
    assert "alembic_version" not in tables and "alembic_revision_digest" not in tables


# --- applied revisions are what they were ----------------------------------------------------------


async def test_an_applied_revision_whose_file_was_edited_is_refused_by_name(empty_url: str, revisions: Path) -> None:
    assert await migrate(empty_url, location=revisions) == REVISIONS
    baseline = next((revisions / "versions").glob(f"{BASELINE}_*.py"))
    original = baseline.read_text()
    baseline.write_text(original.replace("def upgrade() -> None:", "def upgrade() -> None:  # tidied", 1))

    with pytest.raises(MigrationRefused, match=rf"revision {BASELINE} \(.*{baseline.name}\) was edited after it was applied"):
        await migrate(empty_url, location=revisions)

    baseline.write_text(original)
    assert await migrate(empty_url, location=revisions) == []


async def test_a_database_at_a_revision_this_release_lacks_is_refused(empty_url: str) -> None:
    await migrate(empty_url)
    conn = await asyncpg.connect(empty_url)
    try:  # what a newer release leaves
        await conn.execute("UPDATE alembic_version SET version_num = '9999'")
    finally:
        await conn.close()

    with pytest.raises(MigrationRefused, match="at revision 9999, which .* does not have: a newer release migrated it"):
        await migrate(empty_url)


async def test_a_new_revision_runs_once_and_its_digest_is_recorded_with_it(empty_url: str, revisions: Path) -> None:
    await migrate(empty_url, location=revisions)
    number = len(REVISIONS) + 1
    added = add_revision(revisions, number, 'op.add_column("offers", sa.Column("note", sa.Text()))')

    assert await migrate(empty_url, location=revisions) == [f"{number:04d}"]
    assert await migrate(empty_url, location=revisions) == []
    assert (await recorded_digests(empty_url))[f"{number:04d}"] == file_digest(added)
    assert await fetch(empty_url, "SELECT note FROM offers") == []


async def test_a_failing_revision_keeps_the_revisions_before_it_with_their_digests(
    empty_url: str, revisions: Path
) -> None:
    await migrate(empty_url, location=revisions)
    good, bad = len(REVISIONS) + 1, len(REVISIONS) + 2
    add_revision(revisions, good, 'op.create_table("notes", sa.Column("id", sa.Integer, primary_key=True))')
    add_revision(revisions, bad, 'op.execute("SELECT 1 / 0")')

    with pytest.raises(Exception, match="division by zero"):
        await migrate(empty_url, location=revisions)

    assert [r["version_num"] for r in await fetch(empty_url, "SELECT version_num FROM alembic_version")] == [f"{good:04d}"]
    assert sorted(await recorded_digests(empty_url)) == [*REVISIONS, f"{good:04d}"]


async def test_downgrading_to_base_removes_the_schema_and_the_digests_then_it_migrates_again(empty_url: str) -> None:
    await migrate(empty_url)

    def downgrade(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, "base")

    await run_locked(empty_url, downgrade)
    tables = await public_tables(empty_url)
    assert tables == {"alembic_version", "alembic_revision_digest"}
    assert await recorded_digests(empty_url) == {}
    assert await migrate(empty_url) == REVISIONS


async def test_two_migrators_at_once_apply_each_revision_once(empty_url: str) -> None:
    first, second = await asyncio.gather(migrate(empty_url), migrate(empty_url))
    assert sorted([first, second]) == [[], REVISIONS]


# --- revisions, the command line, the wheel -------------------------------------------------------


def test_revisions_are_numbered_in_order_one_after_the_other() -> None:
    assert REVISIONS == [f"{n:04d}" for n in range(1, len(REVISIONS) + 1)], (
        "name a new revision by the next number: alembic revision --rev-id NNNN -m '...' (docs/migrations.md)"
    )
    for before, script in zip([None, *REVISIONS], reversed(list(SCRIPTS.walk_revisions())), strict=False):
        assert script.down_revision == before
        assert Path(script.path).name.startswith(f"{script.revision}_")
    assert SCRIPTS.get_heads() == [HEAD]


async def test_an_autogenerated_revision_takes_the_next_number(empty_url: str, revisions: Path) -> None:
    await migrate(empty_url, location=revisions)

    def autogenerate(connection: Connection) -> None:
        config = alembic_config(revisions)
        config.attributes["connection"] = connection
        command.revision(config, "nothing changed", autogenerate=True)

    await run_locked(empty_url, autogenerate)
    made = sorted((revisions / "versions").glob("*.py"))[-1]
    number = f"{len(REVISIONS) + 1:04d}"
    assert made.name == f"{number}_nothing_changed.py"
    text = made.read_text()
    assert f'revision = "{number}"' in text or f"revision = '{number}'" in text
    assert f"down_revision: str | None = '{HEAD}'" in text


def alembic(*args: str, database_url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **({"DATABASE_URL": database_url} if database_url else {})}
    return subprocess.run([str(Path(sys.executable).with_name("alembic")), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


async def test_the_alembic_command_line_lists_applies_and_checks_the_revisions(empty_url: str) -> None:
    history = await asyncio.to_thread(alembic, "history")
    assert history.returncode == 0, history.stderr
    assert f"<base> -> {BASELINE}" in history.stdout and f"-> {HEAD} (head)" in history.stdout

    upgrade = await asyncio.to_thread(alembic, "upgrade", "head", database_url=empty_url)
    assert upgrade.returncode == 0, upgrade.stderr
    assert f"Running upgrade  -> {BASELINE}" in upgrade.stderr
    assert sorted(await recorded_digests(empty_url)) == REVISIONS

    check = await asyncio.to_thread(alembic, "check", database_url=empty_url)
    assert check.returncode == 0, check.stderr
    assert "No new upgrade operations detected" in check.stdout + check.stderr


async def test_sql_written_out_builds_the_same_database_and_its_digests_are_recorded_next_time(
    empty_url: str, database_url: str
) -> None:
    written = await asyncio.to_thread(alembic, "upgrade", "head", "--sql")
    assert written.returncode == 0, written.stderr
    conn = await asyncpg.connect(empty_url)
    try:  # what a DBA runs
        await conn.execute(written.stdout)
    finally:
        await conn.close()
    assert "alembic_revision_digest" not in await public_tables(empty_url)

    assert await migrate(empty_url) == []
    assert sorted(await recorded_digests(empty_url)) == REVISIONS
    assert differences(await catalog(empty_url, SCHEMA_KINDS), await catalog(database_url, SCHEMA_KINDS)) == []


async def test_the_wheel_carries_the_revisions_and_migrates_without_the_source_tree(
    empty_url: str, tmp_path: Path
) -> None:
    built = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert built.returncode == 0, built.stderr
    wheel = next(tmp_path.glob("westique_rewards-*.whl"))
    installed = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        archive.extractall(installed)
    assert "rewards/sql/env.py" in names and f"rewards/sql/versions/{BASELINE}_baseline.py" in names

    # run from elsewhere, the unpacked wheel first on the path: the source tree is not used
    program = ("import asyncio, sys\nfrom rewards.migrations import migrate, script_location\n"
               "print(script_location())\nprint(','.join(asyncio.run(migrate(sys.argv[1]))))\n")
    ran = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", program, empty_url], cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(installed)}, capture_output=True, text=True, timeout=120, check=False,
    )
    assert ran.returncode == 0, ran.stderr
    location, applied = ran.stdout.split()
    assert Path(location) == installed / "rewards" / "sql"
    assert applied == ",".join(REVISIONS)
