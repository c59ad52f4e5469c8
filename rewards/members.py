"""Members: enrollment (age gate, consent), profile, balance, activity (cancellation is a posting:
`rewards.engine`; erasure is `rewards.privacy.erasure`)."""

from __future__ import annotations

import base64
import unicodedata
from datetime import UTC, date, datetime
from typing import NamedTuple

import asyncpg
import msgspec
from sqlalchemy import (
    BigInteger,
    Integer,
    Text,
    bindparam,
    case,
    func,
    insert,
    select,
    true,
)

from rewards import coalescing, contacts, errors, member_changes, rules
from rewards.cards import new_card_number
from rewards.coalescing import Coalescer
from rewards.db import Database
from rewards.engine import Actor, CarryDebt, Engine, apply, unwrap
from rewards.engine.planner import brief
from rewards.events import emit
from rewards.idempotency import canonical, fingerprint
from rewards.rulebook import Rulebook
from rewards.schemas import (
    ActivityEntry,
    ActivityPage,
    BalanceOut,
    ConsentOut,
    EnrolledOut,
    EnrollmentIn,
    MemberOut,
    RewardOut,
    RewardStatusOut,
)
from rewards.statements import Statement
from rewards.tables import (
    adjustments,
    api_keys,
    consents,
    enrollment_keys,
    ledger,
    members,
    program_documents,
    purchase_returns,
    purchases,
    rewards,
)

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
                                                "card_number", "email_normalized", "phone_normalized")})
    .returning(members.c.id, members.c.status, members.c.enrolled_at)
)
NEW_CONSENT = Statement(insert(consents).values({
    name: bindparam(name)
    for name in ("member_id", "terms_version", "notice_version", "channel", "guardian_consent", "accepted_at",
                 "terms_document_id", "notice_document_id")
}))


# Once a kind of document (terms, notice) has a published version, enrollment must name one in
# effect (a register may still show the previous one); the consent then points at its text.
_named = case((program_documents.c.kind == "terms", bindparam("terms_version", type_=Text)),
               else_=bindparam("notice_version", type_=Text))
CONSENTED_DOCUMENTS = Statement(
    select(program_documents.c.kind,
           func.max(program_documents.c.id).filter(program_documents.c.version == _named,
                                                   program_documents.c.effective_from <= func.now()).label("id"))
    .group_by(program_documents.c.kind))


async def consented_documents(conn: asyncpg.Connection, enrollment: EnrollmentIn) -> dict[str, int | None]:
    found = {r["kind"]: r["id"] for r in await CONSENTED_DOCUMENTS.fetch(
        conn, terms_version=enrollment.terms_version, notice_version=enrollment.notice_version)}
    if "notice" in found and found["notice"] is None:
        raise errors.UnknownNoticeVersion(f"notice_version {enrollment.notice_version} is not a published notice "
                                          "in effect", field="notice_version")
    if "terms" in found and found["terms"] is None:
        raise errors.UnknownTermsVersion(f"terms_version {enrollment.terms_version} is not published terms in "
                                         "effect", field="terms_version")
    return found


class Contacts(NamedTuple):
    """A guest's email and phone: as kept, and as compared (rewards.contacts)."""

    email: str
    email_normalized: str
    phone: str
    phone_normalized: str


def email_of(text: str) -> tuple[str, str]:
    """An email as kept and as compared; 422 on `email` when it is not one."""
    try:
        return contacts.email_as_given(text), contacts.normalize_email(text)
    except contacts.NotAnEmail as exc:
        raise errors.ValidationFailed(str(exc), field="email") from None


def phone_compared(text: str) -> str:
    """A phone number as compared (E.164); 422 on `phone` when it is not one."""
    try:
        return contacts.normalize_phone(text)
    except contacts.NotAPhone as exc:
        raise errors.ValidationFailed(str(exc), field="phone") from None


def contacts_of(email: str, phone: str) -> Contacts:
    """The email and phone as kept and compared; 422 on the field that is neither."""
    kept_email, compared_email = email_of(email)
    return Contacts(kept_email, compared_email, unicodedata.normalize("NFKC", phone).strip(), phone_compared(phone))


# the active member already holding an email, a phone or an external id, and which
_email, _phone = bindparam("email", type_=Text), bindparam("phone", type_=Text)
_same_email, _same_phone = members.c.email_normalized == _email, members.c.phone_normalized == _phone
HOLDER = Statement(
    select(members.c.id, case((_same_email, "email"), (_same_phone, "phone"), else_="external_id").label("field"))
    .where(members.c.status == "active", members.c.id != bindparam("besides", type_=BigInteger),
           _same_email | _same_phone | (members.c.external_id == bindparam("external_id", type_=Text)))
    .order_by(case((_same_email, 0), (_same_phone, 1), else_=2), members.c.id).limit(1))
