"""Events: what happened, written in the same transaction as the change it reports.

The engine's postings add theirs to the plan (`rewards.engine.rows.Event`); anything else that
changes members or subscriptions calls `emit` (or `emit_many`) inside its own transaction, so
an event commits, or vanishes, with its change. An event carries no personal data, except an
event that is a message to deliver (`offer.delivery`, `sign_in_link.created`), which must name
where to send it.

The rest of the package reads them: `feed` (the pull feed, in commit order), `webhooks` (the
endpoints they are pushed to), `delivery` (the pushing), `api` (the routes). docs/events.md
describes every type and its data.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import msgspec
from sqlalchemy import bindparam, func, insert

from rewards.statements import Statement
from rewards.tables import events

# Every type of event the program has or will have, whoever writes it: the feed's `types` filter and a webhook's `types`
# accept these names, and no other.
EVENT_TYPES = (
    "member.enrolled", "member.updated", "member.cancelled", "member.erasure_scheduled", "member.erased",
    "member.merged", "purchase.posted", "return.posted", "points.adjusted", "points.carried", "reward.issued",
    "reward.redeemed",
    "reward.reinstated", "reward.expiring", "reward.expired", "reward.voided", "subscription.changed",
    "offer.delivery", "sign_in_link.created", "privacy_request.received", "privacy_request.completed",
    "privacy_request.denied",
)

_EMIT = Statement(insert(events).values(
    type=bindparam("type"), member_id=bindparam("member_id"), data=bindparam("data"),
    occurred_at=func.coalesce(bindparam("occurred_at"), func.clock_timestamp())))

# many at once: one statement, in the order given (their ids follow it)
_EMIT_MANY = """
INSERT INTO events (type, member_id, occurred_at, data)
SELECT type, member_id, coalesce(occurred_at, clock_timestamp()), data
FROM jsonb_populate_recordset(NULL::events, $1::jsonb) WITH ORDINALITY AS x
ORDER BY x.ordinality"""


class NewEvent(msgspec.Struct, kw_only=True):
    type: str
    member_id: int | None
    data: dict[str, Any]
    occurred_at: datetime | None = None
    """When it happened; None: now (the database's clock)."""


async def emit(conn: asyncpg.Connection, type: str, *, member_id: int | None, data: dict[str, Any],
               occurred_at: datetime | None = None) -> None:
    """Record an event in the caller's transaction (it commits, or vanishes, with the change)."""
    await _EMIT.execute(conn, type=type, member_id=member_id, data=msgspec.json.encode(data).decode(),
                        occurred_at=occurred_at)


async def emit_many(conn: asyncpg.Connection, new: list[NewEvent]) -> None:
    """Record several events in the caller's transaction, in one statement."""
    if new:
        await conn.execute(_EMIT_MANY, msgspec.json.encode(new).decode())
