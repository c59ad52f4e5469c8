"""The mailing list and Guest Connect (texts): subscriptions, their consent record, offers.

A subscription is one address on one channel. Every opt-in and opt-out is an event in
`subscription_events` (where, when, and the keyword texted), written in the same
transaction as the change of the subscription's status, so the consent record always
explains the status; each also writes a `subscription.changed` event (no address in it), and
an offer writes an `offer.delivery` event per message to send (rewards.messages).

Choices, as the API documents them:
- Subscribing answers 201 when it records an opt-in (a new subscription, or the renewal of
  an unsubscribed one, with the same id), and 200 with the same id when the address is
  already subscribed (nothing is written).
- Unsubscribing answers 200 `unsubscribed` for any well-formed address, known or not: the
  outcome the guest asked for holds either way, and a 404 would tell the caller whether an
  address is on the list. An unknown address is not stored.
- Texts: the carriers' keywords as `rewards.texting` reads them. Stop words stop the sender's
  texts from either way in. START and UNSTOP renew a stopped subscription only when the text
  comes through the carrier's signed webhook: the register's JSON endpoint is guarded by a
  checkout key alone, and any holder of one could otherwise re-subscribe any number. HELP and
  INFO change nothing and answer with the program's name, how to stop and Guest Services.
- An erased address stays opted out (its keyed hash in `opt_out_hashes`, rewards.privacy.subscribers):
  subscribing it again is a new opt-in, which lifts that opt-out; nothing else can make a
  subscription of it active (the database refuses).
- Unsubscribe links name one subscription (`rewards.unsubscribe_links`). Following one records
  an opt-out with source `link` and detail `page` (the button on its page) or `one-click` (a
  mailbox provider's RFC 8058 POST); an erased or already stopped subscription stays as it is.
"""

from __future__ import annotations

from typing import Literal

