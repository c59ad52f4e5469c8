"""API keys: listed without their tokens, revoked at once on every worker (GET /v1/keys, DELETE
/v1/keys/{id}, `rewards keys list`, `rewards keys revoke`)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from rewards.app import create_app
from rewards.auth import CACHE_SECONDS, create_key
from rewards.config import load_settings
from tests.conftest import auth, unique
from tests.desk_support import enrolled, key_id_of

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
async def other_worker(app: Any) -> AsyncIterator[AsyncTestClient]:
    """The service again, as another worker process would run it: its own pool, its own key cache."""
    async with AsyncTestClient(app=create_app(load_settings())) as worker:
        yield worker


async def until(check: Any, seconds: float = 3.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.02)
    return False


async def test_keys_are_listed_with_their_labels_and_never_their_tokens(client: AsyncTestClient,
                                                                        keys: dict[str, str], db: Any) -> None:
    label = unique("register")
    token = await create_key(db, ["checkout"], label=label)
    key_id = await key_id_of(db, token)
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = await client.get("/v1/keys", params={"limit": 2, **({"cursor": cursor} if cursor else {})},
                                headers=auth(keys["admin"]))
        assert page.status_code == 200, page.text
        items += page.json()["items"]
        assert token not in page.text and token[3:20] not in page.text
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    [mine] = [k for k in items if k["key_id"] == key_id]
    assert (mine["scopes"], mine["label"], mine["member_id"], mine["revoked_at"]) == (["checkout"], label, None, None)
    assert [k["key_id"] for k in items] == sorted(k["key_id"] for k in items)
    assert set(mine) == {"key_id", "scopes", "member_id", "label", "created_at", "revoked_at"}


async def test_a_revoked_key_stops_working_at_once_on_every_worker(
        client: AsyncTestClient, other_worker: AsyncTestClient, keys: dict[str, str], db: Any) -> None:
    member = (await enrolled(client, keys))["member_id"]
    token = await create_key(db, ["checkout"], label="stolen register")
    key_id = await key_id_of(db, token)
    other_auth = other_worker.app.state.auth  # type: ignore[attr-defined]
    assert await until(lambda: asyncio.sleep(0, result=other_auth.caching)), "the worker never heard revocations"
    for worker in (client, other_worker):
        assert (await worker.get(f"/v1/members/{member}/balance", headers=auth(token))).status_code == 200
    revoked = await client.delete(f"/v1/keys/{key_id}", headers=auth(keys["admin"]))
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["key_id"] == key_id and revoked.json()["revoked_at"] is not None
    assert (await client.get(f"/v1/members/{member}/balance", headers=auth(token))).status_code == 401
    started = time.monotonic()

    async def refused() -> bool:
        return (await other_worker.get(f"/v1/members/{member}/balance", headers=auth(token))).status_code == 401

    # the other worker had the token cached for CACHE_SECONDS: it is refused long before that
    assert await until(refused, seconds=2.0)
    assert time.monotonic() - started < CACHE_SECONDS / 4
    again = await client.delete(f"/v1/keys/{key_id}", headers=auth(keys["admin"]))
    assert again.status_code == 200 and again.json()["revoked_at"] == revoked.json()["revoked_at"]
    assert (await client.delete(f"/v1/keys/{2**40}", headers=auth(keys["admin"]))).status_code == 404


def cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from rewards.cli import main; main()", "keys", *args],
                          env={**os.environ, "DATABASE_URL": database_url}, capture_output=True, text=True,
                          timeout=120, cwd=REPO)


async def test_keys_list_and_revoke_on_the_command_line(client: AsyncTestClient, keys: dict[str, str], db: Any,
                                                        database_url: str) -> None:
    member = (await enrolled(client, keys))["member_id"]
    label = unique("till")
    made = await asyncio.to_thread(cli, database_url, "create", "--scope", "checkout", "--label", label)
    assert made.returncode == 0, made.stderr
    token = made.stdout.splitlines()[-1]
    key_id = await key_id_of(db, token)
    assert f"key {key_id} (revoke it with `rewards keys revoke {key_id}`)" in made.stderr
    assert (await client.get(f"/v1/members/{member}/balance", headers=auth(token))).status_code == 200
    listed = await asyncio.to_thread(cli, database_url, "list")
    assert listed.returncode == 0, listed.stderr
    [line] = [line for line in listed.stdout.splitlines() if label in line]
    assert line.split()[0] == str(key_id) and "checkout" in line and token not in listed.stdout
    done = await asyncio.to_thread(cli, database_url, "revoke", str(key_id))
    assert done.returncode == 0 and f"revoked key {key_id} ({label})" in done.stdout, done.stdout + done.stderr

    async def refused() -> bool:
        return (await client.get(f"/v1/members/{member}/balance", headers=auth(token))).status_code == 401

    assert await until(refused, seconds=2.0), "the service kept a revoked key"
    again = await asyncio.to_thread(cli, database_url, "revoke", str(key_id))
    assert again.returncode == 0 and "already revoked" in again.stdout
    missing = await asyncio.to_thread(cli, database_url, "revoke", str(2**40))
    assert missing.returncode == 1 and "does not exist" in missing.stderr
