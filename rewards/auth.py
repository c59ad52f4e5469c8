"""Tokens, scopes and the checks every handler makes.

API keys carry scopes; a guest token is bound to one member and reads only that member.
Tokens are random and stored only as their SHA-256 (they carry 256 bits, so a slow hash
would add nothing). A key may end (`expires_at`): a guest token always does, GUEST_TTL (30
days) after it is made unless `--ttl` says otherwise, and the member's cancellation or
erasure revokes it. Staff keys are cached in each worker for CACHE_SECONDS, which keeps the
hot path (the registers' postings) off the database; guest tokens are looked up at every
request, so one that ends stops at once on every worker. The cache never outlives a
revocation: each worker listens (LISTEN, on a connection of its own) for the notification a
revocation commits with (`rewards.desk.keys`) and forgets every token it had checked; while
that connection is down, the worker checks every token in the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy import Interval, bindparam, func, insert, or_, select

from rewards import errors
from rewards.db import Database
from rewards.engine.commands import Actor
from rewards.statements import Statement
from rewards.tables import api_keys, members

SCOPES = ("checkout", "guest_services", "compliance", "admin", "web_shop", "integrations")
GUEST = "guest"
TOKEN_PREFIX = "wr_"
CACHE_SECONDS = 10.0
GUEST_TTL = timedelta(days=30)
MAX_GUEST_TTL = timedelta(days=366)
REVOCATIONS = "rewards_api_key_revoked"  # the notification channel: the payload is the key's id
RELISTEN_SECONDS = 1.0
log = logging.getLogger("rewards.auth")

NEW_KEY = Statement(insert(api_keys).values(
    token_hash=bindparam("token_hash"), scopes=bindparam("scopes"), member_id=bindparam("member_id"),
    label=bindparam("label"), expires_at=func.now() + bindparam("ttl", type_=Interval),
))
KEY_BY_TOKEN = Statement(
    select(api_keys.c.id, api_keys.c.scopes, api_keys.c.member_id, api_keys.c.expires_at)
    .where(api_keys.c.token_hash == bindparam("token_hash"), api_keys.c.revoked_at.is_(None),
           or_(api_keys.c.expires_at.is_(None), api_keys.c.expires_at > func.now()))
)
MEMBER_STATUS = Statement(select(members.c.status).where(members.c.id == bindparam("member_id")))


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: int
    scopes: frozenset[str]
    member_id: int | None = None
    expires_at: datetime | None = None

    @property
    def is_guest(self) -> bool:
        return self.member_id is not None


def principal_of(request: Any) -> Principal:
    """The key the route's scope check found for the request (`rewards.access.require`)."""
    principal: Principal = request.state.principal
    return principal


def actor_of(request: Any) -> Actor:
    """Who is making the request, as its guard found it: a guest's page session
    (`rewards.pages.signed_in`), or the key its token belongs to."""
    session = request.state.get("guest_session")
    if session is not None:
        return Actor(session_id=session.id)
    return Actor(key_id=principal_of(request).key_id)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def create_key(db: Database, scopes: list[str], *, member_id: int | None = None, label: str | None = None,
                     ttl: timedelta | None = None) -> str:
    """Make a key and return its token: the only time the token exists outside its holder's hands.

    `ttl`: how long the key works; a guest token's is GUEST_TTL unless given (at most
    MAX_GUEST_TTL), a staff key's is unlimited unless given."""
    unknown = set(scopes) - set(SCOPES) - {GUEST}
    if unknown or not scopes:
        raise errors.ValidationFailed(f"unknown scopes {sorted(unknown)}; choose from {SCOPES + (GUEST,)}", field="scope")
    if (GUEST in scopes) != (member_id is not None) or (GUEST in scopes and len(scopes) > 1):
        raise errors.ValidationFailed("a guest token has the guest scope alone and names its member", field="member")
    if ttl is not None and ttl <= timedelta(0):
        raise errors.ValidationFailed("a key's time to live is positive", field="ttl")
    if member_id is not None:
        ttl = GUEST_TTL if ttl is None else ttl
        if ttl > MAX_GUEST_TTL:
            raise errors.ValidationFailed(f"a guest token lasts at most {MAX_GUEST_TTL.days} days", field="ttl")
        found = await db.run(MEMBER_STATUS, member_id=member_id)
        if not found:
            raise errors.NotFound(f"member {member_id} does not exist")
        if found[0]["status"] != "active":
            # cancelling ended the member's tokens; a new one would reopen what it closed
            raise errors.MemberNotActive(f"member {member_id} is {found[0]['status']}; only an active member gets "
                                         "a guest token")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    await db.run(NEW_KEY, token_hash=token_hash(token), scopes=sorted(set(scopes)), member_id=member_id, label=label,
                 ttl=ttl)
    return token


