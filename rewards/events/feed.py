"""The pull feed: every event exactly once, in commit order, however transactions interleave.

The hazard. An event's id is drawn when its transaction writes it, but transactions commit in
another order: a posting that drew id 10 may commit after one that drew id 11. A feed that
served "ids after the cursor" could give out a cursor past 11 while 10 is still invisible, and
10 would never be served. Ordering by transaction id instead has the same hole (ids are
assigned at a transaction's first write, not at its commit).

The cure: passes. A pass is sealed by a short transaction that takes the sealing lock and
records the database's snapshot (`pg_current_snapshot()`: the transaction ids below which every
transaction has ended, `xmax`, and the ones still running, `xip`). Pass n holds exactly the
events of the transactions that are visible in its snapshot and were not visible in the
snapshot of pass n-1: those that committed between the two. So
- every committed event falls in exactly one pass (visibility only ever grows), and no event
  ever joins a pass already sealed: a pass is complete the moment a reader can see it;
- passes are numbered one after the other by one sealer at a time, each after the one before
  committed, so pass order is commit order; within a pass, events go by (transaction, id);
- nothing is rewritten: a pass is one small row, whatever the number of its events.
The feed's position is (pass, transaction, id), and `next_cursor` encodes it.

Latency. A pull seals a pass first when new events are visible, so it sees everything
committed before it was asked (one small write when there is something new, nothing
otherwise). Webhooks see what the job runner's last seal saw: it seals every second
(`rewards.jobs`), and each webhook reads the feed from its own position. A transaction that stays open (a long import
batch) holds back only its own events: the others flow past it, in their commit order.
"""

from __future__ import annotations

import base64
import re
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from rewards import errors
from rewards.db import Database
from rewards.events import EVENT_TYPES

SEAL_LOCK = 0x4556_5453  # "EVTS": one sealer at a time, so each pass follows the one before

# The events of pass `p` after (from_tx, from_id) in `s`, in (transaction, id) order, at most
# `{limit}`: those of the transactions running at the pass before (`after_xip`), then those that
# had not started then (`after_xmax` on); of both, those that are visible in the pass's snapshot.
# Two index scans of events (tx, id), each already in order.
_PASS_EVENTS = """
SELECT * FROM (
    (SELECT e.id, e.tx, e.type, e.member_id, e.occurred_at, e.data FROM events e
     WHERE e.tx = ANY (p.after_xip) AND e.tx <> ALL (p.snapshot_xip)
       AND (e.tx, e.id) > (s.from_tx, s.from_id) {where}
     ORDER BY e.tx, e.id LIMIT {limit})
    UNION ALL
    (SELECT e.id, e.tx, e.type, e.member_id, e.occurred_at, e.data FROM events e
     WHERE e.tx >= p.after_xmax AND e.tx < p.snapshot_xmax AND e.tx <> ALL (p.snapshot_xip)
       AND (e.tx, e.id) > (s.from_tx, s.from_id) {where}
     ORDER BY e.tx, e.id LIMIT {limit})) x
ORDER BY x.tx, x.id LIMIT {limit}"""


def pass_events(*, limit: str, where: str = "") -> str:
    """The lateral subquery of a pass's events (`p`: an event_passes row; `s`: from_tx, from_id)."""
    return _PASS_EVENTS.format(limit=limit, where=where)


# Seal a pass when events became visible since the last one; its number, or no row. Run after
# taking SEAL_LOCK, in the same transaction: this statement's snapshot is then taken after the
# pass before committed. The new events are looked for in the events (tx, id) index, from the
# pass before's bounds (ORDER BY tx LIMIT 1): an EXISTS was planned as a sequential scan that
# stops at the first match, and the new events are the last rows of the table (152 ms a seal
# on 536,000 events, every second).
SEAL = """
WITH snap AS (SELECT pg_current_snapshot() AS s),
now AS (SELECT pg_snapshot_xmax(s)::text::bigint AS snapshot_xmax,
               ARRAY(SELECT x::text::bigint FROM pg_snapshot_xip(s) AS x ORDER BY 1) AS snapshot_xip FROM snap),
prev AS (SELECT pass, snapshot_xmax, snapshot_xip FROM event_passes ORDER BY pass DESC LIMIT 1),
next AS (SELECT coalesce((SELECT pass FROM prev), 0) + 1 AS pass, now.snapshot_xmax, now.snapshot_xip,
                coalesce((SELECT snapshot_xmax FROM prev), 0) AS after_xmax,
                coalesce((SELECT snapshot_xip FROM prev), '{}') AS after_xip
         FROM now)
INSERT INTO event_passes (pass, snapshot_xmax, snapshot_xip, after_xmax, after_xip)
SELECT p.pass, p.snapshot_xmax, p.snapshot_xip, p.after_xmax, p.after_xip FROM next p
WHERE EXISTS (SELECT 1 FROM unnest(p.after_xip) AS x(tx)
              WHERE x.tx <> ALL (p.snapshot_xip)
                AND (SELECT e.tx FROM events e WHERE e.tx = x.tx ORDER BY e.tx LIMIT 1) IS NOT NULL)
   OR (SELECT e.tx FROM events e WHERE e.tx >= p.after_xmax AND e.tx < p.snapshot_xmax
                                   AND e.tx <> ALL (p.snapshot_xip)
       ORDER BY e.tx LIMIT 1) IS NOT NULL
RETURNING pass"""