import asyncpg
import msgspec
from sqlalchemy import (
    BigInteger,
    BindParameter,
    ColumnElement,
    Text,
    bindparam,
    cast,
    delete,
    func,
    insert,
    literal,
    literal_column,
    null,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert

from rewards import contacts, errors
from rewards.db import Database
from rewards.events import NewEvent, emit, emit_many
from rewards.messages import offer_delivery
from rewards.schemas import (
    OfferIn,
    OfferOut,
    SmsInboundIn,
    SmsInboundOut,
    SubscriptionIn,
    SubscriptionOut,
    UnsubscribeIn,
)
from rewards.statements import Statement
from rewards.tables import (
    members,
    offer_deliveries,
    offers,
    opt_out_hashes,
    subscription_events,
    subscriptions,
)
from rewards.texting import Replies, keyword_of
from rewards.unsubscribe_links import UnsubscribeLinks


def normalize_address(channel: str, address: str, *, field: str = "address") -> str:
    """The address as stored and compared, as a member's (rewards.contacts): an email NFKC-normalized,
    trimmed and case-folded, a phone number in E.164."""
    if channel == "sms":
        phone = contacts.phone_or_none(address)
        if phone is None:
            raise errors.ValidationFailed("an sms address is a phone number such as +15551234567", field=field)
        return phone
    try:
        return contacts.normalize_email(address)
    except contacts.NotAnEmail as exc:
        raise errors.ValidationFailed("an email address looks like name@example.com", field=field) from exc


# --- subscriptions ---------------------------------------------------------------------------


def _text(name: str) -> BindParameter[str]:
    return bindparam(name, type_=Text)


def _id(name: str) -> BindParameter[int]:
    return bindparam(name, type_=BigInteger)


# FOR SHARE: an erasure running now (it locks the member row) either finishes first and refuses
# us, or waits and then erases this subscription with the rest
MEMBER_ERASED_AT = Statement(select(members.c.erased_at).where(members.c.id == _id("member_id"))
                             .with_for_update(read=True))

SUBSCRIPTION_OF = Statement(
    select(subscriptions.c.id, subscriptions.c.status, subscriptions.c.member_id)
    .where(subscriptions.c.channel == _text("channel"),
           func.lower(subscriptions.c.address) == func.lower(_text("address")), subscriptions.c.address.is_not(None))
    .with_for_update())

NEW_SUBSCRIPTION = Statement(
    insert(subscriptions).values(channel=_text("channel"), address=_text("address"), member_id=_id("member_id"),
                                 status="active", source=_text("source"))
    .returning(subscriptions.c.id))

# an active subscription given at a register with the member's id: now the member's
LINK_MEMBER = Statement(
    update(subscriptions)
    .where(subscriptions.c.id == _id("subscription_id"), subscriptions.c.member_id.is_distinct_from(_id("member_id")))
    .values(member_id=_id("member_id")))

# a new consent: an erased address's opt-out no longer holds
LIFT_OPT_OUT = Statement(delete(opt_out_hashes).where(
    opt_out_hashes.c.channel == _text("channel"), opt_out_hashes.c.address_hash == func.privacy_hash(_text("address"))))


async def _check_member(conn: asyncpg.Connection, member_id: int) -> None:
    row = await MEMBER_ERASED_AT.fetchrow(conn, member_id=member_id)
    if row is None:
        raise errors.NotFound(f"member {member_id} does not exist")
    if row["erased_at"] is not None:
        raise errors.MemberNotActive(
            f"member {member_id}'s personal data was erased; subscribe the address without member_id"
        )


async def subscribe(db: Database, request: SubscriptionIn, *, session_id: int | None = None
                    ) -> tuple[bool, SubscriptionOut]:
    """Opt an address in; returns (opt-in recorded, answer). Already subscribed: (False, same id).
    `session_id`: the guest's page session that asked, recorded with the opt-in."""
    address = normalize_address(request.channel, request.address)

    async def work(conn: asyncpg.Connection) -> tuple[bool, SubscriptionOut]:
        if request.member_id is not None:
            await _check_member(conn, request.member_id)
        found = await SUBSCRIPTION_OF.fetchrow(conn, channel=request.channel, address=address)
        if found is None or found["status"] != "active":
            await LIFT_OPT_OUT.execute(conn, channel=request.channel, address=address)
        if found is None:
            # a racing twin's insert makes this a unique violation: the transaction is run
            # again and finds the twin's subscription
            subscription_id = await NEW_SUBSCRIPTION.fetchval(
                conn, channel=request.channel, address=address, member_id=request.member_id, source=request.source)
            await _record(conn, subscription_id, "subscribed", request.source, session_id=session_id)
            return True, SubscriptionOut(subscription_id=subscription_id)
        if found["status"] == "active":
            if request.member_id is not None:
                await LINK_MEMBER.execute(conn, subscription_id=found["id"], member_id=request.member_id)
            return False, SubscriptionOut(subscription_id=found["id"])
        await _renew(conn, found["id"], request.source, member_id=request.member_id, session_id=session_id)
        return True, SubscriptionOut(subscription_id=found["id"])

    return await db.transaction(work)


# An opt-in or opt-out in the consent record (with the guest's page session that asked, if one
# did), and what the subscription is now, for its event.
_recorded = (insert(subscription_events)
             .values(subscription_id=_id("subscription_id"), kind=_text("kind"), source=_text("source"),
                     detail=_text("detail"), actor_session_id=_id("session_id"))
             .returning(subscription_events.c.subscription_id, subscription_events.c.kind,
                        subscription_events.c.source, subscription_events.c.occurred_at)
             .cte("recorded"))
RECORD = Statement(
    select(subscriptions.c.id, subscriptions.c.channel, subscriptions.c.member_id, subscriptions.c.status,
           _recorded.c.kind, _recorded.c.source, _recorded.c.occurred_at)
    .select_from(_recorded.join(subscriptions, subscriptions.c.id == _recorded.c.subscription_id)))


async def _record(conn: asyncpg.Connection, subscription_id: int, kind: str, source: str,
                  detail: str | None = None, *, session_id: int | None = None) -> None:
    await _changed(conn, await RECORD.fetchrow(conn, subscription_id=subscription_id, kind=kind, source=source,
                                               detail=detail, session_id=session_id))


async def _changed(conn: asyncpg.Connection, row: asyncpg.Record) -> None:
    """The `subscription.changed` event of an opt-in or opt-out (no address: it is personal data)."""
    await emit(conn, "subscription.changed", member_id=row["member_id"], occurred_at=row["occurred_at"], data={
        "subscription_id": row["id"], "channel": row["channel"], "change": row["kind"], "status": row["status"],
        "source": row["source"]})


RENEW = Statement(
    update(subscriptions).where(subscriptions.c.id == _id("subscription_id"))
    .values(status="active", unsubscribed_at=None, subscribed_at=func.now(), source=_text("source"),
            member_id=func.coalesce(_id("member_id"), subscriptions.c.member_id)))


async def _renew(conn: asyncpg.Connection, subscription_id: int, source: str, *,
                 member_id: int | None = None, detail: str | None = None, session_id: int | None = None) -> None:
    """A later opt-in: the subscription is active again, from this opt-in's source and time."""
    await RENEW.execute(conn, subscription_id=subscription_id, source=source, member_id=member_id)
    await _record(conn, subscription_id, "renewed", source, detail, session_id=session_id)


def _unsubscribing(which: ColumnElement[bool], source: ColumnElement[str], detail: ColumnElement[str | None],
                   session: ColumnElement[int | None]) -> Statement:
    """One statement: the status changes only if the subscription is active, and the consent
    event is written only for a change, so a repeated unsubscribe records nothing. It answers
    what `_changed` needs for the `subscription.changed` event."""
    s, e = subscriptions, subscription_events
    stopped = (update(s).where(which, s.c.address.is_not(None), s.c.status == "active")
               .values(status="unsubscribed", unsubscribed_at=func.now())
               .returning(s.c.id, s.c.channel, s.c.member_id, s.c.status).cte("stopped"))
    recorded = (insert(e).from_select(
        ["subscription_id", "kind", "source", "detail", "actor_session_id"],
        select(stopped.c.id, literal("unsubscribed", Text), source, detail, session))
        .returning(e.c.subscription_id, e.c.kind, e.c.source, e.c.occurred_at).cte("recorded"))
    return Statement(select(stopped.c.id, stopped.c.channel, stopped.c.member_id, stopped.c.status, recorded.c.kind,
                            recorded.c.source, recorded.c.occurred_at)
                     .select_from(stopped.join(recorded, recorded.c.subscription_id == stopped.c.id)))


# by address (a guest, a register, a text) and by id (an unsubscribe link, its source `link`)
UNSUBSCRIBE = _unsubscribing(
    (subscriptions.c.channel == bindparam("channel", type_=Text))
    & (func.lower(subscriptions.c.address) == func.lower(bindparam("address", type_=Text))),
    bindparam("source", type_=Text), bindparam("detail", type_=Text), bindparam("session_id", type_=BigInteger))
UNSUBSCRIBE_BY_ID = _unsubscribing(subscriptions.c.id == bindparam("subscription_id", type_=BigInteger),
                                   literal("link", Text), bindparam("detail", type_=Text),
                                   cast(null(), BigInteger))


async def _stop(conn: asyncpg.Connection, statement: Statement, **params: object) -> bool:
    """Run an UNSUBSCRIBE statement and write the event of each opt-out; True if one was active."""
    stopped = await statement.fetch(conn, **params)
    for row in stopped:
        await _changed(conn, row)
    return bool(stopped)


async def _unsubscribe(db: Database, channel: str, address: str, source: str, detail: str | None = None, *,
                       session_id: int | None = None) -> bool:
    """Stop the address's subscription; True if it was active. `session_id`: the guest's page
    session that asked, recorded with the opt-out."""
    return await db.transaction(lambda conn: _stop(
        conn, UNSUBSCRIBE, channel=channel, address=address, source=source, detail=detail, session_id=session_id))


async def unsubscribe(db: Database, request: UnsubscribeIn) -> None:
    """Unsubscribe by link: the address is unsubscribed afterwards, whether or not it was known."""
    await _unsubscribe(db, request.channel, normalize_address(request.channel, request.address), "link")


async def choose_on_page(db: Database, member_id: int, channel: Literal["email", "sms"], address: str, on: bool, *,
                         session_id: int) -> bool:
    """A signed-in guest turns their email or texts on or off on their page (rewards.pages):
    an opt-in or opt-out from source `online` (an opt-out's detail: `guest page`), the page's
    session recorded as who made it. True when it changed something."""
    if on:
        changed, _ = await subscribe(db, SubscriptionIn(channel=channel, address=address, source="online",
                                                        member_id=member_id), session_id=session_id)
        return changed
    return await _unsubscribe(db, channel, normalize_address(channel, address), "online", "guest page",
                              session_id=session_id)


# --- unsubscribe links -----------------------------------------------------------------------


class LinkedSubscription(msgspec.Struct, frozen=True, kw_only=True):
    """What an unsubscribe link's page shows: the address is None once erased."""

    channel: str
    address: str | None
    status: str


LINKED = Statement(select(subscriptions.c.channel, subscriptions.c.address, subscriptions.c.status)
                   .where(subscriptions.c.id == _id("subscription_id")))


def _linked(row: asyncpg.Record | None) -> LinkedSubscription | None:
    return None if row is None else LinkedSubscription(channel=row["channel"], address=row["address"],
                                                       status=row["status"])


async def linked_subscription(db: Database, subscription_id: int) -> LinkedSubscription | None:
    """The subscription a link names, or None if there is none (a database that was reset)."""
    return _linked((await db.run(LINKED, subscription_id=subscription_id) or [None])[0])


async def unsubscribe_by_link(db: Database, subscription_id: int, how: str) -> LinkedSubscription | None:
    """Stop the subscription a link names (`how`: `page` or `one-click`, kept as the opt-out's
    detail); the subscription as it is afterwards, or None if there is none."""

    async def work(conn: asyncpg.Connection) -> LinkedSubscription | None:
        await _stop(conn, UNSUBSCRIBE_BY_ID, subscription_id=subscription_id, detail=how)
        return _linked(await LINKED.fetchrow(conn, subscription_id=subscription_id))

    return await db.transaction(work)


# --- texts -----------------------------------------------------------------------------------

IGNORED = ("not a keyword (the first word is not STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, REVOKE, OPT OUT, "
           "START, UNSTOP, HELP or INFO); nothing changed")
NOT_HERE = ("texts are restarted only by the carrier's signed webhook (POST /v1/sms/inbound/twilio) or by a new "
            "opt-in at a register or online; nothing changed")


async def text_received(db: Database, sender: str, body: str, replies: Replies, *, may_restart: bool,
                        message_id: str | None = None, sender_field: str = "from") -> SmsInboundOut:
    """A text from a guest: stop words stop texts; START and UNSTOP restart them when
    `may_restart` (the carrier's signed webhook); HELP and INFO are answered; anything else
    is ignored. `message_id` (the carrier's) is kept with the keyword in the consent record."""
    number = normalize_address("sms", sender, field=sender_field)
    keyword = keyword_of(body)
    if keyword is None:
        return SmsInboundOut(action="ignored", keyword=None, reply=None, detail=IGNORED)
    word = keyword.word
    detail = word if message_id is None else f"{word} {message_id}"
    if keyword.kind == "stop":
        if await _unsubscribe(db, "sms", number, "sms", detail):
            return SmsInboundOut(action="unsubscribed", keyword=word, reply=replies.stopped,
                                 detail="the sender's texts are stopped")
        # carriers expect the confirmation whatever our list held
        return SmsInboundOut(action="unchanged", keyword=word, reply=replies.stopped,
                             detail="the sender had no active text subscription")
    if keyword.kind == "help":
        return SmsInboundOut(action="help", keyword=word, reply=replies.help,
                             detail="the program's name, how to stop and Guest Services; nothing changed")
    if not may_restart:
        return SmsInboundOut(action="refused", keyword=word, reply=None, detail=NOT_HERE)
    return await _restart(db, number, word, detail, replies)


async def sms_inbound(db: Database, text: SmsInboundIn, replies: Replies) -> SmsInboundOut:
    """A text reported by a register: it may stop texts, never restart them."""
    return await text_received(db, text.sender, text.body, replies, may_restart=False)


async def _restart(db: Database, sender: str, keyword: str, detail: str, replies: Replies) -> SmsInboundOut:
    async def work(conn: asyncpg.Connection) -> SmsInboundOut:
        found = await SUBSCRIPTION_OF.fetchrow(conn, channel="sms", address=sender)
        if found is None:
            # a first opt-in needs its consent taken at a register or online, with its source
            return SmsInboundOut(action="unchanged", keyword=keyword, reply=replies.not_on_the_list,
                                 detail="the sender has no text subscription to restart")
        if found["status"] == "active":
            return SmsInboundOut(action="unchanged", keyword=keyword, reply=replies.restarted,
                                 detail="the sender's texts were not stopped")
        await _renew(conn, found["id"], "sms", detail=detail)
        return SmsInboundOut(action="renewed", keyword=keyword, reply=replies.restarted,
                             detail="the sender's texts are restarted")

    return await db.transaction(work)


# --- offers ----------------------------------------------------------------------------------

# One statement: the offer, and a delivery to every active subscription of its channel.
# A code already taken inserts nothing (and sends nothing again).
_offer = (pg_insert(offers).values(code=_text("code"), value_cents=_id("value_cents"), channel=_text("channel"))
          .on_conflict_do_nothing(index_elements=[offers.c.code])
          .returning(offers.c.id, offers.c.code, offers.c.value_cents, offers.c.channel, offers.c.created_at)
          .cte("offer"))
_sent = (insert(offer_deliveries)
         .from_select(["offer_id", "subscription_id", "sent_at"],
                      select(_offer.c.id, subscriptions.c.id, _offer.c.created_at)
                      .select_from(_offer.join(subscriptions, (subscriptions.c.channel == _offer.c.channel)
                                               & (subscriptions.c.status == "active"))))
         .returning(literal_column("1"))
         .cte("sent"))
MAKE_OFFER = Statement(select(
    _offer.c.id, _offer.c.code, _offer.c.value_cents, _offer.c.channel, _offer.c.created_at,
    select(func.count()).select_from(_sent).scalar_subquery().label("deliveries")))

EARLIER_OFFER = Statement(select(
    offers.c.id, offers.c.code, offers.c.value_cents, offers.c.channel, offers.c.created_at,
    select(func.count()).select_from(offer_deliveries).where(offer_deliveries.c.offer_id == offers.c.id)
    .scalar_subquery().label("deliveries"))
    .where(offers.c.code == _text("code")))

# Whom an offer just made was sent to, for its messages.
RECIPIENTS = Statement(
    select(subscriptions.c.id, subscriptions.c.channel, subscriptions.c.address, subscriptions.c.member_id)
    .select_from(offer_deliveries.join(subscriptions, subscriptions.c.id == offer_deliveries.c.subscription_id))
    .where(offer_deliveries.c.offer_id == _id("offer_id"), subscriptions.c.address.is_not(None))
    .order_by(subscriptions.c.id))
MESSAGES_PER_STATEMENT = 2000


async def _send(conn: asyncpg.Connection, offer: asyncpg.Record, links: UnsubscribeLinks) -> None:
    """One `offer.delivery` event per message to send, for the retailer's email or SMS sender."""
    recipients = await RECIPIENTS.fetch(conn, offer_id=offer["id"])
    for start in range(0, len(recipients), MESSAGES_PER_STATEMENT):
        await emit_many(conn, [
            NewEvent(type="offer.delivery", member_id=r["member_id"], occurred_at=offer["created_at"],
                     data=offer_delivery(offer["code"], offer["value_cents"], r["channel"], r["id"], r["address"],
                                         links))
            for r in recipients[start:start + MESSAGES_PER_STATEMENT]])


def _offer_out(row: asyncpg.Record) -> OfferOut:
    return OfferOut(offer_id=row["id"], code=row["code"], value_cents=row["value_cents"], channel=row["channel"],
                    created_at=row["created_at"], deliveries=row["deliveries"])


async def make_offer(db: Database, offer: OfferIn, links: UnsubscribeLinks) -> tuple[bool, OfferOut]:
    """Make an offer and send it to the channel's subscribers; returns (created, answer). Sending
    is recording each message to send as an `offer.delivery` event (and an `offer_deliveries`
    row, which the mailing list's report counts), in the offer's transaction.

    The code is the idempotency key: the same offer again answers (False, the first answer);
    the same code with another value or channel is an `idempotency_conflict`.
    """

    async def work(conn: asyncpg.Connection) -> tuple[bool, OfferOut]:
        row = await MAKE_OFFER.fetchrow(conn, code=offer.code, value_cents=offer.value_cents, channel=offer.channel)
        if row is not None:
            await _send(conn, row, links)
            return True, _offer_out(row)
        earlier = await EARLIER_OFFER.fetchrow(conn, code=offer.code)
        assert earlier is not None  # the insert found the code taken, and offers are never deleted
        if (earlier["value_cents"], earlier["channel"]) != (offer.value_cents, offer.channel):
            raise errors.IdempotencyConflict(
                f"offer {offer.code} exists with value_cents {earlier['value_cents']} on {earlier['channel']}"
            )
        return False, _offer_out(earlier)

    return await db.transaction(work)
