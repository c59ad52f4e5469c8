"""The stored versions of the program's rules: loading, caching and publishing them."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import asyncpg
import msgspec

from rewards import errors
from rewards.db import Database
from rewards.rules import Rules, in_force_lookup
from rewards.schemas import RulesIn

# Another worker may publish a version; a posting sees it within this many seconds.
REFRESH_SECONDS = 2.0


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

    async def load(self) -> None:
        rows = await self.db.run("SELECT version, effective_from, body FROM program_rules ORDER BY version")
        self._versions = [rules_from_row(r) for r in rows]
        self._in_force = in_force_lookup(self._versions)
        self._by_version = {r.version: r for r in self._versions}
        self._loaded_at = time.monotonic()
        self._current = None

    async def _fresh(self) -> None:
        if time.monotonic() - self._loaded_at > REFRESH_SECONDS:
            await self.load()

    async def in_force(self, when: datetime) -> Rules:
        await self._fresh()
        try:
            return self._in_force(when)
        except LookupError as exc:
            raise errors.ValidationFailed(str(exc), field="occurred_at") from exc

    async def version(self, number: int) -> Rules:
        if number not in self._by_version:
            await self.load()
        return self._by_version[number]

    async def current(self) -> Rules:
        """The version in force now, kept until a later version takes effect or the rules reload."""
        await self._fresh()
        now = datetime.now(UTC)
        if self._current is None or now >= self._current[0]:
            later = [r.effective_from for r in self._versions if r.effective_from and r.effective_from > now]
            self._current = (min(later, default=datetime.max.replace(tzinfo=UTC)), await self.in_force(now))
        return self._current[1]

    async def publish(self, new: RulesIn) -> Rules:
        """Store a new version; it applies to postings that occur from its effective_from on."""
        body = msgspec.to_builtins(new)
        effective_from = new.effective_from or datetime.now(UTC)
        body.pop("effective_from", None)
        row = await self.db.run(
            """INSERT INTO program_rules (version, effective_from, body)
               SELECT coalesce(max(version), 0) + 1, $1, $2::jsonb FROM program_rules
               RETURNING version, effective_from, body""",
            effective_from,
            msgspec.json.encode(body).decode(),
        )
        await self.load()
        return rules_from_row(row[0])
