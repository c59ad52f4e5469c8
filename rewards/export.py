"""The access export (the consumer's right to know): everything held about a member, as JSON.

One read-only, repeatable-read transaction reads every table that holds rows about the
member, so the export is one consistent picture: the profile; each consent with the terms and
notice versions and the published texts they point at (id and SHA-256); purchases with their
lines, tenders and offers; returns; the ledger; rewards; subscriptions (the member's, and those
of the member's email and phone made without the member's id) with their consent events and
the offers sent to them; the events about the member; the sign-in links, page sessions and
guest tokens (when, never their secrets); adjustments, the membership's changes and the
register's retry keys for the enrollment; the member's privacy requests and the record of an
erasure asked for; and, from the program's stored disclosures, the categories of personal
information, its sources and its purposes.

Who changed what (API keys, sessions) is staff's to see, not part of the member's copy.
tests/test_export.py holds this module to the schema: a table with rows about members that the
export leaves out fails it.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import asyncpg
import msgspec
from sqlalchemy import BigInteger, String, and_, any_, bindparam, func, or_, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import aliased

from rewards import errors, rules
from rewards.db import Database
from rewards.examples import register_examples
from rewards.members import reward_status
from rewards.statements import Statement
from rewards.tables import (
    api_keys,
    consents,
    events,
    guest_sessions,
    ledger,
    adjustments,
    enrollment_keys,
    member_changes,
    member_erasures,
    members,
    offer_deliveries,
    offers,
    program_disclosures,
    program_documents,
    privacy_requests,
    purchase_returns,
    purchases,
    rewards,
    sign_in_links,
    subscription_events,
    subscriptions,
)


class Record(msgspec.Struct, kw_only=True):
    pass


class Profile(Record, kw_only=True):
    member_id: int
    card_number: str | None
    status: str
    name: str | None
    email: str | None
    phone: str | None
    birth_date: date | None
    state: str
    external_id: str | None
    enrolled_at: datetime
    cancelled_at: datetime | None
    erased_at: datetime | None
    points: int
    point_cents: int


class PublishedText(Record, kw_only=True):
    """The published terms or notice a consent accepted: the text's id and the SHA-256 of its UTF-8."""

    document_id: int
    version: str
    sha256: str
    effective_from: datetime


class ConsentRecord(Record, kw_only=True):
    consent_id: int
    terms_version: str
    notice_version: str
    channel: str
    guardian_consent: bool
    accepted_at: datetime
    withdrawn_at: datetime | None
    terms_text: PublishedText | None
    notice_text: PublishedText | None


class PurchaseLine(Record, kw_only=True):
    sku: str
    category: str
    quantity: int
    amount_cents: int


class PurchaseTender(Record, kw_only=True):
    method: str
    amount_cents: int
    reward_code: str | None = None


class PurchaseOffer(Record, kw_only=True):
    code: str
    discount_cents: int


class PurchaseRecord(Record, kw_only=True):
    purchase_id: str
    occurred_at: datetime
    store_id: str
    channel: str
    currency: str
    lines: list[PurchaseLine]
    tenders: list[PurchaseTender]
    offers: list[PurchaseOffer]
    qualifying_cents: int
    point_cents_earned: int
    bonus_point_cents: int
    rules_version: int
    recorded_at: datetime


class ReturnLine(Record, kw_only=True):
    sku: str
    quantity: int
    amount_cents: int


class ReturnRecord(Record, kw_only=True):
    return_id: str
    purchase_id: str
    occurred_at: datetime
    lines: list[ReturnLine]
    point_cents_reversed: int
    recorded_at: datetime


class LedgerRecord(Record, kw_only=True):
    entry_id: int
    kind: str
    point_cents: int
    occurred_at: datetime
    recorded_at: datetime
    purchase_id: str | None
    return_id: str | None
    reward_code: str | None
    rules_version: int | None


class RewardRecord(Record, kw_only=True):
    code: str
    value_cents: int
    status: str
    """issued, redeemed, expired or voided."""
    issued_at: datetime
    expires_at: datetime
    issued_by_purchase: str
    redeemed_at: datetime | None
    redeemed_in_purchase: str | None
    voided_at: datetime | None


class ConsentEvent(Record, kw_only=True):
    """An opt-in or opt-out of a subscription: where and when (and the keyword texted)."""

    event_id: int
    kind: str
    source: str
    detail: str | None
    occurred_at: datetime


