"""Scratch databases for tests: made on the server under test, migrated with sql/versions/, dropped after."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import asyncpg

from rewards.migrations import migrate


def with_database(url: str, name: str) -> str:
    """The same server URL, naming another database."""
    base, _, query = url.partition("?")
    return base.rsplit("/", 1)[0] + "/" + name + ("?" + query if query else "")


async def empty_database(server_url: str, prefix: str) -> str:
    """A new database on the server of `server_url`, not migrated; its URL."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(with_database(server_url, "postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return with_database(server_url, name)


async def fresh_database(server_url: str, prefix: str) -> str:
    """A new, migrated database on the server of `server_url`; its URL."""
    url = await empty_database(server_url, prefix)
    await migrate(url)
    return url


async def drop_database(url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    admin = await asyncpg.connect(with_database(url, "postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@asynccontextmanager
async def scratch_database(server_url: str, prefix: str, *, migrated: bool = True) -> AsyncIterator[str]:
    """A database for the block's length, migrated (or `migrated=False`: empty), dropped after."""
    url = await (fresh_database if migrated else empty_database)(server_url, prefix)
    try:
        yield url
    finally:
        await drop_database(url)
