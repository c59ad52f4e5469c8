"""The events tests' fixtures: each module gets a database of its own (the feed and the webhooks see
every event of a database, so the session's would mix in the other tests'), the app on it, keys,
and a webhook receiver."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from rewards.auth import create_key
from rewards.db import Database
from rewards.engine import Engine, Limits
from rewards.rulebook import Rulebook
from tests.conftest import auth, client_on, enrollment
from tests.databases import scratch_database
from tests.events.support import Receiver


@pytest.fixture(scope="module")
async def events_url(database_url: str) -> AsyncIterator[str]:
    async with scratch_database(database_url, "rewards_events") as url:
        yield url


@pytest.fixture(scope="module")
async def events_db(events_url: str) -> AsyncIterator[Database]:
    database = Database(events_url, pool_size=10)
    yield database
    await database.close()


@pytest.fixture(scope="module")
async def events_engine(events_db: Database) -> Engine:
    return Engine(events_db, Rulebook(events_db), Limits())


@pytest.fixture(scope="module")
async def events_client(events_url: str) -> AsyncIterator[AsyncTestClient]:
    async with client_on(events_url) as client:
        yield client


@pytest.fixture(scope="module")
async def events_keys(events_db: Database) -> dict[str, str]:
    return {scope: await create_key(events_db, [scope])
            for scope in ("checkout", "guest_services", "admin", "integrations")}


@pytest.fixture(scope="module")
def enroll(events_client: AsyncTestClient, events_keys: dict[str, str]) -> Any:
    async def make(**overrides: Any) -> int:
        answer = await events_client.post("/v1/members", json=enrollment(**overrides),
                                          headers=auth(events_keys["guest_services"]))
        assert answer.status_code == 201, answer.text
        return answer.json()["member_id"]

    return make


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver().start()
    yield found
    found.stop()