class OfferReceived(Record, kw_only=True):
    code: str
    value_cents: int
    sent_at: datetime


class SubscriptionRecord(Record, kw_only=True):
    subscription_id: int
    channel: str
    address: str | None
    status: str
    source: str
    subscribed_at: datetime
    unsubscribed_at: datetime | None
    erased_at: datetime | None
    consent_events: list[ConsentEvent]
    offers_received: list[OfferReceived]


class EventRecord(Record, kw_only=True):
    event_id: int
    type: str
    occurred_at: datetime
    data: dict[str, Any]


class SignInLinkRecord(Record, kw_only=True):
    channel: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None


class SessionRecord(Record, kw_only=True):
    started_at: datetime
    last_seen_at: datetime
    ended_at: datetime | None


class GuestTokenRecord(Record, kw_only=True):
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class Access(Record, kw_only=True):
    """How the member reached their own data: links sent, page sessions, guest API tokens."""

    sign_in_links: list[SignInLinkRecord]
    sessions: list[SessionRecord]
    guest_tokens: list[GuestTokenRecord]


class PrivacyRequestRecord(Record, kw_only=True):
    """A request to know, delete or correct: how it came and was verified, its clocks, how it ended."""

    request_id: int
    type: str
    status: str
    channel: str
    verification_method: str
    verified_at: datetime | None
    details: str | None
    received_at: datetime
    confirm_by: datetime
    due_at: datetime
    confirmed_at: datetime | None
    closed_at: datetime | None
    outcome: str | None
    reason: str | None


class AdjustmentRecord(Record, kw_only=True):
    """Points added or taken by Guest Services (or an import), and why."""

    adjustment_id: str
    point_cents: int
    reason: str
    note: str | None
    balance_after: int
    occurred_at: datetime


class ChangeRecord(Record, kw_only=True):
    """A change of the membership (enrolled, corrected, cancelled, merged, erased), without who made it."""

    kind: str
    occurred_at: datetime
    details: dict[str, Any]
    counterpart_member_id: int | None


class EnrollmentRetryRecord(Record, kw_only=True):
    """A register's retry key for the enrollment (it keeps a digest of what was given, not the text)."""

    created_at: datetime


class ErasureRecord(Record, kw_only=True):
    """The erasure asked for: when, when it is (or was) due, what the notice said would be lost."""

    requested_at: datetime
    scheduled_for: datetime
    point_cents_to_forfeit: int
    rewards_to_void: list[str]
    reason: str
    erased_at: datetime | None


class CategoryDisclosed(Record, kw_only=True):
    name: str
    examples: str
    programs: list[str]


class Disclosed(Record, kw_only=True):
    """From the program's disclosures in force (their version): what is collected, from where, and why."""

    version: int
    categories: list[CategoryDisclosed]
    sources: list[str]
    purposes: list[str]


class MemberExport(Record, kw_only=True):
    exported_at: datetime
    member: Profile
    consents: list[ConsentRecord]
    purchases: list[PurchaseRecord]
    returns: list[ReturnRecord]
    ledger: list[LedgerRecord]
    adjustments: list[AdjustmentRecord]
    changes: list[ChangeRecord]
    enrollment_retries: list[EnrollmentRetryRecord]
    rewards: list[RewardRecord]
    subscriptions: list[SubscriptionRecord]
    events: list[EventRecord]
    access: Access
    privacy_requests: list[PrivacyRequestRecord]
    erasure: ErasureRecord | None
    disclosures: Disclosed | None


# --- the reads -----------------------------------------------------------------------------------

MEMBER_ID = bindparam("member_id", type_=BigInteger)
terms_text, notice_text = aliased(program_documents), aliased(program_documents)
issuing, redeeming = aliased(purchases), aliased(purchases)

PROFILE = Statement(select(members).where(members.c.id == MEMBER_ID))
CONSENTS = Statement(
    select(consents,
           terms_text.c.version.label("terms_text_version"), terms_text.c.sha256.label("terms_sha256"),
           terms_text.c.effective_from.label("terms_effective_from"),
           notice_text.c.version.label("notice_text_version"), notice_text.c.sha256.label("notice_sha256"),
           notice_text.c.effective_from.label("notice_effective_from"))
    .outerjoin(terms_text, terms_text.c.id == consents.c.terms_document_id)
    .outerjoin(notice_text, notice_text.c.id == consents.c.notice_document_id)
    .where(consents.c.member_id == MEMBER_ID).order_by(consents.c.id)
)
PURCHASES = Statement(select(purchases).where(purchases.c.member_id == MEMBER_ID)
                      .order_by(purchases.c.occurred_at, purchases.c.id))
