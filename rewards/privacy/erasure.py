"""Erasing a member's personal data, with notice first (Colorado 4 CCR 904-3 Rule 6.05(E)).

`DELETE /v1/members/{id}/personal-data` schedules the erasure `REWARDS_ERASURE_NOTICE_HOURS`
(default 24) ahead and says what would be lost (`request_erasure`); `member.erasure_scheduled`
tells the retailer's systems, which tell the guest. Until then the membership is as it was:
the guest may shop, earn and redeem their rewards. When the time comes, `erase_due` (a job)
erases: the membership is cancelled through the posting engine (points forfeited, open
rewards voided, in the ledger), then name, email, phone, birth date and external id are erased
for good, with the addresses of the member's subscriptions (each kept opted out as a keyed
hash); the anonymous ledger stays, so past reports still reproduce. Asking again answers the
same schedule. `erase_now` erases at once: for a minor discovered after the fact, or when the
consumer confirms they want it now.

Without notice, also: with `REWARDS_ERASURE_NOTICE_HOURS=0`, and for a member already cancelled
(their points and rewards ended with the cancellation: nothing is left to use or to lose).

Meanwhile:
- the member cancels: the schedule stands (cancelling ends the membership, the erasure request
  stands) and the erasure happens at its time; erasing at once is `erase_now`;
- the guest enrolls again (after cancelling, with the same email or phone): the new membership is
  another member and is untouched, and so is any subscription opted in after the erasure was
  asked for (a new consent); the old member is erased at its time.
A scheduled erasure is not withdrawn through the API: a verified deletion request is carried out.

Each erasure is recorded in `member_erasures` (who asked, when, when due, why, what the notice
said would be lost, when done), with no personal data; `member.erased` reports it.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, Literal

import asyncpg

from rewards import errors, member_changes
from rewards.engine import Actor, Cancel, Engine, Limits, apply, unwrap
from rewards.engine.posting import StoredRules
from rewards.events import emit
from rewards.privacy import requests
from rewards.privacy.schemas import ErasureScheduledOut
from rewards.schemas import ErasureOut, RewardIssuedOut
from rewards.sign_in import end_access

log = logging.getLogger("rewards.privacy")

Reason = Literal["notice_given", "minor", "consumer_confirmed", "no_notice_period", "already_cancelled"]
ImmediateReason = Literal["minor", "consumer_confirmed"]

# Every column that holds a member's personal information, table by table, in the order they are
# erased (a test checks that no table keeps a trace). First, while the member's email and phone
# are still known: the subscriptions to them made without member_id, and opted in before the
# erasure was asked for, become the member's, and each active one records its opt-out.
LINK_SUBSCRIPTIONS = """
    WITH linked AS (
        UPDATE subscriptions s SET member_id = m.id FROM members m
        WHERE m.id = $1 AND s.member_id IS NULL AND s.address IS NOT NULL AND s.subscribed_at <= $3
          AND ((s.channel = 'email' AND lower(s.address) IN (lower(m.email), m.email_normalized))
            OR (s.channel = 'sms' AND s.address = m.phone_normalized))
        RETURNING s.id)
    INSERT INTO subscription_events (subscription_id, kind, source, occurred_at)
    SELECT id, 'unsubscribed', 'erasure', $2 FROM subscriptions
    WHERE (member_id = $1 OR id IN (SELECT id FROM linked)) AND status = 'active'"""
# each address stays opted out, as its keyed hash
KEEP_OPT_OUTS = """
    INSERT INTO opt_out_hashes (channel, address_hash, opted_out_at)
    SELECT channel, privacy_hash(address), $2 FROM subscriptions WHERE member_id = $1 AND address IS NOT NULL
    ON CONFLICT (channel, address_hash) DO NOTHING"""
ERASE_MEMBER = """
    UPDATE members SET name = NULL, email = NULL, phone = NULL, birth_date = NULL, external_id = NULL,
                       email_normalized = NULL, phone_normalized = NULL, erased_at = $2
    WHERE id = $1"""
ERASE_SUBSCRIPTIONS = """
    UPDATE subscriptions SET address = NULL, erased_at = $2, status = 'unsubscribed',
                             unsubscribed_at = coalesce(unsubscribed_at, $2)
    WHERE member_id = $1 AND erased_at IS NULL
    RETURNING id, channel"""
# the messages sent to a subscription (offer.delivery events) keep what was sent, not where
ERASE_MESSAGES = """
    UPDATE events SET data = (data - 'address' - 'subject' - 'text' - 'unsubscribe_url' - 'headers')
                             || jsonb_build_object('erased_at', $2::timestamptz)
    WHERE type = 'offer.delivery' AND data ->> 'subscription_id' = $1::bigint::text"""
# the address a sign-in link was sent to (a message event names it; rewards.sign_in)
ERASE_LINK_ADDRESSES = """
    UPDATE events SET data = (data - 'address') || jsonb_build_object('address_erased_at', $2::timestamptz)
    WHERE member_id = $1 AND type = 'sign_in_link.created' AND data ? 'address'"""

# the erasure's record: a schedule becomes done; an erasure at once is recorded done
RECORD = """
    INSERT INTO member_erasures AS e (member_id, requested_at, scheduled_for, point_cents_to_forfeit, rewards_to_void,
                                      reason, erased_at, actor_key_id, actor_session_id, actor_system)
    VALUES ($1, $2, $2, $3, $4, $5, $2, $6, $7, $8)
    ON CONFLICT (member_id) DO UPDATE SET erased_at = excluded.erased_at,
        reason = CASE WHEN excluded.reason = 'notice_given' THEN e.reason ELSE excluded.reason END
    RETURNING requested_at"""
# an enrollment's retry key holds a digest of the body the person gave: it goes too
FORGET_ENROLLMENT_KEYS = "DELETE FROM enrollment_keys WHERE member_id = $1"
# the member, and the duplicates merged into it, whose personal data is not erased yet
TO_ERASE = "SELECT id FROM members WHERE (id = $1 OR merged_into = $1) AND erased_at IS NULL ORDER BY id"
SCHEDULE_DONE = "UPDATE member_erasures SET erased_at = $2 WHERE member_id = $1 AND erased_at IS NULL"


async def erase_in(conn: asyncpg.Connection, rulebook: StoredRules, limits: Limits, member_id: int, actor: Actor,
                   reason: Reason, *, as_of: datetime | None = None) -> ErasureOut:
    """Cancel (through the engine), then erase the member's personal data for good, in the
    caller's transaction; erasing again answers the first erasure. The duplicates merged into the
    member are the same person: their personal data goes too. A merged member is erased without
    a cancellation (its membership ended with the merge). `as_of`: erased as if at that moment
    (tests of past periods, as the engine's commands)."""
    status = await conn.fetchval("SELECT status FROM members WHERE id = $1", member_id)
    if status is None:
        raise errors.NotFound(f"member {member_id} does not exist")
    forfeited, voided = 0, []
    if status != "merged":
        (outcome,) = await apply(conn, [Cancel(member_id, actor, as_of)], rulebook, limits)
        _, cancelled = unwrap(outcome)
        forfeited, voided, status = cancelled.point_cents_forfeited, cancelled.rewards_voided, "cancelled"
    # the cancellation ended them if it happened now; a member cancelled before is checked again
    await end_access(conn, member_id)
    erased_at = await conn.fetchval("SELECT erased_at FROM members WHERE id = $1", member_id)
    if erased_at is not None:
        # erased before: a schedule still pending is done (the job must not find it due forever)
        await conn.execute(SCHEDULE_DONE, member_id, erased_at)
        return ErasureOut(member_id=member_id, status=status, erased_at=erased_at)
    erased_at = as_of or await conn.fetchval("SELECT clock_timestamp()")
    requested_at = await conn.fetchval(RECORD, member_id, erased_at, forfeited, voided, reason,
                                       actor.key_id, actor.session_id, actor.system)
    for person in await conn.fetch(TO_ERASE, member_id):
        await _erase_person(conn, person["id"], actor, erased_at, requested_at)
    await emit(conn, "member.erased", member_id=member_id, occurred_at=erased_at, data={"reason": reason})
    return ErasureOut(member_id=member_id, status=status, erased_at=erased_at)


async def _erase_person(conn: asyncpg.Connection, member_id: int, actor: Actor, erased_at: datetime,
                        requested_at: datetime) -> None:
    """One member row's personal data, wherever it is held (the order matters: see the statements)."""
    await conn.execute(LINK_SUBSCRIPTIONS, member_id, erased_at, requested_at)
    await conn.execute(KEEP_OPT_OUTS, member_id, erased_at)
    await requests.forget_member(conn, member_id, erased_at)
    await conn.execute(ERASE_MEMBER, member_id, erased_at)
    for subscription in await conn.fetch(ERASE_SUBSCRIPTIONS, member_id, erased_at):
        await subscription_erased(conn, subscription["id"], subscription["channel"], member_id, erased_at)
    await conn.execute(ERASE_LINK_ADDRESSES, member_id, erased_at)
    await conn.execute(FORGET_ENROLLMENT_KEYS, member_id)
    await member_changes.record(conn, member_id, "erased", actor, occurred_at=erased_at)


async def subscription_erased(conn: asyncpg.Connection, subscription_id: int, channel: str, member_id: int | None,
                              at: datetime) -> None:
    """A subscription's address is erased: the messages sent to it forget it, and its event says
    so (no address in it; the shape of rewards.mailing's opt-outs, `erased` added)."""
    await conn.execute(ERASE_MESSAGES, subscription_id, at)
    await emit(conn, "subscription.changed", member_id=member_id, occurred_at=at, data={
        "subscription_id": subscription_id, "channel": channel, "change": "unsubscribed", "status": "unsubscribed",
        "source": "erasure", "erased": True})


async def _lock_member(conn: asyncpg.Connection, member_id: int) -> asyncpg.Record:
    member = await conn.fetchrow(
        "SELECT id, status, point_cents, erased_at FROM members WHERE id = $1 FOR UPDATE", member_id)
    if member is None:
        raise errors.NotFound(f"member {member_id} does not exist")
    return member


async def erase_now(engine: Engine, member_id: int, actor: Actor, reason: Reason, *,
                    as_of: datetime | None = None) -> ErasureOut:
    """Erase at once (a scheduled erasure, if any, is done now)."""

    async def work(conn: asyncpg.Connection) -> ErasureOut:
        await _lock_member(conn, member_id)
        return await erase_in(conn, engine.rulebook, engine.limits, member_id, actor, reason, as_of=as_of)

    return await engine.db.transaction(work)


OPEN_REWARDS = """
    SELECT code, value_cents, expires_at FROM rewards
    WHERE member_id = $1 AND status = 'issued' AND expires_at > $2 ORDER BY ordinal"""
SCHEDULE = """
    INSERT INTO member_erasures (member_id, requested_at, scheduled_for, point_cents_to_forfeit, rewards_to_void,
                                 reason, actor_key_id, actor_session_id, actor_system)
    VALUES ($1, $2, $3, $4, $5, 'notice_given', $6, $7, $8)"""
PENDING = "SELECT requested_at, scheduled_for FROM member_erasures WHERE member_id = $1 AND erased_at IS NULL"


async def _what_would_be_lost(conn: asyncpg.Connection, member: Any, now: datetime) -> tuple[int, list[RewardIssuedOut]]:
    rewards = [RewardIssuedOut(code=r["code"], value_cents=r["value_cents"], expires_at=r["expires_at"])
               for r in await conn.fetch(OPEN_REWARDS, member["id"], now)]
    return (max(0, member["point_cents"]) if member["status"] == "active" else 0), rewards


async def request_erasure(engine: Engine, member_id: int, actor: Actor,
                          notice: timedelta) -> ErasureOut | ErasureScheduledOut:
    """Schedule the member's erasure `notice` ahead, or answer the schedule already made, or erase
    at once when no notice is due (`notice` zero, a member already cancelled); an erased member
    answers their erasure."""

    async def work(conn: asyncpg.Connection) -> ErasureOut | ErasureScheduledOut:
        member = await _lock_member(conn, member_id)
        if member["erased_at"] is not None:
            return ErasureOut(member_id=member_id, status="cancelled", erased_at=member["erased_at"])
        now = await conn.fetchval("SELECT clock_timestamp()")
        pending = await conn.fetchrow(PENDING, member_id)
        if pending is not None:
            forfeit, rewards = await _what_would_be_lost(conn, member, now)
            return ErasureScheduledOut(member_id=member_id, requested_at=pending["requested_at"],
                                       scheduled_for=pending["scheduled_for"], point_cents_to_forfeit=forfeit,
                                       rewards_to_void=rewards)
        if not notice:
            return await erase_in(conn, engine.rulebook, engine.limits, member_id, actor, "no_notice_period")
        if member["status"] != "active":
            return await erase_in(conn, engine.rulebook, engine.limits, member_id, actor, "already_cancelled")
        forfeit, rewards = await _what_would_be_lost(conn, member, now)
        scheduled_for = now + notice
        codes = [r.code for r in rewards]
        await conn.execute(SCHEDULE, member_id, now, scheduled_for, forfeit, codes,
                           actor.key_id, actor.session_id, actor.system)
        await emit(conn, "member.erasure_scheduled", member_id=member_id, occurred_at=now, data={
            "scheduled_for": scheduled_for.isoformat(), "point_cents_to_forfeit": forfeit, "rewards_to_void": codes})
        return ErasureScheduledOut(member_id=member_id, requested_at=now, scheduled_for=scheduled_for,
                                   point_cents_to_forfeit=forfeit, rewards_to_void=rewards)

    return await engine.db.transaction(work)


DUE = """
    SELECT member_id FROM member_erasures WHERE erased_at IS NULL AND scheduled_for <= $1
    ORDER BY scheduled_for, member_id LIMIT 500"""
STILL_DUE = """
    SELECT actor_key_id, actor_session_id, actor_system FROM member_erasures
    WHERE member_id = $1 AND erased_at IS NULL AND scheduled_for <= $2"""


async def erase_due(engine: Engine, now: datetime | None = None) -> list[int]:
    """The job: erase every member whose scheduled erasure is due at `now` (default: the
    database's clock), each in a transaction of its own; the members erased. The ledger entries
    and the record name whoever asked for the erasure. A later `now` than the clock is refused:
    erasing before the notice ends is what must not happen."""
    clock = (await engine.db.run("SELECT clock_timestamp() AS now"))[0]["now"]
    if now is None:
        now = clock
    elif now > clock:
        raise ValueError(f"erase_due at {now.isoformat()} is later than the database's clock {clock.isoformat()}: "
                         "it would erase before the notice ends")
    erased: list[int] = []
    skipped: set[int] = set()
    while True:
        due = [r["member_id"] for r in await engine.db.run(DUE, now) if r["member_id"] not in skipped]
        if not due:
            return erased
        for member_id in due:
            try:
                if await _erase_if_due(engine, member_id, now):
                    erased.append(member_id)
            except errors.DomainError as refused:  # left for staff to look at; the others go on
                log.warning("scheduled erasure of member %s refused: %s", member_id, refused.detail)
                skipped.add(member_id)


async def _erase_if_due(engine: Engine, member_id: int, now: datetime) -> bool:
    async def work(conn: asyncpg.Connection) -> bool:
        # the member first, as every erasure locks it: then the schedule cannot change under us
        await _lock_member(conn, member_id)
        asked = await conn.fetchrow(STILL_DUE, member_id, now)
        if asked is None:
            return False  # erased meanwhile (at once, or by another runner)
        actor = Actor(key_id=asked["actor_key_id"], session_id=asked["actor_session_id"],
                      system=asked["actor_system"])
        await erase_in(conn, engine.rulebook, engine.limits, member_id, actor, "notice_given")
        return True

    return await engine.db.transaction(work)
