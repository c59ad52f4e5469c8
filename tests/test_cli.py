"""The real `rewards` console script, run as a subprocess against the test server.

`keys create` runs against the session's database, so its tokens can be tried over HTTP;
`migrate`, `demo` and `verify` (and the tampering) run against a scratch database of
their own, so no other test ever sees a tampered ledger.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.conftest import auth
from tests.databases import scratch_database

ROOT = Path(__file__).resolve().parent.parent
TOKEN = re.compile(r"^wr_[A-Za-z0-9_\-]{40,}$")


def rewards_script() -> str:
    beside = Path(sys.executable).with_name("rewards")
    found = str(beside) if beside.exists() else shutil.which("rewards")
    assert found, "the `rewards` console script is not installed (pip install -e .)"
    return found


async def rewards(database_url: str, *args: str, tmp_path: Path) -> tuple[int, str, str]:
    """Run `rewards ARGS` with DATABASE_URL set; (exit code, stdout, stderr)."""
    env = {**os.environ, "DATABASE_URL": database_url, "REWARDS_DATA_DIR": str(tmp_path / "data"),
           "NO_COLOR": "1", "COLUMNS": "200"}
    process = await asyncio.create_subprocess_exec(
        rewards_script(), *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.fixture(scope="module")
async def scratch_url(database_url: str) -> AsyncIterator[str]:
    """An empty database shared by this module's tests, in order."""
    async with scratch_database(database_url, "rewards_cli", migrated=False) as url:
        yield url


@pytest.fixture
async def fresh_url(database_url: str) -> AsyncIterator[str]:
    """An empty database of the test's own."""
    async with scratch_database(database_url, "rewards_cli", migrated=False) as url:
        yield url


# --- migrate --------------------------------------------------------------------------------------


async def test_migrate_applies_every_revision_once_then_says_up_to_date(scratch_url: str, tmp_path: Path) -> None:
    revisions = sorted(p.name.split("_", 1)[0] for p in (ROOT / "sql" / "versions").glob("[0-9]*.py"))
    code, out, err = await rewards(scratch_url, "migrate", tmp_path=tmp_path)
    assert (code, out.strip()) == (0, "applied: " + ", ".join(revisions)), err

    code, out, err = await rewards(scratch_url, "migrate", tmp_path=tmp_path)
    assert (code, out.strip()) == (0, "the schema is up to date"), err
    conn = await asyncpg.connect(scratch_url)
    try:
        assert await conn.fetchval("SELECT version_num FROM alembic_version") == revisions[-1]
        recorded = [r["revision"] for r in await conn.fetch("SELECT revision FROM alembic_revision_digest ORDER BY 1")]
    finally:
        await conn.close()
    assert recorded == revisions


async def test_migrate_refuses_a_database_whose_applied_revision_differs_and_says_which(
    fresh_url: str, tmp_path: Path
) -> None:
    code, _, err = await rewards(fresh_url, "migrate", tmp_path=tmp_path)
    assert code == 0, err
    conn = await asyncpg.connect(fresh_url)
    try:  # the file as it was applied is not the file now (tests/test_migrations.py edits a real file)
        await conn.execute("UPDATE alembic_revision_digest SET sha256 = repeat('0', 64) WHERE revision = '0001'")
    finally:
        await conn.close()
    code, out, err = await rewards(fresh_url, "migrate", tmp_path=tmp_path)
    assert code == 1 and out == ""
    assert "revision 0001" in err and "was edited after it was applied" in err and "Traceback" not in err


async def test_migrate_on_the_session_database_is_up_to_date(database_url: str, tmp_path: Path) -> None:
    code, out, err = await rewards(database_url, "migrate", tmp_path=tmp_path)
    assert (code, out.strip()) == (0, "the schema is up to date"), err


# --- keys -----------------------------------------------------------------------------------------


def test_a_pool_of_one_connection_is_refused_at_start(monkeypatch) -> None:
    from rewards.config import load_settings

    monkeypatch.setenv("REWARDS_POOL_SIZE", "1")  # a report takes two connections: it would wait forever
    with pytest.raises(ValueError, match="at least 2"):
        load_settings()
    monkeypatch.setenv("REWARDS_POOL_SIZE", "2")
    assert load_settings().pool_size == 2


