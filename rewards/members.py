"""Members: enrollment (age gate, consent), profile, balance, activity, erasure (cancellation is a posting:
`rewards.engine`)."""

from __future__ import annotations

import base64
from datetime import UTC, date, datetime

import asyncpg
from sqlalchemy import Integer, bindparam, insert, select, true

from rewards import coalescing, errors, rules
from rewards.coalescing import Coalescer
from rewards.cards import new_card_number
from rewards.db import Database
from rewards.events import emit
from rewards.engine import Actor, Cancel, Engine, unwrap, apply
from rewards.rulebook import Rulebook
from rewards.schemas import (
    ActivityEntry,
    ActivityPage,
    BalanceOut,
    CancelOut,
    ConsentOut,
    EnrolledOut,
    EnrollmentIn,
    ErasureOut,
    MemberOut,
    RewardOut,
    RewardStatusOut,
)
from rewards.statements import Statement
from rewards.tables import consents, ledger, members, purchase_returns, purchases, rewards

ADULT_AGE = {"ME": 18}  # states where a minor may not join at all, and the age of majority there
MINIMUM_AGE = 13
GUARDIAN_AGE = 18


def age_on(birth_date: date, today: date) -> int:
    return today.year - birth_date.year - ((today.month, today.day) < (birth_date.month, birth_date.day))


def check_age(birth_date: date, state: str, guardian_consent: bool, today: date) -> None:
    """The policy's age gate: under 13 never, under 18 not in Maine, 13-17 elsewhere with a guardian."""
    if birth_date > today:
        raise errors.ValidationFailed("birth_date is in the future", field="birth_date")
    age = age_on(birth_date, today)
    if age > 130:
        raise errors.ValidationFailed("birth_date is not plausible", field="birth_date")
    if age < MINIMUM_AGE:
        raise errors.AgeRestricted(f"guests under {MINIMUM_AGE} cannot join the program")
    if age < ADULT_AGE.get(state, 0):
        raise errors.AgeRestricted(f"guests under {ADULT_AGE[state]} in {state} cannot join the program")
    if age < GUARDIAN_AGE and not guardian_consent:
        raise errors.GuardianConsentRequired("guests aged 13 to 17 need guardian_consent to join")


NEW_MEMBER = Statement(
    insert(members)
    .values({name: bindparam(name) for name in ("external_id", "name", "email", "phone", "birth_date", "state",
                                                "card_number")})
    .returning(members.c.id, members.c.status, members.c.enrolled_at)
)
NEW_CONSENT = Statement(insert(consents).values({
    name: bindparam(name)
    for name in ("member_id", "terms_version", "notice_version", "channel", "guardian_consent", "accepted_at",
                 "terms_document_id", "notice_document_id")
}))


# Once a kind of document (terms, notice) has a published version, enrollment must name one in
# effect (a register may still show the previous one); the consent then points at its text.
CONSENTED_DOCUMENTS = """
    SELECT kind, max(id) FILTER (WHERE version = CASE kind WHEN 'terms' THEN $1 ELSE $2 END
                                   AND effective_from <= now()) AS id
    FROM program_documents GROUP BY kind"""


async def consented_documents(conn: asyncpg.Connection, enrollment: EnrollmentIn) -> dict[str, int | None]:
    found = {r["kind"]: r["id"] for r in await conn.fetch(CONSENTED_DOCUMENTS, enrollment.terms_version,
                                                          enrollment.notice_version)}
    if "notice" in found and found["notice"] is None:
        raise errors.UnknownNoticeVersion(f"notice_version {enrollment.notice_version} is not a published notice "
                                          "in effect", field="notice_version")
    if "terms" in found and found["terms"] is None:
        raise errors.UnknownTermsVersion(f"terms_version {enrollment.terms_version} is not published terms in "
                                         "effect", field="terms_version")
    return found