CONSTRAINT_OF = {"email": "members_active_email", "phone": "members_active_phone",
                 "external_id": "members_active_external_id"}


async def refuse_duplicate(conn: asyncpg.Connection, email: str | None, phone: str | None, external_id: str | None,
                           *, besides: int = 0) -> None:
    """DuplicateMember naming the active member (other than `besides`) that already holds one of them.

    It names the member, not what they hold: guest services, who enroll, can find that member
    by the same email or phone anyway; a register that retries uses the Idempotency-Key."""
    holder = await HOLDER.fetchrow(conn, email=email, phone=phone, external_id=external_id, besides=besides)
    if holder is not None:
        field = holder["field"]
        raise errors.DuplicateMember(
            f"member {holder['id']} is active with this {field.replace('_', ' ')}; find it (GET /v1/members?"
            f"{field}=…) or merge the two (POST /v1/members/{{member_id}}/merge)",
            member_id=holder["id"], field=field, constraint=CONSTRAINT_OF[field])


# cancelled memberships of the same guest (by email or phone) that left a debt of points
DEBTS = Statement(
    select(members.c.id)
    .where(members.c.status == "cancelled", members.c.point_cents < 0,
           members.c.id != bindparam("member_id", type_=BigInteger), _same_email | _same_phone)
    .order_by(members.c.id))

_key_id, _key = bindparam("api_key_id", type_=BigInteger), bindparam("key", type_=Text)
# one enrollment per key at a time: a twin waits here, then finds the first answer
LOCK_ENROLLMENT_KEY = Statement(select(func.pg_advisory_xact_lock(func.hashtextextended(_key, _key_id))))
STORED_ENROLLMENT = Statement(select(enrollment_keys.c.fingerprint, enrollment_keys.c.answer)
                              .where(enrollment_keys.c.api_key_id == _key_id, enrollment_keys.c.key == _key))
STORE_ENROLLMENT = Statement(insert(enrollment_keys).values({
    name: bindparam(name) for name in ("api_key_id", "key", "fingerprint", "member_id", "answer")}))


async def enroll(engine: Engine, enrollment: EnrollmentIn, actor: Actor, *,
                 idempotency_key: str | None = None) -> tuple[bool, EnrolledOut]:
    """Enroll a guest; (created, answer). With `idempotency_key` (the caller's Idempotency-Key,
    unique per API key) the same key and body again answer (False, the first answer), another
    body is an idempotency_conflict."""
    # the gate runs before anything touches the database: a refused guest leaves no trace
    check_age(enrollment.birth_date, enrollment.state, enrollment.guardian_consent, datetime.now(UTC).date())
    given = contacts_of(enrollment.email, enrollment.phone)
    digest = fingerprint(canonical(enrollment))
    if idempotency_key is not None and actor.key_id is None:
        raise ValueError("an Idempotency-Key is the key of an API key's caller")

    async def work(conn: asyncpg.Connection) -> tuple[bool, EnrolledOut]:
        if idempotency_key is not None:
            await LOCK_ENROLLMENT_KEY.fetch(conn, key=idempotency_key, api_key_id=actor.key_id)
            stored = await STORED_ENROLLMENT.fetchrow(conn, api_key_id=actor.key_id, key=idempotency_key)
            if stored is not None:
                if bytes(stored["fingerprint"]) != digest:
                    raise errors.IdempotencyConflict(
                        f"Idempotency-Key {idempotency_key} was used before with a different enrollment")
                return False, msgspec.convert(stored["answer"], EnrolledOut)
        documents = await consented_documents(conn, enrollment)
        await refuse_duplicate(conn, given.email_normalized, given.phone_normalized, enrollment.external_id)
        card_number = new_card_number()
        # a racing twin (or a random card number already taken) is a unique violation: the
        # transaction runs again, and finds the twin above
        row = await NEW_MEMBER.fetchrow(
            conn, external_id=enrollment.external_id, name=enrollment.name, email=given.email,
            phone=given.phone, birth_date=enrollment.birth_date, state=enrollment.state, card_number=card_number,
            email_normalized=given.email_normalized, phone_normalized=given.phone_normalized,
        )
        assert row is not None  # an INSERT … RETURNING answers its row
        member_id = row["id"]
        await NEW_CONSENT.execute(
            conn, member_id=member_id, terms_version=enrollment.terms_version,
            notice_version=enrollment.notice_version, channel=enrollment.channel,
            guardian_consent=enrollment.guardian_consent, accepted_at=row["enrolled_at"],
            terms_document_id=documents.get("terms"), notice_document_id=documents.get("notice"),
        )
        await member_changes.record(conn, member_id, "enrolled", actor, occurred_at=row["enrolled_at"])
        await emit(conn, "member.enrolled", member_id=member_id, occurred_at=row["enrolled_at"],
                   data={"state": enrollment.state, "channel": enrollment.channel})
        carried = None
        debtors = [r["id"] for r in await DEBTS.fetch(conn, email=given.email_normalized,
                                                       phone=given.phone_normalized, member_id=member_id)]
        if debtors:
            (outcome,) = await apply(conn, [CarryDebt(member_id, tuple(debtors), actor)], engine.rulebook,
                                     engine.limits)
            _, carried = unwrap(outcome)
        answer = EnrolledOut(member_id=member_id, card_number=card_number, status=row["status"],
                             enrolled_at=row["enrolled_at"], balance=brief(carried.point_cents if carried else 0),
                             carried_over=carried)
        if idempotency_key is not None:
            await STORE_ENROLLMENT.execute(conn, api_key_id=actor.key_id, key=idempotency_key, fingerprint=digest,
                                           member_id=member_id, answer=msgspec.json.encode(answer).decode())
        return True, answer

    return await engine.db.transaction(work)


