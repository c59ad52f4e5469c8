"""The database: the embedded PostgreSQL, the pool and transactions with retry (migrations: rewards/migrations.py).

Queries are plain SQL on asyncpg connections, with prepared statements, because postings
are the hot path; the pool is asyncpg's (SQLAlchemy's checkout cost ~100 µs of CPU per
request in the profile, more than the statement it served).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import asyncpg
import msgspec

from rewards.config import Settings
from rewards.embedded import embedded

if TYPE_CHECKING:
    from rewards.statements import Statement

T = TypeVar("T")

# A pooled connection whose server ended it while it was idle (a terminated backend) can be
# handed out after the server's error arrived and before its closing did: asyncpg then refuses
# to send anything on it. Nothing was sent, so the work is run again on another connection.
STALE = (asyncpg.InternalClientError,)
# errors after which the whole transaction is simply run again: a racing twin, a deadlock
RETRYABLE = (
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.UniqueViolationError,
)
# errors that mean the database is gone for now (restart, terminated backend, network)
UNAVAILABLE = (
    OSError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
    asyncio.TimeoutError,
)


RULES_LOCK = 0x5255_4C45  # "RULE": postings hold it shared, publishing a rules version exclusively


class DatabaseUnavailable(Exception):
    """The database cannot be reached right now; the request may be retried."""


def start_embedded(data_dir: Path) -> str:
    """The URL of the embedded PostgreSQL under `data_dir`, started if need be; this process
    uses it until it exits (`rewards.embedded` stops it when its last user leaves)."""
    return embedded(data_dir).use()


def resolve_database_url(settings: Settings) -> str:
    """`DATABASE_URL` when set; otherwise the embedded server's URL (starting it)."""
    return settings.database_url or start_embedded(settings.data_dir)


def describe_url(url: str) -> str:
    """The URL without its password, for logs and messages."""
    parts = urlsplit(url)
    host = parts.hostname or dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p).get("host", "")
    return f"{parts.scheme}://{parts.username or ''}@{host}{':' + str(parts.port) if parts.port else ''}{parts.path}"


def asyncpg_dsn(url: str) -> str:
    scheme, _, rest = url.partition("://")
    if scheme in ("postgres", "postgresql", "postgresql+asyncpg"):
        return f"postgresql://{rest}"
    raise ValueError(f"DATABASE_URL must be a postgresql:// URL, not {scheme}://")


def _json_text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def _setup_connection(conn: asyncpg.Connection) -> None:
    """json and jsonb: parameters are passed as JSON text, results come back decoded (msgspec)."""
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, schema="pg_catalog", format="text", encoder=_json_text,
                                  decoder=msgspec.json.decode)


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """Pool reset: nothing. asyncpg's default (RESET ALL, UNLISTEN, …) is a round trip per
    checkout; our sessions set nothing that outlives a transaction, and a connection left
    inside a transaction is thrown away by `Database.connection` before it is released."""


def _in_transaction(conn: asyncpg.Connection) -> bool:
    try:
        return not conn.is_closed() and conn.is_in_transaction()
    except asyncpg.InterfaceError:  # closed under us: the pool has taken it back already
        return False


def _throw_away(conn: asyncpg.Connection) -> None:
    """Close the connection so the pool opens a new one in its place."""
    with contextlib.suppress(asyncpg.InterfaceError):  # closed under us: already gone
        conn.terminate()


