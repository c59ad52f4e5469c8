"""Signing guests in to their page: one-time links, and the sessions they start.

- **A link** (`create_link`, for guest services or the web shop): `/me/sign-in?token=…`, good
  for LINK_LIFETIME (15 minutes) and one use. Only the SHA-256 of its token is stored; the link
  itself goes, in the same transaction, into a `sign_in_link.created` event for the retailer's
  email or SMS sender (a message event: it names the member's address). A member may be sent
  LINKS_PER_HOUR (5) links in any hour; past that, 429 with the seconds until the next is allowed.
  Only an active member gets one.
- **A session** (`start_session`): following a link uses it up and starts a server-side
  session; the browser's cookie holds a random token of which only the hash is stored. A
  session lapses after SESSION_IDLE (30 minutes) without a request, and SESSION_LIFETIME
  (12 hours) after it started, whatever its use; signing out ends it.
- **Cancellation and erasure end access**: a cancellation's plan revokes the member's guest
  tokens and ends their sessions (rewards.engine), an erasure does the same in its own
  transaction (`END_ACCESS`). Sessions and guest tokens are checked against the database on
  every request, never cached, so an ended one stops at once on every worker.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
from sqlalchemy import BigInteger, bindparam, func, insert, literal, select, text, update

from rewards import errors
from rewards.auth import token_hash
from rewards.db import Database
from rewards.events import emit
from rewards.schemas import SignInLinkOut
from rewards.statements import Statement
from rewards.tables import api_keys, guest_sessions, members, sign_in_links

LINK_LIFETIME = timedelta(minutes=15)
LINKS_PER_HOUR = 5
SESSION_IDLE = timedelta(minutes=30)
SESSION_LIFETIME = timedelta(hours=12)
SIGN_IN_PATH = "/me/sign-in"

NOW = func.now()


# --- links ---------------------------------------------------------------------------------------

# the member, locked: a cancellation (which locks it too) either commits first and refuses the
# link, or waits; two links asked at once are counted one after the other
MEMBER_TO_SIGN_IN = Statement(
    select(members.c.status, members.c.email, members.c.phone)
    .where(members.c.id == bindparam("member_id")).with_for_update()
)
RECENT_LINKS = Statement(
    select(func.count().label("n"), func.min(sign_in_links.c.created_at).label("oldest"), NOW.label("now"))
    .where(sign_in_links.c.member_id == bindparam("member_id"),
           sign_in_links.c.created_at > NOW - text("interval '1 hour'"))
)
NEW_LINK = Statement(
    insert(sign_in_links).values(
        member_id=bindparam("member_id"), token_hash=bindparam("token_hash"), channel=bindparam("channel"),
        created_by_key_id=bindparam("key_id"), expires_at=NOW + literal(LINK_LIFETIME),
    ).returning(sign_in_links.c.expires_at)
)


def link_url(public_url: str, token: str) -> str:
    return f"{public_url}{SIGN_IN_PATH}?token={token}"


async def create_link(db: Database, member_id: int, channel: str, *, key_id: int, public_url: str) -> SignInLinkOut:
    """A one-time link to the member's page, sent by `channel` (email or sms) through its event."""

    async def work(conn: asyncpg.Connection) -> SignInLinkOut:
        member = await MEMBER_TO_SIGN_IN.fetchrow(conn, member_id=member_id)
        if member is None:
            raise errors.NotFound(f"member {member_id} does not exist")
        if member["status"] != "active":
            raise errors.MemberNotActive(f"member {member_id} is {member['status']}; only an active member signs in")
        recent = await RECENT_LINKS.fetchrow(conn, member_id=member_id)
        assert recent is not None  # an aggregate answers one row
        if recent["n"] >= LINKS_PER_HOUR:
            wait = recent["oldest"] + timedelta(hours=1) - recent["now"]
            raise errors.RateLimited(f"a member may be sent {LINKS_PER_HOUR} sign-in links an hour",
                                     retry_after=max(1, math.ceil(wait.total_seconds())))
        token = secrets.token_urlsafe(32)
        expires_at = await NEW_LINK.fetchval(conn, member_id=member_id, token_hash=token_hash(token),
                                             channel=channel, key_id=key_id)
        url = link_url(public_url, token)
        address = member["email"] if channel == "email" else member["phone"]
        await emit(conn, "sign_in_link.created", member_id=member_id, data={
            "channel": channel, "address": address, "url": url, "expires_at": expires_at.isoformat()})
        return SignInLinkOut(url=url, expires_at=expires_at)

    return await db.transaction(work)


# --- sessions ------------------------------------------------------------------------------------

