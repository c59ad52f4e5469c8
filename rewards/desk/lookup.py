"""Find a member by phone, email, external id or card number, as a register or the desk asks.

The phone and email are normalized as enrollment normalizes them (`rewards.contacts`) and
matched against the columns that keep the normalized forms; a card number must pass its
check digit first. Checkout sees active members; guest services also sees cancelled ones;
an erased member (who has no email, phone or external id left) and a merged one (it lives on
in the member it was merged into) are never found. The answer names no contact data: the
first name and the initial of the last, the card number and the points.

Concurrent lookups in a worker share one statement, as balance reads do (`rewards.coalescing`).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import asyncpg

from rewards import coalescing, contacts, errors, rules
from rewards.cards import is_card_number
from rewards.coalescing import Coalescer
from rewards.db import Database
from rewards.members import email_of, phone_compared
from rewards.schemas import MemberFound, MembersFound

Kind = Literal["phone", "email", "external_id", "card"]
COLUMN: dict[Kind, str] = {"phone": "phone_normalized", "email": "email_normalized", "external_id": "external_id",
                           "card": "card_number"}
MOST_FOUND = 20  # several cancelled memberships may share a phone; a register needs the few newest


class Ask(NamedTuple):
    kind: Kind
    value: str
    cancelled_too: bool


# one branch per kind, each an index lookup (members_phone, members_email, members_external_id,
# members_card_number); `n` is the asker's place in the batch
FIND = "\nUNION ALL\n".join(f"""
SELECT q.n, m.id, m.status, m.name, m.card_number, m.point_cents
FROM unnest($1::text[], $2::text[], $3::bool[]) WITH ORDINALITY AS q(kind, value, cancelled_too, n)
JOIN members m ON m.{column} = q.value
WHERE q.kind = '{kind}' AND m.erased_at IS NULL
  AND (m.status = 'active' OR (q.cancelled_too AND m.status = 'cancelled'))""" for kind, column in COLUMN.items())


def ask_of(*, phone: str | None, email: str | None, external_id: str | None, card: str | None,
           cancelled_too: bool) -> Ask:
    """The lookup asked for (exactly one of the four), normalized; 422 naming what is wrong."""
    given = {k: v for k, v in (("phone", phone), ("email", email), ("external_id", external_id), ("card", card))
             if v is not None}
    if len(given) != 1:
        raise errors.ValidationFailed("name exactly one of phone, email, external_id or card",
                                      field=", ".join(given) or None)
    kind, value = next(iter(given.items()))
    if kind == "phone":
        value = phone_compared(value)
    elif kind == "email":
        _, value = email_of(value)
    elif kind == "card":
        value = value.strip()
        if not is_card_number(value):
            raise errors.ValidationFailed("a card number is 16 digits whose last is its check digit; this one is "
                                          "mistyped or misread", field="card")
    return Ask(kind, value, cancelled_too)  # type: ignore[arg-type]


async def _find_batch(db: Database, asks: list[Ask]) -> list[MembersFound]:
    found: list[list[asyncpg.Record]] = [[] for _ in asks]
    for row in await db.run(FIND, [a.kind for a in asks], [a.value for a in asks], [a.cancelled_too for a in asks]):
        found[row["n"] - 1].append(row)
    return [MembersFound(items=[
        MemberFound(member_id=r["id"], status=r["status"], display_name=contacts.display_name(r["name"]),
                    card_number=r["card_number"], points=rules.whole_points(r["point_cents"]))
        for r in sorted(rows, key=lambda r: (r["status"] != "active", -r["id"]))[:MOST_FOUND]]) for rows in found]


def lookups(db: Database) -> Coalescer[Ask, MembersFound]:
    return coalescing.shared(db, "member_lookups", lambda: Coalescer(
        lambda asks: _find_batch(db, asks), in_flight=2, overlap_at=4))


async def find(db: Database, ask: Ask) -> MembersFound:
    """The members matching, the active one first, then cancelled ones, newest first."""
    return await lookups(db).submit(ask)
