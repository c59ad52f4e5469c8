"""Consumers' requests to know (access), delete and correct: intake, the clocks, closing, retention.

A request is filed by Guest Services once the consumer is verified (or with `not_verified`, to be
denied), with how it was made; it is `open` until completed (in whole or in part) or denied. The
record (11 CCR §7101(b): date, nature and manner of the request, date and nature of the response,
basis for a denial) is kept for 24 months after the request closes, then deleted by
`purge_expired` (11 CCR §7101(a), Colorado Rule 6.11: at least 24 months).

What a record keeps of the consumer:
- a request naming a member (by id, or by an email or phone a member has) keeps the member's id
  only; when the member is erased, the request keeps no personal data (`details` is cleared);
- a request naming an email or phone that no member has (a subscriber, or someone unknown)
  keeps the address while it is open, for staff to act on, and its keyed hash
  (`privacy_hash`, HMAC-SHA256 with a key held in the database) for as long as the record
  lives: a later request from the same address is found by it (two requests to know a year is
  all the law requires a business to answer, Cal. Civ. Code §1798.130(b)) but the address cannot
  be read back from it. When that address is erased, or turns out to be a member's when the
  member is erased, the address is dropped at once.

A delete request is completed by the erasure itself (`forget_member`, `forget_address`):
completing one by hand while the data is still held is refused (409 `personal_data_held`).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from sqlalchemy import Integer, bindparam, select

from rewards import errors
from rewards.db import Database
from rewards.engine import Actor
from rewards.events import emit
from rewards.mailing import normalize_address
from rewards.members import decode_cursor, encode_cursor
from rewards.privacy import calendar
from rewards.privacy.schemas import (
    CompleteIn,
    DenyIn,
    PrivacyRequestIn,
    PrivacyRequestOut,
    PrivacyRequestPage,
    VerificationOut,
)
from rewards.statements import Statement
from rewards.tables import privacy_requests

RETENTION = "24 months"  # after a request closes (11 CCR §7101(a); Colorado Rule 6.11)

# a member (not erased) with this email or phone: an active one first (by its index), else the
# newest cancelled one
# (a merged duplicate is not the person's member: the member it was merged into is)
MEMBER_BY = """
    (SELECT id FROM members WHERE status = 'active' AND {column} = $1)
    UNION ALL
    (SELECT id FROM members WHERE status = 'cancelled' AND erased_at IS NULL AND {column} = $1
     ORDER BY id DESC LIMIT 1)
    LIMIT 1"""
MEMBER_BY_EMAIL = MEMBER_BY.format(column="email_normalized")
MEMBER_BY_PHONE = MEMBER_BY.format(column="phone_normalized")


async def member_with(conn: asyncpg.Connection, kind: str, address: str) -> int | None:
    """The member (not erased) an email or phone (normalized, as rewards.contacts does) belongs to, if any."""
    found: int | None = await conn.fetchval(MEMBER_BY_EMAIL if kind == "email" else MEMBER_BY_PHONE, address)
    return found


FILE = """
    INSERT INTO privacy_requests (type, member_id, subject, subject_hash, address, channel, verification_method,
                                  verified_at, details, received_at, confirm_by, due_at,
                                  filed_by_key_id, filed_by_session_id, filed_by_system)
    VALUES ($1, $2, $3, privacy_hash($4), $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
    RETURNING *"""
ONE = Statement(select(privacy_requests).where(privacy_requests.c.id == bindparam("request_id")))
ONE_LOCKED = Statement(select(privacy_requests).where(privacy_requests.c.id == bindparam("request_id"))
                       .with_for_update())
PAGE = Statement(
    select(privacy_requests)
    .where(privacy_requests.c.id < bindparam("before"),
           (bindparam("status", type_=privacy_requests.c.status.type).is_(None))
           | (privacy_requests.c.status == bindparam("status")),
           (bindparam("type", type_=privacy_requests.c.type.type).is_(None))
           | (privacy_requests.c.type == bindparam("type")),
           (bindparam("due_before", type_=privacy_requests.c.due_at.type).is_(None))
           | (privacy_requests.c.due_at < bindparam("due_before")))
    .order_by(privacy_requests.c.id.desc())
    .limit(bindparam("limit", type_=Integer))
)


def request_out(row: Any, zone: str) -> PrivacyRequestOut:
    """The record as the API shows it; its clocks, days on the program's calendar, in its time zone."""
    local = ZoneInfo(zone)
    return PrivacyRequestOut(
        request_id=row["id"], type=row["type"], status=row["status"], member_id=row["member_id"],
        subject=row["subject"], address=row["address"], channel=row["channel"],
        verification=VerificationOut(method=row["verification_method"], verified_at=row["verified_at"]),
        details=row["details"], received_at=row["received_at"], confirm_by=row["confirm_by"].astimezone(local),
        due_at=row["due_at"].astimezone(local),
        confirmed_at=row["confirmed_at"], closed_at=row["closed_at"], outcome=row["outcome"], reason=row["reason"],
    )


async def file(db: Database, request: PrivacyRequestIn, actor: Actor, zone: str, *,
               received_at: datetime | None = None) -> PrivacyRequestOut:
    """File a request; its clocks start at `received_at` (default: now; another moment for tests
    of past years, as the engine's `as_of`)."""
    subject, address = "member", None
    if request.email is not None:
        subject, address = "email", normalize_address("email", request.email, field="email")
    elif request.phone is not None:
        subject, address = "phone", normalize_address("sms", request.phone, field="phone")

    async def work(conn: asyncpg.Connection) -> PrivacyRequestOut:
        member_id = request.member_id
        if member_id is not None and not await conn.fetchval("SELECT true FROM members WHERE id = $1", member_id):
            raise errors.NotFound(f"member {member_id} does not exist")
        kept = address
        if address is not None:
            member_id = await member_with(conn, subject, address)
            if member_id is not None:
                kept = None  # the member's record holds it; the request holds the member's id
        at = received_at or await conn.fetchval("SELECT clock_timestamp()")
        confirm_by, due_at = calendar.confirm_by(at, zone), calendar.due_at(at, zone)
        row = await conn.fetchrow(
            FILE, request.type, member_id, subject, kept, request.channel, request.verification.method,
            request.verification.verified_at, request.details, at, confirm_by, due_at, actor.key_id,
            actor.session_id, actor.system)
        await emit(conn, "privacy_request.received", member_id=member_id, occurred_at=at, data={
            "request_id": row["id"], "type": request.type, "channel": request.channel, "subject": subject,
            "confirm_by": confirm_by.isoformat(), "due_at": due_at.isoformat()})
        return request_out(row, zone)

    return await db.transaction(work)


async def one(db: Database, request_id: int, zone: str) -> PrivacyRequestOut:
    found = await db.run(ONE, request_id=request_id)
    if not found:
        raise errors.NotFound(f"privacy request {request_id} does not exist")
    return request_out(found[0], zone)


async def page(db: Database, zone: str, *, status: str | None, type: str | None, due_before: date | None,
               cursor: str | None, limit: int) -> PrivacyRequestPage:
    """Requests newest first, filtered; `due_before` keeps those due before that day begins."""
    rows = await db.run(
        PAGE, status=status, type=type, limit=limit + 1,
        due_before=None if due_before is None else calendar.start_of(due_before, zone),
        before=decode_cursor(cursor) if cursor else 2**62)
    shown = rows[:limit]
    return PrivacyRequestPage(items=[request_out(r, zone) for r in shown],
                              next_cursor=encode_cursor(shown[-1]["id"]) if len(rows) > limit else None)


async def confirm(db: Database, request_id: int, zone: str, *, at: datetime | None = None) -> PrivacyRequestOut:
    """Record that receipt was confirmed to the consumer (the first time only)."""
    rows = await db.run(
        """UPDATE privacy_requests SET confirmed_at = coalesce(confirmed_at, $2, clock_timestamp())
           WHERE id = $1 RETURNING *""", request_id, at)
    if not rows:
        raise errors.NotFound(f"privacy request {request_id} does not exist")
    return request_out(rows[0], zone)


CLOSE = """
    UPDATE privacy_requests SET status = $2, outcome = $3, reason = $4, address = NULL,
                                closed_at = coalesce($5, clock_timestamp()),
                                closed_by_key_id = $6, closed_by_session_id = $7, closed_by_system = $8
    WHERE id = $1 RETURNING *"""


async def _close(db: Database, request_id: int, status: str, outcome: str | None, reason: str | None,
                 actor: Actor, zone: str, at: datetime | None) -> tuple[bool, PrivacyRequestOut]:
    """Close an open request; the same closing again answers (False, the record)."""

    async def work(conn: asyncpg.Connection) -> tuple[bool, PrivacyRequestOut]:
        row = await ONE_LOCKED.fetchrow(conn, request_id=request_id)
        if row is None:
            raise errors.NotFound(f"privacy request {request_id} does not exist")
        if row["status"] != "open":
            if (row["status"], row["outcome"], row["reason"]) == (status, outcome, reason):
                return False, request_out(row, zone)
            verb = "completed" if status == "completed" else "denied"
            raise errors.RequestClosed(f"request {request_id} was {row['status']} on "
                                       f"{row['closed_at']:%Y-%m-%d} otherwise; it cannot be {verb} now")
        if status == "completed" and row["type"] == "delete":
            await _check_erased(conn, row)
        closed = await conn.fetchrow(CLOSE, request_id, status, outcome, reason, at,
                                     actor.key_id, actor.session_id, actor.system)
        await _closed_event(conn, closed)
        return True, request_out(closed, zone)

    return await db.transaction(work)


async def _closed_event(conn: asyncpg.Connection, row: Any) -> None:
    data = {"request_id": row["id"], "type": row["type"]}
    if row["status"] == "completed":
        data["outcome"] = row["outcome"]
    await emit(conn, f"privacy_request.{row['status']}", member_id=row["member_id"], occurred_at=row["closed_at"],
               data=data)


async def _check_erased(conn: asyncpg.Connection, row: Any) -> None:
    """A delete request is complied with once nothing of the consumer is held."""
    if row["member_id"] is not None:
        member = await conn.fetchrow(
            """SELECT m.erased_at, e.scheduled_for FROM members m
               LEFT JOIN member_erasures e ON e.member_id = m.id AND e.erased_at IS NULL WHERE m.id = $1""",
            row["member_id"])
        if member["erased_at"] is None:
            member_id = row["member_id"]
            when = (f"the erasure scheduled for {member['scheduled_for'].isoformat()} completes this request when "
                    "it happens" if member["scheduled_for"] else
                    f"erase it (DELETE /v1/members/{member_id}/personal-data), which completes this request")
            raise errors.PersonalDataHeld(f"member {member_id}'s personal data is still held: {when}")
    elif row["address"] is not None:
        held = await conn.fetchval(
            "SELECT true FROM subscriptions WHERE lower(address) = lower($1) LIMIT 1", row["address"])
        if held or await member_with(conn, row["subject"], row["address"]) is not None:
            raise errors.PersonalDataHeld(
                "the address is still held: erase the subscriber (DELETE /v1/subscriptions/personal-data), "
                "which completes this request, or the member it belongs to")


async def complete(db: Database, request_id: int, body: CompleteIn, actor: Actor, zone: str, *,
                   at: datetime | None = None) -> tuple[bool, PrivacyRequestOut]:
    return await _close(db, request_id, "completed", body.outcome, body.reason, actor, zone, at)


async def deny(db: Database, request_id: int, body: DenyIn, actor: Actor, zone: str, *,
               at: datetime | None = None) -> tuple[bool, PrivacyRequestOut]:
    return await _close(db, request_id, "denied", None, body.reason, actor, zone, at)


async def purge_expired(db: Database, now: datetime | None = None) -> int:
    """Delete the records of requests closed more than 24 months ago; how many. A job (the job
    runner calls it daily); `now` defaults to the database's clock."""
    rows = await db.run(
        f"""DELETE FROM privacy_requests WHERE closed_at < coalesce($1, clock_timestamp()) - interval '{RETENTION}'
            RETURNING id""", now)
    return len(rows)


# --- erasure: the requests forget the consumer ---------------------------------------------------

# The member's email and phone, in every form a request may have hashed them (run before they are
# erased): requests naming them become the member's, and keep no address, hash or details.
FORGET_MEMBER = """
    WITH hashes AS (
        SELECT privacy_hash(x) AS h FROM members m,
               unnest(ARRAY[m.email_normalized, m.phone_normalized, m.email, '+' || ltrim(m.phone, '+'),
                            '+1' || m.phone]) AS x
        WHERE m.id = $1 AND x IS NOT NULL)
    UPDATE privacy_requests SET member_id = $1, subject_hash = NULL, address = NULL, details = NULL
    WHERE member_id = $1 OR (member_id IS NULL AND subject_hash IN (SELECT h FROM hashes))"""
COMPLETE_DELETES = """
    UPDATE privacy_requests SET status = 'completed', outcome = 'in_whole', closed_at = $2, address = NULL,
                                closed_by_system = 'erasure'
    WHERE type = 'delete' AND status = 'open' AND {which} RETURNING *"""
COMPLETE_MEMBER_DELETES = COMPLETE_DELETES.format(which="member_id = $1")
COMPLETE_ADDRESS_DELETES = COMPLETE_DELETES.format(which="member_id IS NULL AND subject_hash = privacy_hash($1)")
FORGET_ADDRESS = """
    UPDATE privacy_requests SET address = NULL, details = NULL
    WHERE member_id IS NULL AND subject_hash = privacy_hash($1)"""


async def forget_member(conn: asyncpg.Connection, member_id: int, erased_at: datetime) -> None:
    """In the erasure's transaction, before the member's email and phone are erased: the member's
    requests keep no personal data, and their open delete requests are completed."""
    await conn.execute(FORGET_MEMBER, member_id)
    for row in await conn.fetch(COMPLETE_MEMBER_DELETES, member_id, erased_at):
        await _closed_event(conn, row)


async def forget_address(conn: asyncpg.Connection, address: str, erased_at: datetime) -> None:
    """In a subscriber's erasure: open delete requests naming the address are completed, and every
    request naming it drops it (and its details), keeping the hash."""
    for row in await conn.fetch(COMPLETE_ADDRESS_DELETES, address, erased_at):
        await _closed_event(conn, row)
    await conn.execute(FORGET_ADDRESS, address)
