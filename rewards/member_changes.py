"""Who changed a member, and how: enrollment, correction, cancellation, erasure, merges.

The ledger says who made each change of points (`ledger.actor_*`); `member_changes` says who
made each change of the member itself, with the same actor columns: an API key, a guest's
page session, or the service. A correction records the names of the fields it changed, never
their values, so the table holds no personal data. Postings write theirs through the engine's
plan (cancellation, merges); the rest call `record` in their own transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import msgspec
from sqlalchemy import Integer, bindparam, func, insert, select

from rewards.engine.commands import Actor
from rewards.schemas import ActorOut, MemberChangeOut
from rewards.statements import Statement
from rewards.tables import api_keys, member_changes

_RECORD = Statement(insert(member_changes).values(
    member_id=bindparam("member_id"), kind=bindparam("kind"), details=bindparam("details"),
    occurred_at=func.coalesce(bindparam("occurred_at"), func.clock_timestamp()),
    actor_key_id=bindparam("actor_key_id"), actor_session_id=bindparam("actor_session_id"),
    actor_system=bindparam("actor_system")))

CHANGES_SHOWN = 100
_CHANGES = Statement(
    select(member_changes.c.kind, member_changes.c.details, member_changes.c.counterpart_member_id,
           member_changes.c.occurred_at, member_changes.c.actor_key_id, member_changes.c.actor_session_id,
           member_changes.c.actor_system, api_keys.c.label)
    .select_from(member_changes.outerjoin(api_keys, api_keys.c.id == member_changes.c.actor_key_id))
    .where(member_changes.c.member_id == bindparam("member_id"))
    .order_by(member_changes.c.id.desc())
    .limit(bindparam("limit", type_=Integer))
)


async def record(conn: asyncpg.Connection, member_id: int, kind: str, actor: Actor, *,
                 occurred_at: datetime | None = None, details: dict[str, Any] | None = None) -> None:
    """Record a change in the caller's transaction (`occurred_at` defaults to the database's clock)."""
    await _RECORD.execute(conn, member_id=member_id, kind=kind, details=msgspec.json.encode(details or {}).decode(),
                          occurred_at=occurred_at, actor_key_id=actor.key_id, actor_session_id=actor.session_id,
                          actor_system=actor.system)


def actor_out(row: Any) -> ActorOut:
    """Who, from a row's actor columns and the key's label (joined from api_keys)."""
    return ActorOut(key_id=row["actor_key_id"], label=row["label"] if row["actor_key_id"] is not None else None,
                    session_id=row["actor_session_id"], system=row["actor_system"])


async def changes(conn: asyncpg.Connection, member_id: int, *, staff: bool) -> list[MemberChangeOut]:
    """The member's newest changes, newest first; who made each only for `staff`."""
    found = []
    for row in await _CHANGES.fetch(conn, member_id=member_id, limit=CHANGES_SHOWN):
        details = row["details"] or {}
        found.append(MemberChangeOut(
            kind=row["kind"], occurred_at=row["occurred_at"], fields=details.get("fields"),
            counterpart_member_id=row["counterpart_member_id"], actor=actor_out(row) if staff else None))
    return found