async def test_keys_create_prints_the_token_alone_on_its_last_line_and_it_works(
    database_url: str, client: Any, keys: dict[str, str], member: int, tmp_path: Path
) -> None:
    code, out, err = await rewards(database_url, "keys", "create", "--scope", "checkout", "--label", "till 4",
                                   tmp_path=tmp_path)
    assert code == 0, err
    token = out.splitlines()[-1]
    assert TOKEN.match(token), out
    assert token not in err
    balance = await client.get(f"/v1/members/{member}/balance", headers=auth(token))
    assert balance.status_code == 200, balance.text
    assert balance.json()["member_id"] == member
    # a checkout key is refused outside its scope
    profile = await client.get(f"/v1/members/{member}", headers=auth(token))
    assert profile.status_code == 403
    assert profile.json()["code"] == "forbidden"
    # the token is stored only as its hash
    rows = await asyncpg.connect(database_url)
    try:
        assert await rows.fetchval("SELECT count(*) FROM api_keys WHERE token_hash::text LIKE '%' || $1 || '%'",
                                   token) == 0
        assert await rows.fetchval("SELECT scopes FROM api_keys WHERE label = 'till 4' ORDER BY id DESC LIMIT 1") \
            == ["checkout"]
    finally:
        await rows.close()


async def test_keys_create_guest_token_reads_its_own_member_only(
    database_url: str, client: Any, make_member: Any, tmp_path: Path
) -> None:
    mine, theirs = await make_member(), await make_member()
    code, out, err = await rewards(database_url, "keys", "create", "--scope", "guest", "--member", str(mine),
                                   tmp_path=tmp_path)
    assert code == 0, err
    token = out.splitlines()[-1]
    assert TOKEN.match(token), out
    assert (await client.get(f"/v1/members/{mine}", headers=auth(token))).status_code == 200
    assert (await client.get(f"/v1/members/{mine}/balance", headers=auth(token))).status_code == 200
    other = await client.get(f"/v1/members/{theirs}", headers=auth(token))
    assert other.status_code == 403
    assert other.json()["code"] == "forbidden"
    enroll = await client.post("/v1/members", json={}, headers=auth(token))
    assert enroll.status_code == 403


@pytest.mark.parametrize("args", [
    ("--scope", "guest"),                               # a guest token names its member
    ("--scope", "guest", "--member", "999999999"),       # a member that exists
])
async def test_keys_create_refuses_bad_requests_and_prints_no_token(
    database_url: str, tmp_path: Path, args: tuple[str, ...]
) -> None:
    code, out, err = await rewards(database_url, "keys", "create", *args, tmp_path=tmp_path)
    assert code != 0
    assert not TOKEN.search(out + err)
    assert err.strip()


# --- demo and verify ------------------------------------------------------------------------------


async def test_a_demo_of_one_day_dates_no_return_in_the_future(fresh_url: str, tmp_path: Path) -> None:
    # every purchase is of the last day, so a return three days later would be refused as future
    code, out, err = await rewards(fresh_url, "demo", "--members", "10", "--purchases", "200", "--days", "1",
                                   "--seed", "3", tmp_path=tmp_path)
    assert code == 0, err
    summary = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
    assert int(summary["returns"]) > 0
    conn = await asyncpg.connect(fresh_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM purchase_returns WHERE occurred_at > now()") == 0
    finally:
        await conn.close()


async def test_demo_then_verify_is_sound_and_tampering_makes_verify_fail(
    scratch_url: str, tmp_path: Path
) -> None:
    code, out, err = await rewards(scratch_url, "demo", "--members", "30", "--purchases", "300", tmp_path=tmp_path)
    assert code == 0, err
    summary = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
    assert (summary["members"], summary["purchases"]) == ("30", "300")
    assert int(summary["rewards_issued"]) > 0

    code, out, err = await rewards(scratch_url, "verify", tmp_path=tmp_path)
    assert code == 0, out + err
    assert "sound" in out

    conn = await asyncpg.connect(scratch_url)
    try:
        counts = await conn.fetchrow("""SELECT (SELECT count(*) FROM members) AS m,
                                              (SELECT count(*) FROM purchases) AS p,
                                              (SELECT count(*) FROM ledger) AS l""")
        assert (counts["m"], counts["p"]) == (30, 300) and counts["l"] >= 300
        victim = await conn.fetchval("SELECT min(id) FROM members")
        await conn.execute("UPDATE members SET point_cents = point_cents + 250 WHERE id = $1", victim)
    finally:
        await conn.close()

    code, out, err = await rewards(scratch_url, "verify", tmp_path=tmp_path)
    assert code == 1, out + err
    assert f"a member's balance equals the sum of their ledger entries: member_id={victim}," in out
    assert "1 problem(s) found" in err

    code, out, _ = await rewards(scratch_url, "verify", "--no-recompute", tmp_path=tmp_path)
    assert code == 1
    assert f"member_id={victim}," in out