MEMBER = Statement(select(members).where(members.c.id == bindparam("member_id")))
LATEST_CONSENT = Statement(
    select(consents).where(consents.c.member_id == bindparam("member_id")).order_by(consents.c.id.desc()).limit(1)
)


async def profile(db: Database, member_id: int, *, staff: bool = True) -> MemberOut:
    """The profile and consent record, and who changed the member (`staff`: with who did it)."""
    async with db.connection() as conn:
        return await profile_on(conn, member_id, staff=staff)


async def profile_on(conn: asyncpg.Connection, member_id: int, *, staff: bool = True) -> MemberOut:
    m = await MEMBER.fetchrow(conn, member_id=member_id)
    if m is None:
        raise errors.NotFound(f"member {member_id} does not exist")
    consent = await LATEST_CONSENT.fetchrow(conn, member_id=member_id)
    return MemberOut(
        member_id=m["id"], status=m["status"], name=m["name"], email=m["email"],
        phone=m["phone_normalized"] or m["phone"], birth_date=m["birth_date"], state=m["state"],
        external_id=m["external_id"], enrolled_at=m["enrolled_at"], cancelled_at=m["cancelled_at"],
        erased_at=m["erased_at"], card_number=m["card_number"], merged_into=m["merged_into"],
        consent=None if consent is None else ConsentOut(
            terms_version=consent["terms_version"], notice_version=consent["notice_version"],
            channel=consent["channel"], guardian_consent=consent["guardian_consent"],
            accepted_at=consent["accepted_at"], withdrawn_at=consent["withdrawn_at"],
        ),
        changes=await member_changes.changes(conn, member_id, staff=staff),
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
    # second goes once four reads wait (bigger batches, fewer round trips; measured in bench/README.md)
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
        ledger.c.rules_version, purchases.c.ext_id.label("purchase"), purchases.c.store_id,
        purchase_returns.c.ext_id.label("ret"), rewards.c.code.label("reward"),
        adjustments.c.ext_id.label("adjustment"), adjustments.c.reason, adjustments.c.note,
        ledger.c.counterpart_member_id, ledger.c.actor_key_id, ledger.c.actor_session_id, ledger.c.actor_system,
        api_keys.c.label,
    )
    .select_from(
        ledger.outerjoin(purchases, purchases.c.id == ledger.c.purchase_id)
        .outerjoin(purchase_returns, purchase_returns.c.id == ledger.c.return_id)
        .outerjoin(rewards, rewards.c.id == ledger.c.reward_id)
        .outerjoin(adjustments, adjustments.c.id == ledger.c.adjustment_id)
        .outerjoin(api_keys, api_keys.c.id == ledger.c.actor_key_id)
    )
    .where(ledger.c.member_id == bindparam("member_id"), ledger.c.id < bindparam("before"))
    .order_by(ledger.c.id.desc())
    .limit(bindparam("limit", type_=Integer))
)


async def activity(db: Database, member_id: int, *, cursor: str | None, limit: int, staff: bool = True
                   ) -> ActivityPage:
    """The member's ledger, newest first; `next_cursor` continues where this page ends. Staff see
    who made each entry and the adjustments' notes; a guest sees neither."""
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
                reward_code=r["reward"], rules_version=r["rules_version"], store_id=r["store_id"],
                adjustment_id=r["adjustment"], reason=r["reason"], note=r["note"] if staff else None,
                counterpart_member_id=r["counterpart_member_id"],
                actor=member_changes.actor_out(r) if staff else None,
            )
            for r in page
        ],
        next_cursor=encode_cursor(page[-1]["id"]) if len(rows) > limit else None,
    )
