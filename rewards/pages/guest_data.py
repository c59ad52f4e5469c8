"""What the guest's pages read: the member, their open rewards, their activity, their subscriptions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BigInteger, Integer, String, and_, bindparam, func, or_, select

from rewards import errors
from rewards.db import Database
from rewards.contacts import normalize_phone
from rewards.pages.words import Entry
from rewards.statements import Statement
from rewards.tables import ledger, members, purchases, rewards, subscriptions

MEMBER_ID = bindparam("member_id", type_=BigInteger)

MEMBER = Statement(
    select(members.c.name, members.c.status, members.c.card_number, members.c.point_cents, members.c.email,
           members.c.phone, func.now().label("now"))
    .where(members.c.id == MEMBER_ID)
)
OPEN_REWARDS = Statement(
    select(rewards.c.code, rewards.c.value_cents, rewards.c.expires_at)
    .where(rewards.c.member_id == MEMBER_ID, rewards.c.status == "issued", rewards.c.expires_at > func.now())
    .order_by(rewards.c.expires_at, rewards.c.ordinal)
)
# a page of the activity, newest first, with the store and channel of the purchase each entry is about
ACTIVITY = Statement(
    select(ledger.c.id, ledger.c.kind, ledger.c.point_cents, ledger.c.occurred_at, ledger.c.return_id,
           purchases.c.store_id, purchases.c.body["channel"].astext.label("channel"),
           rewards.c.code, rewards.c.value_cents)
    .select_from(ledger.outerjoin(purchases, purchases.c.id == ledger.c.purchase_id)
                 .outerjoin(rewards, rewards.c.id == ledger.c.reward_id))
    .where(ledger.c.member_id == MEMBER_ID, ledger.c.id < bindparam("before"))
    .order_by(ledger.c.id.desc())
    .limit(bindparam("limit", type_=Integer))
)
SUBSCRIPTIONS = Statement(
    select(subscriptions.c.channel, subscriptions.c.status)
    .where(subscriptions.c.address.is_not(None), or_(
        and_(subscriptions.c.channel == "email",
             func.lower(subscriptions.c.address) == func.lower(bindparam("email", type_=String))),
        and_(subscriptions.c.channel == "sms", subscriptions.c.address == bindparam("phone", type_=String))))
)


@dataclass(frozen=True, slots=True)
class Member:
    name: str | None
    status: str
    card_number: str | None
    point_cents: int
    email: str | None
    phone: str | None
    now: datetime


@dataclass(frozen=True, slots=True)
class OpenReward:
    code: str
    value_cents: int
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Line:
    """One entry of the activity, and when it happened."""

    entry_id: int
    occurred_at: datetime
    entry: Entry


async def member(db: Database, member_id: int) -> Member:
    rows = await db.run(MEMBER, member_id=member_id)
    if not rows:
        raise errors.NotFound(f"member {member_id} does not exist")
    return Member(**dict(rows[0]))


async def home(db: Database, member_id: int) -> tuple[Member, list[OpenReward]]:
    """The member and their open rewards (soonest to expire first), read together."""
    async with db.connection() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        found = await MEMBER.fetchrow(conn, member_id=member_id)
        if found is None:
            raise errors.NotFound(f"member {member_id} does not exist")
        open_rewards = await OPEN_REWARDS.fetch(conn, member_id=member_id)
    return Member(**dict(found)), [OpenReward(**dict(r)) for r in open_rewards]


async def activity(db: Database, member_id: int, *, before: int, limit: int) -> tuple[list[Line], bool]:
    """Up to `limit` entries older than the entry `before`, newest first; and whether more follow."""
    rows = await db.run(ACTIVITY, member_id=member_id, before=before, limit=limit + 1)
    lines = [Line(r["id"], r["occurred_at"], Entry(
        kind=r["kind"], point_cents=r["point_cents"], store_id=r["store_id"], online=r["channel"] == "online",
        reward_code=r["code"], reward_value_cents=r["value_cents"], by_return=r["return_id"] is not None))
        for r in rows[:limit]]
    return lines, len(rows) > limit


async def subscribed(db: Database, email: str | None, phone: str | None) -> dict[str, bool]:
    """Whether the member's email and phone get Westique's offers: {'email': …, 'sms': …}."""
    rows = await db.run(SUBSCRIPTIONS, email=email, phone=normalize_phone(phone) if phone else None)
    found = {r["channel"]: r["status"] == "active" for r in rows}
    return {"email": found.get("email", False), "sms": found.get("sms", False)}
