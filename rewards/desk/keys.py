"""API keys as an administrator sees them: listed (never their tokens) and revoked.

A revoked key stops working at once on every worker and host: the revocation commits with a
notification (`rewards.auth.REVOCATIONS`) on which every worker's Authenticator listens, and
each drops the tokens it had checked. Revoking a key already revoked answers it as it is.
"""

from __future__ import annotations

import asyncpg
from sqlalchemy import Integer, bindparam, func, select, update

from rewards import errors
from rewards.auth import REVOCATIONS
from rewards.db import Database
from rewards.members import decode_cursor, encode_cursor
from rewards.schemas import KeyOut, KeysPage
from rewards.statements import Statement
from rewards.tables import api_keys

_COLUMNS = (api_keys.c.id, api_keys.c.scopes, api_keys.c.member_id, api_keys.c.label, api_keys.c.created_at,
            api_keys.c.revoked_at)
KEYS = Statement(select(*_COLUMNS).where(api_keys.c.id > bindparam("after")).order_by(api_keys.c.id)
                 .limit(bindparam("limit", type_=Integer)))
KEY = Statement(select(*_COLUMNS).where(api_keys.c.id == bindparam("key_id")))
REVOKE = Statement(update(api_keys).where(api_keys.c.id == bindparam("key_id"), api_keys.c.revoked_at.is_(None))
                   .values(revoked_at=func.clock_timestamp()).returning(api_keys.c.id))
NOTIFY = "SELECT pg_notify($1, $2)"


def key_out(row: asyncpg.Record) -> KeyOut:
    return KeyOut(key_id=row["id"], scopes=list(row["scopes"]), member_id=row["member_id"], label=row["label"],
                  created_at=row["created_at"], revoked_at=row["revoked_at"])


async def list_keys(db: Database, *, cursor: str | None = None, limit: int = 100) -> KeysPage:
    """Keys oldest first, `limit` a page; `next_cursor` continues."""
    after = decode_cursor(cursor) if cursor else 0
    rows = await db.run(KEYS, after=after, limit=limit + 1)
    page = rows[:limit]
    return KeysPage(items=[key_out(r) for r in page],
                    next_cursor=encode_cursor(page[-1]["id"]) if len(rows) > limit else None)


async def revoke_key(db: Database, key_id: int) -> tuple[bool, KeyOut]:
    """Revoke the key (and tell every worker); (revoked now, the key). Unknown: NotFound."""

    async def work(conn: asyncpg.Connection) -> tuple[bool, KeyOut]:
        revoked = await REVOKE.fetchval(conn, key_id=key_id) is not None
        if revoked:  # delivered when this transaction commits, to every listening worker
            await conn.execute(NOTIFY, REVOCATIONS, str(key_id))
        row = await KEY.fetchrow(conn, key_id=key_id)
        if row is None:
            raise errors.NotFound(f"key {key_id} does not exist")
        return revoked, key_out(row)

    return await db.transaction(work)
