"""Correct a member's personal data (the consumer's right to correct): name, email, phone, birth
date, state.

A correction keeps what enrollment guarantees: an email or phone is normalized as at enrollment
and stays unique among active members (409 `duplicate_member` naming the member who has it); a
corrected birth date or state passes the age gate again (a guest found to be under 13, or under
18 in Maine, is refused here: their data is then erased, `DELETE /v1/members/{id}/personal-data`).
What is recorded is which fields changed and who changed them, never the values before
(`member_changes`), and a `member.updated` event names the fields. A field given with the value
it already has is no change; a correction that changes nothing records nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
from sqlalchemy import BigInteger, bindparam, func, select, update

from rewards import errors, member_changes
from rewards.db import Database
from rewards.engine import Actor
from rewards.events import emit
from rewards.members import check_age, email_of, phone_compared, profile_on, refuse_duplicate
from rewards.schemas import CorrectionIn, MemberOut
from rewards.statements import Statement
from rewards.tables import consents, members

FIELDS = ("name", "email", "phone", "birth_date", "state")
COLUMNS = ("name", "email", "email_normalized", "phone", "phone_normalized", "birth_date", "state")
# each column given a new value (none is corrected to null), the others kept
CORRECT = Statement(update(members).where(members.c.id == bindparam("member_id")).values({
    name: func.coalesce(bindparam(f"new_{name}", type_=members.c[name].type), members.c[name]) for name in COLUMNS}))
_member_id = bindparam("member_id", type_=BigInteger)
# the member's latest consent (whether a guardian consented), for the age gate
_latest_consent = (select(consents.c.guardian_consent).where(consents.c.member_id == members.c.id)
                   .order_by(consents.c.id.desc()).limit(1).scalar_subquery())
CURRENT = Statement(
    select(members.c.status, members.c.erased_at, members.c.merged_into, members.c.external_id,
           *(members.c[name] for name in COLUMNS), _latest_consent.label("guardian_consent"))
    .where(members.c.id == _member_id).with_for_update(of=members))
GUARDIAN = Statement(
    update(consents)
    .where(consents.c.id == select(func.max(consents.c.id)).where(consents.c.member_id == _member_id)
           .scalar_subquery(), consents.c.guardian_consent.is_(False))
    .values(guardian_consent=True))




async def correct(db: Database, member_id: int, correction: CorrectionIn, actor: Actor) -> MemberOut:
    """Apply the correction; the profile as it is afterwards."""
    asked = {name for name in (*FIELDS, "guardian_consent") if getattr(correction, name) is not None}
    if not asked:
        raise errors.ValidationFailed(f"name at least one of {', '.join(FIELDS)} to correct")
    email = email_of(correction.email) if correction.email is not None else None
    phone = (correction.phone.strip(), phone_compared(correction.phone)) if correction.phone is not None else None

    async def work(conn: asyncpg.Connection) -> MemberOut:
        m = await CURRENT.fetchrow(conn, member_id=member_id)
        if m is None:
            raise errors.NotFound(f"member {member_id} does not exist")
        if m["status"] == "merged":
            raise errors.MemberMerged(f"member {member_id} was merged into member {m['merged_into']}; correct that "
                                      "member", merged_into=m["merged_into"])
        if m["erased_at"] is not None:
            raise errors.MemberNotActive(f"member {member_id}'s personal data was erased; there is nothing to correct")
        new: dict[str, Any] = {}
        if correction.name is not None and correction.name != m["name"]:
            new["name"] = correction.name
        if email is not None and email[0] != m["email"]:
            new["email"], new["email_normalized"] = email
        if phone is not None and phone[1] != m["phone_normalized"]:
            new["phone"], new["phone_normalized"] = phone
        if correction.birth_date is not None and correction.birth_date != m["birth_date"]:
            new["birth_date"] = correction.birth_date
        if correction.state is not None and correction.state != m["state"]:
            new["state"] = correction.state
        guardian = bool(correction.guardian_consent) or bool(m["guardian_consent"])
        if "birth_date" in new or "state" in new:
            check_age(new.get("birth_date", m["birth_date"]), new.get("state", m["state"]), guardian,
                      datetime.now(UTC).date())
        if m["status"] == "active" and ("email" in new or "phone" in new):
            await refuse_duplicate(conn, new.get("email_normalized"), new.get("phone_normalized"), None,
                                   besides=member_id)
        fields = [name for name in FIELDS if name in new]
        if correction.guardian_consent and await GUARDIAN.execute(conn, member_id=member_id) != "UPDATE 0":
            fields.append("guardian_consent")
        if new:
            # a racing enrollment of the same email or phone: a unique violation, and the transaction is
            # run again (refused above, then)
            await CORRECT.execute(conn, member_id=member_id, **{f"new_{name}": new.get(name) for name in COLUMNS})
        if fields:
            await member_changes.record(conn, member_id, "corrected", actor, details={"fields": fields})
            await emit(conn, "member.updated", member_id=member_id, data={"fields": fields})
        return await profile_on(conn, member_id)

    return await db.transaction(work)
