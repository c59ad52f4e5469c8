"""The stored versions of the program's rules: loading, caching and publishing them.

Versions are immutable and numbered in the order they are published, so a cache that knows
the newest number the database holds is complete. A posting reads that number under the rules
lock (`rewards.engine.posting`) and reloads the versions when it is new to this worker: a
version published a moment ago on any worker or host applies to the next posting at once.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import asyncpg
import msgspec

from rewards import errors
from rewards.db import RULES_LOCK, Database
from rewards.rules import Rules, in_force_lookup
from rewards.schemas import RulesIn

# What a balance shows (points to the next reward) may lag a new version by this much.
DISPLAY_REFRESH_SECONDS = 2.0
# The program's rules cannot take effect before the program existed, nor decades ahead.
EARLIEST_EFFECTIVE = datetime(2000, 1, 1, tzinfo=UTC)
FURTHEST_AHEAD = timedelta(days=10 * 366)

VERSIONS = "SELECT version, effective_from, body FROM program_rules ORDER BY version"


def rules_from_row(row: asyncpg.Record) -> Rules:
    body = row["body"] if isinstance(row["body"], dict) else msgspec.json.decode(row["body"])
    return msgspec.convert(
        {**body, "version": row["version"], "effective_from": row["effective_from"]}, Rules, from_attributes=False
    )


class Rulebook:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._versions: list[Rules] = []
        self._in_force = in_force_lookup(self._versions)
        self._by_version: dict[int, Rules] = {}
        self._loaded_at = 0.0
        self._current: tuple[datetime, Rules] | None = None  # (until, version): every balance read asks

    def _keep(self, rows: Sequence[asyncpg.Record]) -> None:
        self._versions = [rules_from_row(r) for r in rows]
        self._in_force = in_force_lookup(self._versions)
        self._by_version = {r.version: r for r in self._versions}
        self._loaded_at = time.monotonic()
        self._current = None

    async def load(self) -> None:
        self._keep(await self.db.run(VERSIONS))

    async def stored(self, conn: asyncpg.Connection, latest: int) -> Sequence[Rules]:
        """Every version, `latest` the newest the database holds (read under the rules lock)."""
        if not self._versions or self._versions[-1].version != latest:
            self._keep(await conn.fetch(VERSIONS))
        return self._versions

    async def version(self, number: int) -> Rules:
        if number not in self._by_version:
            await self.load()
        return self._by_version[number]

    async def current(self) -> Rules:
        """The version in force now, for display (a posting never uses this cache)."""
        if time.monotonic() - self._loaded_at > DISPLAY_REFRESH_SECONDS:
            await self.load()
        now = datetime.now(UTC)
        if self._current is None or now >= self._current[0]:
            later = [r.effective_from for r in self._versions if r.effective_from and r.effective_from > now]
            self._current = (min(later, default=datetime.max.replace(tzinfo=UTC)), self._in_force(now))
        return self._current[1]

    async def publish(self, new: RulesIn) -> Rules:
        """Store a new version. It takes effect at its effective_from, never before it is published:
        a time in the past is refused once the program has postings (so no version reaches back
        into a day already closed). Published under the rules lock, exclusively: every posting
        either sees it or committed before it existed."""
        body = msgspec.to_builtins(new)
        body.pop("effective_from", None)

        async def work(conn: asyncpg.Connection) -> asyncpg.Record:
            await conn.execute("SELECT pg_advisory_xact_lock($1)", RULES_LOCK)
            now = await conn.fetchval("SELECT clock_timestamp()")
            effective_from = new.effective_from or now
            if not EARLIEST_EFFECTIVE <= effective_from <= now + FURTHEST_AHEAD:
                raise errors.ValidationFailed(
                    f"effective_from must be between {EARLIEST_EFFECTIVE.date()} and ten years from now",
                    field="effective_from")
            if effective_from < now and await conn.fetchval("SELECT EXISTS (SELECT 1 FROM purchases)"):
                raise errors.ValidationFailed(
                    "effective_from is in the past: a new version takes effect no earlier than it is published "
                    "once the program has postings", field="effective_from")
            return await conn.fetchrow(
                """INSERT INTO program_rules (version, effective_from, body, created_at)
                   SELECT coalesce(max(version), 0) + 1, $1, $2::jsonb, clock_timestamp() FROM program_rules
                   RETURNING version, effective_from, body""",
                effective_from, msgspec.json.encode(body).decode())

        row = await self.db.transaction(work)
        await self.load()
        return rules_from_row(row)