async def enroll(db: Database, enrollment: EnrollmentIn) -> EnrolledOut:
    # the gate runs before anything touches the database: a refused guest leaves no trace
    check_age(enrollment.birth_date, enrollment.state, enrollment.guardian_consent, datetime.now(UTC).date())

    async def work(conn: asyncpg.Connection) -> EnrolledOut:
        documents = await consented_documents(conn, enrollment)
        card_number = new_card_number()
        try:
            row = await NEW_MEMBER.fetchrow(
                conn, external_id=enrollment.external_id, name=enrollment.name, email=enrollment.email,
                phone=enrollment.phone, birth_date=enrollment.birth_date, state=enrollment.state,
                card_number=card_number,
            )
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name == "members_card_number":
                raise  # a random number already taken: the transaction is run again, with another
            raise errors.DuplicateMember(
                "an active member already has this email, phone or external_id",
                constraint=exc.constraint_name,
            ) from exc
        assert row is not None  # an INSERT … RETURNING answers its row
        await NEW_CONSENT.execute(
            conn, member_id=row["id"], terms_version=enrollment.terms_version,
            notice_version=enrollment.notice_version, channel=enrollment.channel,
            guardian_consent=enrollment.guardian_consent, accepted_at=row["enrolled_at"],
            terms_document_id=documents.get("terms"), notice_document_id=documents.get("notice"),
        )
        await emit(conn, "member.enrolled", member_id=row["id"], occurred_at=row["enrolled_at"],
                   data={"state": enrollment.state, "channel": enrollment.channel})
        return EnrolledOut(member_id=row["id"], card_number=card_number, status=row["status"],
                           enrolled_at=row["enrolled_at"])

    return await db.transaction(work)


async def _member_row(conn: asyncpg.Connection, member_id: int, *, lock: bool = False) -> asyncpg.Record:
    row = await conn.fetchrow(
        "SELECT * FROM members WHERE id = $1" + (" FOR UPDATE" if lock else ""), member_id
    )
    if row is None:
        raise errors.NotFound(f"member {member_id} does not exist")
    return row


MEMBER = Statement(select(members).where(members.c.id == bindparam("member_id")))
LATEST_CONSENT = Statement(
    select(consents).where(consents.c.member_id == bindparam("member_id")).order_by(consents.c.id.desc()).limit(1)
)


async def profile(db: Database, member_id: int) -> MemberOut:
    async with db.connection() as conn:
        m = await MEMBER.fetchrow(conn, member_id=member_id)
        if m is None:
            raise errors.NotFound(f"member {member_id} does not exist")
        consent = await LATEST_CONSENT.fetchrow(conn, member_id=member_id)
    return MemberOut(
        member_id=m["id"], status=m["status"], name=m["name"], email=m["email"], phone=m["phone"],
        birth_date=m["birth_date"], state=m["state"], external_id=m["external_id"],
        enrolled_at=m["enrolled_at"], cancelled_at=m["cancelled_at"], erased_at=m["erased_at"],
        consent=None if consent is None else ConsentOut(
            terms_version=consent["terms_version"], notice_version=consent["notice_version"],
            channel=consent["channel"], guardian_consent=consent["guardian_consent"],
            accepted_at=consent["accepted_at"], withdrawn_at=consent["withdrawn_at"],
        ),
    )


def reward_status(status: str, expires_at: datetime, now: datetime) -> str:
    return "expired" if status == "issued" and expires_at <= now else status


REWARDS_SHOWN = 100  # besides every open reward, the balance shows this many of the newest


BALANCES = """
    SELECT m.id, m.status AS member_status, m.point_cents,
           w.code, w.value_cents, w.status, w.issued_at, w.expires_at
    FROM members m LEFT JOIN rewards w ON w.member_id = m.id
         AND (w.ordinal > m.rewards_issued - $2 OR (w.status = 'issued' AND w.expires_at > $3))
    WHERE m.id = ANY ($1::bigint[]) ORDER BY m.id, w.ordinal DESC"""


async def _read_balances(db: Database, member_ids: list[int]) -> list[tuple[list[asyncpg.Record], datetime]]:
    """One round trip for the balances that concurrent requests asked for: per member, its rows
    (the member, every open reward, and the newest others) and the time they were read at."""
    now = datetime.now(UTC)
    rows: dict[int, list[asyncpg.Record]] = {}
    for r in await db.run(BALANCES, sorted(set(member_ids)), REWARDS_SHOWN, now):
        rows.setdefault(r["id"], []).append(r)
    return [(rows.get(member_id, []), now) for member_id in member_ids]