class Database:
    """The pool and the two ways of using it: a connection, or a transaction with retry.

    The pool is asyncpg's own, created on first use (so a Database can be made outside an
    event loop), with prepared statements cached per connection. A pooled connection the
    server has closed is replaced on checkout, at no round trip.
    """

    def __init__(self, url: str, *, pool_size: int = 10, command_timeout: float = 30) -> None:
        self.url = url
        self.pool_size = pool_size
        self.command_timeout = command_timeout
        self._pool: asyncpg.Pool | None = None
        self._opening: asyncio.Lock | None = None
        self.coalescers: dict[str, Any] = {}  # rewards.coalescing.shared's, by name

    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            self._opening = self._opening or asyncio.Lock()
            async with self._opening:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(
                        asyncpg_dsn(self.url), min_size=0, max_size=self.pool_size, reset=_keep_session, init=_setup_connection,
                        command_timeout=self.command_timeout, server_settings={"application_name": "rewards", "TimeZone": "UTC", "jit": "off"},
                    )
        return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """An asyncpg connection from the pool; broken ones are thrown away, not reused."""
        try:
            pool = await self._get_pool()
            # waiting for a free connection, or for a new one to open (a server just started, a loaded
            # machine), is bounded like a statement; asyncio.timeout is cheaper than acquire(timeout=)
            async with asyncio.timeout(self.command_timeout):
                conn = await pool.acquire()
        except UNAVAILABLE as exc:
            raise DatabaseUnavailable(str(exc)) from exc
        try:
            try:
                yield conn
            except UNAVAILABLE as exc:
                _throw_away(conn)
                raise DatabaseUnavailable(str(exc)) from exc
            except STALE:
                _throw_away(conn)
                raise
            except BaseException:
                if _in_transaction(conn):
                    _throw_away(conn)
                raise
            if _in_transaction(conn):
                # left open by its user: the next one must not inherit its snapshot or its locks
                _throw_away(conn)
        finally:
            await pool.release(conn)

    async def transaction(
        self, work: Callable[[asyncpg.Connection], Awaitable[T]], *, attempts: int = 5, begin: str | None = None,
    ) -> T:
        """Run `work` in one transaction (read committed), again from the start on a retryable error.

        `begin`: the statements that open the transaction, sent as one simple query (no
        parameters): BEGIN and the transaction's own settings in a single round trip.
        """
        attempt = stale = 0
        while True:
            try:
                async with self.connection() as conn:
                    if begin is None:
                        async with conn.transaction():
                            return await work(conn)
                    await conn.execute(begin)
                    try:
                        result = await work(conn)
                    except BaseException:
                        if _in_transaction(conn):
                            await conn.execute("ROLLBACK")
                        raise
                    await conn.execute("COMMIT")
                    return result
            except STALE:  # every pooled connection may be stale at once: each is replaced
                stale += 1
                if stale > self.pool_size:
                    raise
            except RETRYABLE:
                attempt += 1
                if attempt == attempts:
                    raise
                await asyncio.sleep(0.002 * attempt)

    async def dedicated_connection(self) -> asyncpg.Connection:
        """A connection of its own, outside the pool, for a caller that keeps it (LISTEN); closing it is theirs."""
        try:
            return await asyncpg.connect(asyncpg_dsn(self.url), timeout=self.command_timeout,
                                         server_settings={"application_name": "rewards-listen"})
        except UNAVAILABLE as exc:
            raise DatabaseUnavailable(str(exc)) from exc

    async def run(self, query: str | Statement, *args: object, **params: object) -> list[asyncpg.Record]:
        """One statement on a pooled connection: SQL text with positional `args`, or a
        `Statement` (rewards/statements.py) with its values named in `params`."""
        if isinstance(query, str):
            if params:
                raise TypeError("SQL text takes its values by position")
            sql = query
        else:
            if args:
                raise TypeError(f"{query!r} takes its values by name")
            sql, args = query.sql, tuple(query.args(params))
        for stale in range(self.pool_size, -1, -1):  # every pooled connection may be stale at once
            try:
                async with self.connection() as conn:
                    return await conn.fetch(sql, *args)
            except STALE:
                if not stale:
                    raise
        raise AssertionError("unreachable")



def database_from_env(settings: Settings) -> Database:
    url = resolve_database_url(settings)
    os.environ.setdefault("DATABASE_URL", url)  # worker processes reuse the same server
    return Database(url, pool_size=settings.pool_size)