RETURNS = Statement(
    select(purchase_returns, purchases.c.ext_id.label("purchase_ext_id"))
    .join(purchases, purchases.c.id == purchase_returns.c.purchase_id)
    .where(purchase_returns.c.member_id == MEMBER_ID).order_by(purchase_returns.c.occurred_at, purchase_returns.c.id)
)
LEDGER = Statement(
    select(ledger, purchases.c.ext_id.label("purchase_ext_id"), purchase_returns.c.ext_id.label("return_ext_id"),
           rewards.c.code.label("reward_code"))
    .select_from(ledger.outerjoin(purchases, purchases.c.id == ledger.c.purchase_id)
                 .outerjoin(purchase_returns, purchase_returns.c.id == ledger.c.return_id)
                 .outerjoin(rewards, rewards.c.id == ledger.c.reward_id))
    .where(ledger.c.member_id == MEMBER_ID).order_by(ledger.c.id)
)
REWARDS = Statement(
    select(rewards, issuing.c.ext_id.label("issued_by"), redeeming.c.ext_id.label("redeemed_in"))
    .join(issuing, issuing.c.id == rewards.c.purchase_id)
    .outerjoin(redeeming, redeeming.c.id == rewards.c.redeemed_purchase_id)
    .where(rewards.c.member_id == MEMBER_ID).order_by(rewards.c.ordinal)
)
# the member's subscriptions, and those of the member's email and phone made without a member id
# (a register's sign-up): the addresses are the member's personal information either way
SUBSCRIPTIONS = Statement(
    select(subscriptions).where(or_(
        subscriptions.c.member_id == MEMBER_ID,
        and_(subscriptions.c.member_id.is_(None), or_(
            and_(subscriptions.c.channel == "email",
                 func.lower(subscriptions.c.address) == func.lower(bindparam("email", type_=String))),
            and_(subscriptions.c.channel == "sms", subscriptions.c.address == bindparam("phone", type_=String))))))
    .order_by(subscriptions.c.id)
)
SUBSCRIPTION_IDS = bindparam("subscription_ids", type_=ARRAY(BigInteger))
CONSENT_EVENTS = Statement(
    select(subscription_events).where(subscription_events.c.subscription_id == any_(SUBSCRIPTION_IDS))
    .order_by(subscription_events.c.id)
)
OFFERS_RECEIVED = Statement(
    select(offer_deliveries.c.subscription_id, offer_deliveries.c.sent_at, offers.c.code, offers.c.value_cents)
    .join(offers, offers.c.id == offer_deliveries.c.offer_id)
    .where(offer_deliveries.c.subscription_id == any_(SUBSCRIPTION_IDS))
    .order_by(offer_deliveries.c.sent_at, offers.c.code)
)
EVENTS = Statement(select(events).where(events.c.member_id == MEMBER_ID).order_by(events.c.id))
SIGN_IN_LINKS = Statement(select(sign_in_links).where(sign_in_links.c.member_id == MEMBER_ID)
                          .order_by(sign_in_links.c.id))
SESSIONS = Statement(select(guest_sessions).where(guest_sessions.c.member_id == MEMBER_ID)
                     .order_by(guest_sessions.c.id))
GUEST_TOKENS = Statement(select(api_keys).where(api_keys.c.member_id == MEMBER_ID).order_by(api_keys.c.id))
ADJUSTMENTS = Statement(select(adjustments).where(adjustments.c.member_id == MEMBER_ID).order_by(adjustments.c.id))
CHANGES = Statement(select(member_changes).where(member_changes.c.member_id == MEMBER_ID)
                    .order_by(member_changes.c.id))
ENROLLMENT_RETRIES = Statement(select(enrollment_keys.c.created_at).where(enrollment_keys.c.member_id == MEMBER_ID)
                               .order_by(enrollment_keys.c.id))
PRIVACY_REQUESTS = Statement(select(privacy_requests).where(privacy_requests.c.member_id == MEMBER_ID)
                             .order_by(privacy_requests.c.id))