def balance_reads(db: Database) -> Coalescer[int, tuple[list[asyncpg.Record], datetime]]:
    # reads commit nothing: two in flight keep the database busy while the worker answers; the
    # second goes once four reads wait (bigger batches, fewer round trips: 10,000-10,300 reads/s
    # against 9,300-10,500 for a second batch per straggler, bench/README.md)
    return coalescing.shared(db, "balance_reads", lambda: Coalescer(
        lambda ids: _read_balances(db, ids), in_flight=2, overlap_at=4))


async def balance(db: Database, rulebook: Rulebook, member_id: int) -> BalanceOut:
    rows, now = await balance_reads(db).submit(member_id)
    if not rows:
        raise errors.NotFound(f"member {member_id} does not exist")
    status, point_cents = rows[0]["member_status"], rows[0]["point_cents"]
    current = await rulebook.current()
    return BalanceOut(
        member_id=member_id,
        status=status,
        points=rules.whole_points(point_cents),
        point_cents=point_cents,
        points_to_next_reward=rules.points_to_next_reward(point_cents, current),
        rewards=[
            RewardOut(code=r["code"], value_cents=r["value_cents"],
                      status=reward_status(r["status"], r["expires_at"], now),  # type: ignore[arg-type]
                      issued_at=r["issued_at"], expires_at=r["expires_at"])
            for r in rows if r["code"] is not None
        ],
    )


REWARD = Statement(select(rewards).where(rewards.c.code == bindparam("code")))


async def reward(db: Database, code: str) -> RewardStatusOut:
    found = await db.run(REWARD, code=code)
    if not found:
        raise errors.NotFound(f"reward {code} does not exist")
    r = found[0]
    return RewardStatusOut(
        code=r["code"], member_id=r["member_id"], value_cents=r["value_cents"],
        status=reward_status(r["status"], r["expires_at"], datetime.now(UTC)),  # type: ignore[arg-type]
        issued_at=r["issued_at"], expires_at=r["expires_at"], redeemed_at=r["redeemed_at"],
    )


