"""Fixtures of the fault tests: a PostgreSQL server of their own that they may stop and start."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.reliability.harness import PrivatePostgres, drop_database, fresh_database


@pytest.fixture(scope="session")
def private_pg() -> Iterator[PrivatePostgres]:
    """A throwaway server under a temporary folder (never the machine's shared one)."""
    server = PrivatePostgres()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
async def private_db(private_pg: PrivatePostgres) -> AsyncIterator[str]:
    """A fresh, migrated database on the private server, for one test."""
    url = await fresh_database(private_pg.url, "faults")
    yield url
    try:
        await drop_database(url)
    except OSError:
        pass  # the server was left down by a failed test; destroy() removes it all