async def seal_on(conn: asyncpg.Connection) -> int | None:
    """Seal a pass in the caller's transaction (to be committed at once: it holds the sealing lock)."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", SEAL_LOCK)
    found: int | None = await conn.fetchval(SEAL)
    return found


async def seal(db: Database) -> int | None:
    """Seal a pass of the events that became visible since the last one: its number, or None
    when there were none."""
    return await db.transaction(seal_on)


# A page of the feed after (pass, tx, id), and the last pass sealed, in one snapshot.
READ = f"""
WITH last AS (SELECT max(pass) AS pass FROM event_passes),
page AS (
    SELECT p.pass, e.id, e.tx, e.type, e.member_id, e.occurred_at, e.data
    FROM event_passes p
    CROSS JOIN LATERAL (SELECT CASE WHEN p.pass = $1 THEN $2::bigint ELSE -1 END AS from_tx,
                               CASE WHEN p.pass = $1 THEN $3::bigint ELSE -1 END AS from_id) s
    CROSS JOIN LATERAL ({pass_events(limit="$5", where="AND ($4::text[] IS NULL OR e.type = ANY ($4::text[]))")}) e
    WHERE p.pass >= $1
    ORDER BY p.pass, e.tx, e.id
    LIMIT $5)
SELECT last.pass AS last_pass, page.* FROM last LEFT JOIN page ON true
ORDER BY page.pass, page.tx, page.id"""


class Event(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An event as the feed and the webhooks carry it."""

    id: str
    """Stable: the same in the feed, in every delivery of it and in its `webhook-id` header."""
    type: str
    occurred_at: datetime
    """When it happened (a purchase's register time, a reward's expiry); not when it was written."""
    member_id: int | None = None
    """The member it concerns, if any."""
    data: dict[str, Any]
    """What happened, by type (docs/events.md). No personal data, except in a message to deliver."""


class FeedPage(msgspec.Struct, kw_only=True):
    items: list[Event]
    next_cursor: str
    """Where the next page starts: pass it back as `after`. Always given: an empty page means
    everything committed so far was served, and the same cursor later gives what came since."""


def event_id(number: int) -> str:
    return f"evt_{number}"


def event_of(row: asyncpg.Record) -> Event:
    return Event(id=event_id(row["id"]), type=row["type"], occurred_at=row["occurred_at"], member_id=row["member_id"],
                 data=row["data"])


# --- cursors -------------------------------------------------------------------------------------

_CURSOR = re.compile(r"f1\.([0-9]{1,18})\.([0-9]{1,18})\.([0-9]{1,18})")
START = (0, 0, 0)  # before every event


def encode_cursor(position: tuple[int, int, int]) -> str:
    """The cursor of a position: opaque to clients (base64url), checked when it comes back."""
    return base64.urlsafe_b64encode("f1.{}.{}.{}".format(*position).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, int, int]:
    """The (pass, transaction, id) a cursor of ours names; 422 on `after` for anything else."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (ValueError, UnicodeDecodeError):
        text = ""
    found = _CURSOR.fullmatch(text)
    if found is None:
        raise errors.ValidationFailed("after is not a cursor this feed gave out", field="after")
    return int(found.group(1)), int(found.group(2)), int(found.group(3))


def parse_types(text: str | None) -> list[str] | None:
    """`types=reward.issued,reward.expiring` as a list; None for every type."""
    if text is None or not text.strip():
        return None
    asked = [t.strip() for t in text.split(",") if t.strip()]
    unknown = sorted(set(asked) - set(EVENT_TYPES))
    if unknown:
        raise errors.ValidationFailed(f"unknown event types {unknown}; the types are {', '.join(EVENT_TYPES)}",
                                      field="types")
    return sorted(set(asked))


# --- reading -------------------------------------------------------------------------------------

Position = tuple[int, int, int]
"""A place in the feed: (pass, transaction, event id); "after" it is everything that follows."""

END = "SELECT coalesce(max(pass), 0) + 1 FROM event_passes"


async def page_after(db: Database, position: Position, types: list[str] | None, limit: int
                     ) -> tuple[list[tuple[Position, Event]], Position]:
    """Up to `limit` events after `position` (of `types`; None: all), each with its own position,
    and the position the next page starts after."""
    rows = await db.run(READ, *position, types, limit)
    found = [r for r in rows if r["id"] is not None]
    items = [((r["pass"], r["tx"], r["id"]), event_of(r)) for r in found]
    if len(found) == limit:
        return items, items[-1][0]
    # every pass sealed so far was read: the next page starts with the next pass
    return items, (max((rows[0]["last_pass"] or 0) + 1, position[0]), 0, 0)


async def read(db: Database, *, after: str | None, types: list[str] | None, limit: int) -> FeedPage:
    """A page of the feed after the cursor `after` (None: from the start), sealing first."""
    position = decode_cursor(after) if after else START
    await seal(db)
    items, following = await page_after(db, position, types, limit)
    return FeedPage(items=[event for _, event in items], next_cursor=encode_cursor(following))