ERASURE = Statement(select(member_erasures).where(member_erasures.c.member_id == MEMBER_ID))
DISCLOSURES = Statement(
    select(program_disclosures.c.version, program_disclosures.c.body["categories"].label("categories"),
           program_disclosures.c.body["sources"].label("sources"),
           program_disclosures.c.body["purposes"].label("purposes"))
    .order_by(program_disclosures.c.version.desc()).limit(1)
)


async def export(db: Database, member_id: int) -> MemberExport:
    """Everything held about the member, read in one snapshot; 404 for a member never enrolled."""
    async with db.connection() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        return await _export(conn, member_id)


async def _export(conn: asyncpg.Connection, member_id: int) -> MemberExport:
    m = await PROFILE.fetchrow(conn, member_id=member_id)
    if m is None:
        raise errors.NotFound(f"member {member_id} does not exist")
    now = await conn.fetchval("SELECT now()")
    subscribed = await SUBSCRIPTIONS.fetch(conn, member_id=member_id, email=m["email"], phone=m["phone_normalized"])
    ids = [s["id"] for s in subscribed]
    consent_events = await CONSENT_EVENTS.fetch(conn, subscription_ids=ids)
    received = await OFFERS_RECEIVED.fetch(conn, subscription_ids=ids)
    disclosed = await DISCLOSURES.fetchrow(conn)
    erasure = await ERASURE.fetchrow(conn, member_id=member_id)
    return MemberExport(
        exported_at=now,
        member=Profile(
            member_id=m["id"], card_number=m["card_number"], status=m["status"], name=m["name"], email=m["email"],
            phone=m["phone"], birth_date=m["birth_date"], state=m["state"], external_id=m["external_id"],
            enrolled_at=m["enrolled_at"], cancelled_at=m["cancelled_at"], erased_at=m["erased_at"],
            points=rules.whole_points(m["point_cents"]), point_cents=m["point_cents"]),
        consents=[_consent(c) for c in await CONSENTS.fetch(conn, member_id=member_id)],
        purchases=[_purchase(p) for p in await PURCHASES.fetch(conn, member_id=member_id)],
        returns=[ReturnRecord(
            return_id=r["ext_id"], purchase_id=r["purchase_ext_id"], occurred_at=r["occurred_at"],
            lines=msgspec.convert(r["body"]["request"]["lines"], list[ReturnLine]),
            point_cents_reversed=r["point_cents_reversed"], recorded_at=r["created_at"])
            for r in await RETURNS.fetch(conn, member_id=member_id)],
        ledger=[LedgerRecord(
            entry_id=e["id"], kind=e["kind"], point_cents=e["point_cents"], occurred_at=e["occurred_at"],
            recorded_at=e["created_at"], purchase_id=e["purchase_ext_id"], return_id=e["return_ext_id"],
            reward_code=e["reward_code"], rules_version=e["rules_version"])
            for e in await LEDGER.fetch(conn, member_id=member_id)],
        adjustments=[AdjustmentRecord(
            adjustment_id=a["ext_id"], point_cents=a["point_cents"], reason=a["reason"], note=a["note"],
            balance_after=a["balance_after"], occurred_at=a["occurred_at"])
            for a in await ADJUSTMENTS.fetch(conn, member_id=member_id)],
        changes=[ChangeRecord(kind=c["kind"], occurred_at=c["occurred_at"], details=c["details"],
                              counterpart_member_id=c["counterpart_member_id"])
                 for c in await CHANGES.fetch(conn, member_id=member_id)],
        enrollment_retries=[EnrollmentRetryRecord(created_at=k["created_at"])
                            for k in await ENROLLMENT_RETRIES.fetch(conn, member_id=member_id)],
        rewards=[RewardRecord(
            code=w["code"], value_cents=w["value_cents"],
            status=reward_status(w["status"], w["expires_at"], now),
            issued_at=w["issued_at"], expires_at=w["expires_at"], issued_by_purchase=w["issued_by"],
            redeemed_at=w["redeemed_at"], redeemed_in_purchase=w["redeemed_in"], voided_at=w["voided_at"])
            for w in await REWARDS.fetch(conn, member_id=member_id)],
        subscriptions=[SubscriptionRecord(
            subscription_id=s["id"], channel=s["channel"], address=s["address"], status=s["status"],
            source=s["source"], subscribed_at=s["subscribed_at"], unsubscribed_at=s["unsubscribed_at"],
            erased_at=s["erased_at"],
            consent_events=[ConsentEvent(event_id=e["id"], kind=e["kind"], source=e["source"], detail=e["detail"],
                                         occurred_at=e["occurred_at"])
                            for e in consent_events if e["subscription_id"] == s["id"]],
            offers_received=[OfferReceived(code=o["code"], value_cents=o["value_cents"], sent_at=o["sent_at"])
                             for o in received if o["subscription_id"] == s["id"]])
            for s in subscribed],
        events=[EventRecord(event_id=e["id"], type=e["type"], occurred_at=e["occurred_at"], data=e["data"])
                for e in await EVENTS.fetch(conn, member_id=member_id)],
        access=Access(
            sign_in_links=[SignInLinkRecord(channel=k["channel"], created_at=k["created_at"],
                                            expires_at=k["expires_at"], used_at=k["used_at"])
                           for k in await SIGN_IN_LINKS.fetch(conn, member_id=member_id)],
            sessions=[SessionRecord(started_at=x["created_at"], last_seen_at=x["last_seen_at"], ended_at=x["ended_at"])
                      for x in await SESSIONS.fetch(conn, member_id=member_id)],
            guest_tokens=[GuestTokenRecord(created_at=k["created_at"], expires_at=k["expires_at"],
                                           revoked_at=k["revoked_at"])
                          for k in await GUEST_TOKENS.fetch(conn, member_id=member_id)]),
        privacy_requests=[PrivacyRequestRecord(
            request_id=r["id"], type=r["type"], status=r["status"], channel=r["channel"],
            verification_method=r["verification_method"], verified_at=r["verified_at"], details=r["details"],
            received_at=r["received_at"], confirm_by=r["confirm_by"], due_at=r["due_at"],
            confirmed_at=r["confirmed_at"], closed_at=r["closed_at"], outcome=r["outcome"], reason=r["reason"])
            for r in await PRIVACY_REQUESTS.fetch(conn, member_id=member_id)],
        erasure=None if erasure is None else ErasureRecord(
            requested_at=erasure["requested_at"], scheduled_for=erasure["scheduled_for"],
            point_cents_to_forfeit=erasure["point_cents_to_forfeit"], rewards_to_void=erasure["rewards_to_void"],
            reason=erasure["reason"], erased_at=erasure["erased_at"]),
        disclosures=None if disclosed is None else Disclosed(
            version=disclosed["version"], categories=msgspec.convert(disclosed["categories"], list[CategoryDisclosed]),
            sources=disclosed["sources"], purposes=disclosed["purposes"]),
    )


