"""Tokens, scopes and the checks every handler makes.

API keys carry scopes; a guest token is bound to one member and reads only that member.
Tokens are random and stored only as their SHA-256 (they carry 256 bits, so a slow hash
would add nothing); a short in-process cache keeps the hot path off the database.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import deque
from dataclasses import dataclass

from typing import Any

from sqlalchemy import bindparam, insert, select

from rewards import errors
from rewards.db import Database
from rewards.engine.commands import Actor
from rewards.members import MEMBER_EXISTS
from rewards.statements import Statement
from rewards.tables import api_keys

SCOPES = ("checkout", "guest_services", "compliance", "admin", "integrations")
GUEST = "guest"
TOKEN_PREFIX = "wr_"
CACHE_SECONDS = 10.0

NEW_KEY = Statement(insert(api_keys).values(
    token_hash=bindparam("token_hash"), scopes=bindparam("scopes"), member_id=bindparam("member_id"),
    label=bindparam("label"),
))
KEY_BY_TOKEN = Statement(
    select(api_keys.c.id, api_keys.c.scopes, api_keys.c.member_id)
    .where(api_keys.c.token_hash == bindparam("token_hash"), api_keys.c.revoked_at.is_(None))
)


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: int
    scopes: frozenset[str]
    member_id: int | None = None

    @property
    def is_guest(self) -> bool:
        return self.member_id is not None


def actor_of(request: Any) -> Actor:
    """Who is making the request: the key its token belongs to (checked before the handler ran)."""
    principal: Principal = request.state.principal
    return Actor(key_id=principal.key_id)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def create_key(db: Database, scopes: list[str], *, member_id: int | None = None, label: str | None = None) -> str:
    """Make a key and return its token: the only time the token exists outside its holder's hands."""
    unknown = set(scopes) - set(SCOPES) - {GUEST}
    if unknown or not scopes:
        raise errors.ValidationFailed(f"unknown scopes {sorted(unknown)}; choose from {SCOPES + (GUEST,)}", field="scope")
    if (GUEST in scopes) != (member_id is not None) or (GUEST in scopes and len(scopes) > 1):
        raise errors.ValidationFailed("a guest token has the guest scope alone and names its member", field="member")
    if member_id is not None and not await db.run(MEMBER_EXISTS, member_id=member_id):
        raise errors.NotFound(f"member {member_id} does not exist")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    await db.run(NEW_KEY, token_hash=token_hash(token), scopes=sorted(set(scopes)), member_id=member_id, label=label)
    return token


class Authenticator:
    """Turns an Authorization header into a Principal, and limits how often a guest may ask."""

    def __init__(self, db: Database, *, guest_rate_limit: int = 120) -> None:
        self.db = db
        self.guest_rate_limit = guest_rate_limit
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        self._guest_calls: dict[int, deque[float]] = {}

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
            found = Principal(rows[0]["id"], frozenset(rows[0]["scopes"]), rows[0]["member_id"]) if rows else None
            if len(self._cache) > 10_000:
                self._cache.clear()
            cached = self._cache[token] = (now, found)
        if cached[1] is None:
            raise errors.Unauthorized("the token is not valid")
        principal = cached[1]
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
