"""Events: what happened, written in the same transaction as the change it reports.

The engine's postings add theirs to the plan (`rewards.engine.rows.Event`); anything else that
changes members or subscriptions calls `emit` inside its own transaction. An event carries no
personal data, except an event that is a message to deliver (an offer, a sign-in link), which
must name where to send it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import msgspec
from sqlalchemy import bindparam, func, insert

from rewards.statements import Statement
from rewards.tables import events

_EMIT = Statement(insert(events).values(
    type=bindparam("type"), member_id=bindparam("member_id"), data=bindparam("data"),
    occurred_at=func.coalesce(bindparam("occurred_at"), func.clock_timestamp())))


async def emit(conn: asyncpg.Connection, type: str, *, member_id: int | None, data: dict[str, Any],
               occurred_at: datetime | None = None) -> None:
    """Record an event in the caller's transaction (it commits, or vanishes, with the change)."""
    await _EMIT.execute(conn, type=type, member_id=member_id, data=msgspec.json.encode(data).decode(),
                        occurred_at=occurred_at)