def encode_cursor(entry_id: int) -> str:
    return base64.urlsafe_b64encode(f"before:{entry_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, number = text.partition(":")
        if prefix != "before" or not 0 <= int(number) < 2**63:  # a bigint, or it is not ours
            raise ValueError(prefix)
        return int(number)
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.ValidationFailed("cursor is not one this service gave out", field="cursor") from exc


MEMBER_EXISTS = Statement(select(true()).where(members.c.id == bindparam("member_id")))
# a page of the member's ledger, newest first, each entry with what it refers to by its public id
ACTIVITY = Statement(
    select(
        ledger.c.id, ledger.c.kind, ledger.c.point_cents, ledger.c.occurred_at, ledger.c.created_at,
        ledger.c.rules_version, purchases.c.ext_id.label("purchase"), purchase_returns.c.ext_id.label("ret"),
        rewards.c.code.label("reward"),
    )
    .select_from(
        ledger.outerjoin(purchases, purchases.c.id == ledger.c.purchase_id)
        .outerjoin(purchase_returns, purchase_returns.c.id == ledger.c.return_id)
        .outerjoin(rewards, rewards.c.id == ledger.c.reward_id)
    )
    .where(ledger.c.member_id == bindparam("member_id"), ledger.c.id < bindparam("before"))
    .order_by(ledger.c.id.desc())
    .limit(bindparam("limit", type_=Integer))
)


async def activity(db: Database, member_id: int, *, cursor: str | None, limit: int) -> ActivityPage:
    """The member's ledger, newest first; `next_cursor` continues where this page ends."""
    before = decode_cursor(cursor) if cursor else 2**62
    async with db.connection() as conn:
        if not await MEMBER_EXISTS.fetchval(conn, member_id=member_id):
            raise errors.NotFound(f"member {member_id} does not exist")
        rows = await ACTIVITY.fetch(conn, member_id=member_id, before=before, limit=limit + 1)
    page = rows[:limit]
    return ActivityPage(
        member_id=member_id,
        entries=[
            ActivityEntry(
                entry_id=r["id"], kind=r["kind"], point_cents=r["point_cents"], occurred_at=r["occurred_at"],
                recorded_at=r["created_at"], purchase_id=r["purchase"], return_id=r["ret"],
                reward_code=r["reward"], rules_version=r["rules_version"],
            )
            for r in page
        ],
        next_cursor=encode_cursor(page[-1]["id"]) if len(rows) > limit else None,
    )


# Every column that holds a member's personal information, table by table. Erasure
# clears them all; a test checks that no table keeps a trace.
PERSONAL_DATA_ERASERS: list[str] = [
    # first, while the member's email and phone are still known: subscriptions to them made
    # without member_id become the member's, and each active one records its opt-out
    """WITH linked AS (
           UPDATE subscriptions s SET member_id = m.id FROM members m
           WHERE m.id = $1 AND s.member_id IS NULL AND s.address IS NOT NULL
             AND ((s.channel = 'email' AND lower(s.address) = lower(m.email))
               OR (s.channel = 'sms' AND s.address IN ('+' || ltrim(m.phone, '+'), '+1' || m.phone)))
           RETURNING s.id),
       stopped AS (
           INSERT INTO subscription_events (subscription_id, kind, source, occurred_at)
           SELECT id, 'unsubscribed', 'erasure', $2 FROM subscriptions
           WHERE (member_id = $1 OR id IN (SELECT id FROM linked)) AND status = 'active'
           RETURNING subscription_id)
       -- each opt-out's subscription.changed event, as rewards.mailing writes it
       INSERT INTO events (type, member_id, occurred_at, data)
       SELECT 'subscription.changed', $1, $2, jsonb_build_object(
                  'subscription_id', s.id, 'channel', s.channel, 'change', 'unsubscribed', 'status', 'unsubscribed',
                  'source', 'erasure')
       FROM stopped JOIN subscriptions s ON s.id = stopped.subscription_id""",
    """UPDATE members SET name = NULL, email = NULL, phone = NULL, birth_date = NULL, external_id = NULL,
                          erased_at = $2 WHERE id = $1""",
    # the messages to the member's addresses (offer.delivery events) keep what was sent, not where
    """UPDATE events SET data = (data - 'address' - 'subject' - 'text' - 'unsubscribe_url' - 'headers')
                                || jsonb_build_object('erased_at', $2::timestamptz)
       WHERE type = 'offer.delivery'
         AND data ->> 'subscription_id' IN (SELECT id::text FROM subscriptions WHERE member_id = $1)""",
    """UPDATE subscriptions SET address = NULL, erased_at = $2, status = 'unsubscribed',
                                unsubscribed_at = coalesce(unsubscribed_at, $2) WHERE member_id = $1""",
]


async def erase(engine: Engine, member_id: int, actor: Actor, *, as_of: datetime | None = None) -> ErasureOut:
    """Cancel (through the engine: points forfeited, open rewards voided), then erase name, email,
    phone and birth date for good, in one transaction; the anonymous ledger stays. `as_of`:
    erased as if at that moment (tests of past periods, as the engine's commands)."""

    async def work(conn: asyncpg.Connection) -> ErasureOut:
        (outcome,) = await apply(conn, [Cancel(member_id, actor, as_of)], engine.rulebook, engine.limits)
        unwrap(outcome)
        erased_at = await conn.fetchval("SELECT erased_at FROM members WHERE id = $1", member_id)
        if erased_at is None:
            erased_at = as_of or await conn.fetchval("SELECT clock_timestamp()")
            for statement in PERSONAL_DATA_ERASERS:
                await conn.execute(statement, member_id, erased_at)
        return ErasureOut(member_id=member_id, status="cancelled", erased_at=erased_at)

    return await engine.db.transaction(work)
