"""Erasing a subscriber who is not a member, and keeping their opt-out as a hash.

`DELETE /v1/subscriptions/personal-data` `{"channel", "address"}`: the address's subscription is
unsubscribed (an opt-out with source `erasure` in its consent record, if it was active), its
address erased (the subscription stays, anonymous, for the mailing-list report), and the
address's keyed hash (`privacy_hash`) kept in `opt_out_hashes`, so the address stays opted out:
- a later subscribe of the same address (`POST /v1/subscriptions`, an opt-in given at a register
  or online) is a new consent: it lifts the opt-out and makes a new subscription;
- anything else that would make a subscription of that address active (an import of addresses,
  a START texted for a number with no subscription, a bulk update) is refused by the database
  (the trigger `subscriptions_opt_outs_hold`), so no offer can reach the address without a new
  opt-in. Offers go only to active subscriptions.
An address a member has (or whose subscription is a member's) is refused with 409
`subscriber_is_member`: the member is erased with `DELETE /v1/members/{id}/personal-data`, which
erases their subscriptions the same way. An address never subscribed is not stored at all.
Open delete requests that name the address are completed by the erasure.
"""

from __future__ import annotations

import asyncpg

from rewards import errors
from rewards.db import Database
from rewards.mailing import SUBSCRIPTION_OF, normalize_address
from rewards.privacy import requests
from rewards.privacy.erasure import subscription_erased
from rewards.privacy.schemas import SubscriberErasedOut, SubscriberErasureIn

OPT_OUT = """
    WITH stopped AS (
        UPDATE subscriptions SET status = 'unsubscribed', unsubscribed_at = $2 WHERE id = $1 AND status = 'active'
        RETURNING id)
    INSERT INTO subscription_events (subscription_id, kind, source, occurred_at)
    SELECT id, 'unsubscribed', 'erasure', $2 FROM stopped"""
KEEP_OPT_OUT = """
    INSERT INTO opt_out_hashes (channel, address_hash, opted_out_at) VALUES ($1, privacy_hash($2), $3)
    ON CONFLICT (channel, address_hash) DO NOTHING"""
ERASE = """
    UPDATE subscriptions SET address = NULL, erased_at = $2, status = 'unsubscribed',
                             unsubscribed_at = coalesce(unsubscribed_at, $2)
    WHERE id = $1"""
OPTED_OUT = "SELECT true FROM opt_out_hashes WHERE channel = $1 AND address_hash = privacy_hash($2)"


async def erase_subscriber(db: Database, request: SubscriberErasureIn) -> SubscriberErasedOut:
    channel = request.channel
    address = normalize_address(channel, request.address)

    async def work(conn: asyncpg.Connection) -> SubscriberErasedOut:
        found = await SUBSCRIPTION_OF.fetchrow(conn, channel=channel, address=address)
        member_id = found["member_id"] if found is not None and found["member_id"] is not None else \
            await requests.member_with(conn, "email" if channel == "email" else "phone", address)
        if member_id is not None:
            raise errors.SubscriberIsMember(
                f"the address is member {member_id}'s: erase the member "
                f"(DELETE /v1/members/{member_id}/personal-data), which erases their subscriptions too")
        erased = 0
        if found is not None:
            now = await conn.fetchval("SELECT clock_timestamp()")
            await conn.execute(OPT_OUT, found["id"], now)
            await conn.execute(KEEP_OPT_OUT, channel, address, now)
            await requests.forget_address(conn, address, now)
            await conn.execute(ERASE, found["id"], now)
            await subscription_erased(conn, found["id"], channel, None, now)
            erased = 1
        return SubscriberErasedOut(channel=channel, subscriptions_erased=erased,
                                   opted_out=bool(await conn.fetchval(OPTED_OUT, channel, address)))

    return await db.transaction(work)