def _published(row: asyncpg.Record, document_id: int | None, prefix: str) -> PublishedText | None:
    if document_id is None:
        return None
    return PublishedText(document_id=document_id, version=row[f"{prefix}_text_version"], sha256=row[f"{prefix}_sha256"],
                         effective_from=row[f"{prefix}_effective_from"])


def _consent(c: asyncpg.Record) -> ConsentRecord:
    return ConsentRecord(
        consent_id=c["id"], terms_version=c["terms_version"], notice_version=c["notice_version"], channel=c["channel"],
        guardian_consent=c["guardian_consent"], accepted_at=c["accepted_at"], withdrawn_at=c["withdrawn_at"],
        terms_text=_published(c, c["terms_document_id"], "terms"),
        notice_text=_published(c, c["notice_document_id"], "notice"))


def _purchase(p: asyncpg.Record) -> PurchaseRecord:
    body = p["body"]
    return PurchaseRecord(
        purchase_id=p["ext_id"], occurred_at=p["occurred_at"], store_id=body["store_id"], channel=body["channel"],
        currency=body.get("currency", "USD"), lines=msgspec.convert(body["lines"], list[PurchaseLine]),
        tenders=msgspec.convert(body["tenders"], list[PurchaseTender]),
        offers=msgspec.convert(body.get("offers", []), list[PurchaseOffer]),
        qualifying_cents=p["qualifying_cents"], point_cents_earned=p["point_cents"],
        bonus_point_cents=p["bonus_point_cents"], rules_version=p["rules_version"], recorded_at=p["created_at"])