class Authenticator:
    """Turns an Authorization header into a Principal, and limits how often a guest may ask."""

    def __init__(self, db: Database, *, guest_rate_limit: int = 120) -> None:
        self.db = db
        self.guest_rate_limit = guest_rate_limit
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        self._guest_calls: dict[int, deque[float]] = {}
        self._listener: asyncpg.Connection | None = None
        self._listening: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()

    @property
    def caching(self) -> bool:
        """Whether checked tokens are kept: only while revocations are heard."""
        return self._listener is not None and not self._listener.is_closed()

    async def start(self) -> None:
        """Listen for revocations (and keep listening: a lost connection is opened again)."""
        self._stopped.clear()
        self._listening = asyncio.create_task(self._listen())

    async def stop(self) -> None:
        self._stopped.set()
        if self._listening is not None:
            self._listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listening
        await self._close_listener()

    def forget(self, _key_id: object = None) -> None:
        """Forget every token checked: a key was revoked (rarely; the cache refills in one request each)."""
        self._cache.clear()

    async def _listen(self) -> None:
        while not self._stopped.is_set():
            lost = asyncio.Event()
            try:
                conn = await self.db.dedicated_connection()
                conn.add_termination_listener(lambda _conn: lost.set())
                await conn.add_listener(REVOCATIONS, lambda _conn, _pid, _channel, payload: self.forget(payload))
                self._listener = conn
                self.forget()  # what was cached while nobody listened may have been revoked since
                await lost.wait()
            except Exception as exc:  # noqa: BLE001 - the database is away: try again shortly
                log.warning("not hearing key revocations (%s); checking every token meanwhile", exc)
            finally:
                await self._close_listener()
            await asyncio.sleep(RELISTEN_SECONDS)

    async def _close_listener(self) -> None:
        conn, self._listener = self._listener, None
        self.forget()
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)

    async def principal(self, authorization: str | None) -> Principal:
        scheme, _, token = (authorization or "").strip().partition(" ")
        # an authentication scheme is case-insensitive (RFC 9110 §11.1): "bearer" is "Bearer"
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise errors.Unauthorized("send Authorization: Bearer <token>")
        now = time.monotonic()
        cached = self._cache.get(token)  # by the token itself: hashing it on every request costs more
        if cached is None or now - cached[0] > CACHE_SECONDS:
            rows = await self.db.run(KEY_BY_TOKEN, token_hash=token_hash(token))
            found = Principal(rows[0]["id"], frozenset(rows[0]["scopes"]), rows[0]["member_id"],
                              rows[0]["expires_at"]) if rows else None
            cached = (now, found)
            # a guest token is read afresh each time (it ends at once); staff keys only while
            # revocations are heard
            if self.caching and (found is None or not found.is_guest):
                if len(self._cache) > 10_000:
                    self._cache.clear()
                self._cache[token] = cached
        principal = cached[1]
        if principal is None or (principal.expires_at is not None and principal.expires_at <= datetime.now(UTC)):
            raise errors.Unauthorized("the token is not valid")
        if principal.is_guest:
            self._count_guest_call(principal.key_id, now)
        return principal

    def _count_guest_call(self, key_id: int, now: float) -> None:
        calls = self._guest_calls.setdefault(key_id, deque())
        while calls and now - calls[0] > 60:
            calls.popleft()
        if len(calls) >= self.guest_rate_limit:
            raise errors.RateLimited(f"a guest token may make {self.guest_rate_limit} requests a minute", retry_after=60)
        calls.append(now)

    async def require(self, authorization: str | None, *scopes: str, member_id: int | None = None) -> Principal:
        """The caller, if it holds one of `scopes`, or is the guest whose member is `member_id`."""
        principal = await self.principal(authorization)
        # a guest token's "guest" scope never matches alone: it is bound to its member, checked below
        if principal.scopes & (set(scopes) - {GUEST}):
            return principal
        if principal.is_guest and GUEST in scopes and member_id is not None:
            if principal.member_id == member_id:
                return principal
            raise errors.Forbidden("a guest token reads its own member only")
        raise errors.Forbidden(f"this needs one of the scopes {', '.join(s for s in scopes if s != GUEST)}")