# the link, used up, if it is unused, unexpired and its member active: one statement, so two
# browsers following one link cannot both get a session
USE_LINK = Statement(
    update(sign_in_links).values(used_at=NOW)
    .where(sign_in_links.c.token_hash == bindparam("token_hash"), sign_in_links.c.used_at.is_(None),
           sign_in_links.c.expires_at > NOW, members.c.id == sign_in_links.c.member_id, members.c.status == "active")
    .returning(sign_in_links.c.id, sign_in_links.c.member_id)
)
LINK_AS_IT_IS = Statement(
    select(sign_in_links.c.used_at, sign_in_links.c.expires_at, members.c.status, NOW.label("now"))
    .join_from(sign_in_links, members, members.c.id == sign_in_links.c.member_id)
    .where(sign_in_links.c.token_hash == bindparam("token_hash"))
)
NEW_SESSION = Statement(
    insert(guest_sessions).values(member_id=bindparam("member_id"), token_hash=bindparam("token_hash"),
                                  sign_in_link_id=bindparam("link_id"))
    .returning(guest_sessions.c.id)
)
# the session of a cookie, if it is neither ended nor lapsed; using it keeps it alive
TOUCH_SESSION = Statement(
    update(guest_sessions).values(last_seen_at=NOW)
    .where(guest_sessions.c.token_hash == bindparam("token_hash"), guest_sessions.c.ended_at.is_(None),
           guest_sessions.c.last_seen_at > NOW - literal(SESSION_IDLE),
           guest_sessions.c.created_at > NOW - literal(SESSION_LIFETIME))
    .returning(guest_sessions.c.id, guest_sessions.c.member_id)
)
END_SESSION = Statement(
    update(guest_sessions).values(ended_at=NOW)
    .where(guest_sessions.c.id == bindparam("session_id", type_=BigInteger), guest_sessions.c.ended_at.is_(None))
)


@dataclass(frozen=True, slots=True)
class GuestSession:
    """A signed-in guest's session: its id (the actor of what it does), its member, its cookie's token."""

    id: int
    member_id: int
    token: str


async def start_session(db: Database, link_token: str) -> GuestSession:
    """Use up a sign-in link and start its session. A link that was used, has expired, or whose
    member is no longer active is 410 `link_expired`; a token that was never a link's, 404."""
    link_hash = token_hash(link_token)

    async def work(conn: asyncpg.Connection) -> GuestSession:
        link = await USE_LINK.fetchrow(conn, token_hash=link_hash)
        if link is None:
            raise _why_not(await LINK_AS_IT_IS.fetchrow(conn, token_hash=link_hash))
        token = secrets.token_urlsafe(32)
        session_id = await NEW_SESSION.fetchval(conn, member_id=link["member_id"], token_hash=token_hash(token),
                                                link_id=link["id"])
        return GuestSession(session_id, link["member_id"], token)

    return await db.transaction(work)


def _why_not(link: asyncpg.Record | None) -> errors.DomainError:
    if link is None:
        return errors.InvalidLink("this sign-in link is not one of ours; check that it was copied whole")
    if link["used_at"] is not None:
        return errors.LinkExpired("this sign-in link was used already: each link signs in once")
    if link["status"] != "active":
        return errors.LinkExpired("this membership has been cancelled, so its links no longer sign in")
    return errors.LinkExpired(f"this sign-in link expired: links last {LINK_LIFETIME.seconds // 60} minutes")


async def session_of(db: Database, cookie_token: str) -> GuestSession | None:
    """The live session of a cookie's token (its idle time starts again), or None."""
    rows = await db.run(TOUCH_SESSION, token_hash=token_hash(cookie_token))
    return GuestSession(rows[0]["id"], rows[0]["member_id"], cookie_token) if rows else None


async def end_session(db: Database, session_id: int) -> None:
    """Sign out: the session ends now (ending it again changes nothing)."""
    await db.run(END_SESSION, session_id=session_id)


# --- the end of a member's access ----------------------------------------------------------------

END_ACCESS = [
    Statement(update(api_keys).values(revoked_at=NOW)
              .where(api_keys.c.member_id == bindparam("member_id"), api_keys.c.revoked_at.is_(None))),
    Statement(update(guest_sessions).values(ended_at=NOW)
              .where(guest_sessions.c.member_id == bindparam("member_id"), guest_sessions.c.ended_at.is_(None))),
]


async def end_access(conn: asyncpg.Connection, member_id: int) -> None:
    """End every guest token and page session of the member, in the caller's transaction."""
    for statement in END_ACCESS:
        await statement.execute(conn, member_id=member_id)