_AT, _BOUGHT, _EXPIRES = "2026-11-20T17:02:11.418Z", "2026-11-25T10:00:00Z", "2027-02-23T10:00:00Z"
_CODES = ("WR3F9A61C0B27D4E85", "WR8C1D07E4A95B3F26")
register_examples({MemberExport: {
    "exported_at": "2026-12-01T09:00:00Z",
    "member": {"member_id": 1, "card_number": "7020418733569012", "status": "active", "name": "Ann Lee",
               "email": "ann@example.com", "phone": "+15551234567", "birth_date": "1990-04-01", "state": "CA",
               "external_id": None, "enrolled_at": _AT, "cancelled_at": None, "erased_at": None, "points": 24,
               "point_cents": 2468},
    "consents": [{"consent_id": 1, "terms_version": "2023-10-30", "notice_version": "2023-10-30", "channel": "online",
                  "guardian_consent": False, "accepted_at": _AT, "withdrawn_at": None,
                  "terms_text": {"document_id": 1, "version": "2023-10-30", "sha256": "5f2c" + "0" * 60,
                                 "effective_from": "2023-10-30T07:00:00Z"},
                  "notice_text": {"document_id": 2, "version": "2023-10-30", "sha256": "9a1e" + "0" * 60,
                                  "effective_from": "2023-10-30T07:00:00Z"}}],
    "purchases": [{"purchase_id": "pos-12-000981", "occurred_at": _BOUGHT, "store_id": "S012", "channel": "store",
                   "currency": "USD",
                   "lines": [{"sku": "JKT-221", "category": "apparel", "quantity": 1, "amount_cents": 31234}],
                   "tenders": [{"method": "westique_credit_card", "amount_cents": 31234}], "offers": [],
                   "qualifying_cents": 31234, "point_cents_earned": 62468, "bonus_point_cents": 31234,
                   "rules_version": 1, "recorded_at": "2026-11-25T10:00:01.204Z"}],
    "returns": [],
    "ledger": [{"entry_id": 1, "kind": "earn", "point_cents": 31234, "occurred_at": _BOUGHT,
                "recorded_at": "2026-11-25T10:00:01.204Z", "purchase_id": "pos-12-000981", "return_id": None,
                "reward_code": None, "rules_version": 1}],
    "adjustments": [],
    "changes": [{"kind": "enrolled", "occurred_at": _AT, "details": {}, "counterpart_member_id": None}],
    "enrollment_retries": [],
    "rewards": [{"code": code, "value_cents": 1000, "status": "issued", "issued_at": _BOUGHT, "expires_at": _EXPIRES,
                 "issued_by_purchase": "pos-12-000981", "redeemed_at": None, "redeemed_in_purchase": None,
                 "voided_at": None} for code in _CODES],
    "subscriptions": [{"subscription_id": 7, "channel": "email", "address": "ann@example.com", "status": "active",
                       "source": "online", "subscribed_at": _AT, "unsubscribed_at": None, "erased_at": None,
                       "consent_events": [{"event_id": 12, "kind": "subscribed", "source": "online", "detail": None,
                                           "occurred_at": _AT}],
                       "offers_received": [{"code": "SPRING10", "value_cents": 1000,
                                            "sent_at": "2026-12-01T08:00:00Z"}]}],
    "events": [{"event_id": 3, "type": "member.enrolled", "occurred_at": _AT,
                "data": {"state": "CA", "channel": "online"}}],
    "access": {"sign_in_links": [{"channel": "email", "created_at": "2026-11-30T18:00:00Z",
                                  "expires_at": "2026-11-30T18:15:00Z", "used_at": "2026-11-30T18:02:40Z"}],
               "sessions": [{"started_at": "2026-11-30T18:02:40Z", "last_seen_at": "2026-11-30T18:09:12Z",
                             "ended_at": "2026-11-30T18:09:30Z"}],
               "guest_tokens": []},
    "privacy_requests": [{"request_id": 4, "type": "access", "status": "completed", "channel": "online",
                          "verification_method": "signed_in", "verified_at": "2026-11-30T18:03:00Z", "details": None,
                          "received_at": "2026-11-30T18:03:00Z", "confirm_by": "2026-12-14T23:59:59-08:00",
                          "due_at": "2027-01-13T23:59:59-08:00", "confirmed_at": "2026-11-30T18:03:00Z",
                          "closed_at": "2026-12-01T09:00:00Z", "outcome": "in_whole", "reason": None}],
    "erasure": None,
    "disclosures": {"version": 1,
                    "categories": [{"name": "Identifiers", "examples": "name, email address, phone number",
                                    "programs": ["rewards", "mailing_list"]}],
                    "sources": ["You, when you enroll or update your profile"],
                    "purposes": ["To run the rewards program: points, rewards and your activity"]},
}})
