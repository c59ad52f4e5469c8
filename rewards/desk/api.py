"""The desk's routes: find a member, correct, adjust, merge; list and revoke API keys."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, delete, get, patch, post
from litestar.datastructures import State
from litestar.params import JSONBody, Parameter

from rewards import errors
from rewards.access import scoped
from rewards.auth import Principal, actor_of, principal_of
from rewards.controllers import KEY_PATTERN, MemberPath, answer
from rewards.desk import correction, keys, lookup
from rewards.engine import Adjust, Merge, unwrap
from rewards.schemas import (
    AdjustmentIn,
    AdjustmentOut,
    CorrectionIn,
    KeyOut,
    KeysPage,
    MemberNumber,
    MemberOut,
    MembersFound,
    MergeIn,
    MergeOut,
)

# What one adjustment may add or take, in point-cents, by the caller's scope (the largest of its
# scopes applies); `rewards import adjustments` runs as the service and may go to the field's bound.
ADJUSTMENT_LIMITS = {"guest_services": 300_000, "admin": 100_000_000}

KeyPath = Annotated[MemberNumber, Parameter(
    description="The key's id (`key_id` in the list): plain digits, no sign, no leading zero.",
    schema_extra={"type": "integer", "minimum": 1, "maximum": 2**62})]



def check_adjustment_limit(principal: Principal, point_cents: int) -> None:
    limit = max((ADJUSTMENT_LIMITS.get(scope, 0) for scope in principal.scopes), default=0)
    if abs(point_cents) > limit:
        raise errors.Forbidden(f"this key may adjust at most {limit:,} point-cents ({limit // 100:,} points) at a "
                               "time; a larger adjustment needs an admin key")


@scoped("checkout", "guest_services")
@get("/v1/members", tags=["desk"], summary="Find a member by phone, email, external id or card number")
async def find_members(
    state: State,
    request: Request[Any, Any, Any],
    phone: Annotated[str | None, Parameter(max_length=40, description="a phone number, in any common form")] = None,
    email: Annotated[str | None, Parameter(max_length=300, description="an email address, in any case")] = None,
    external_id: Annotated[str | None, Parameter(max_length=64, pattern=KEY_PATTERN,
                                                 description="the retailer's own id for the member")] = None,
    card: Annotated[str | None, Parameter(max_length=32, description="the member's 16-digit card number")] = None,
) -> MembersFound:
    """Find a member (exactly one of `phone`, `email`, `external_id`, `card`). Phones and emails
    are compared as enrollment keeps them (`(213) 555-0123` is `+12135550123`; email in any case).
    Checkout keys find active members; guest services also cancelled ones; an erased or merged
    member is never found. No match is 200 with no items. The answer has no contact data: the
    first name and the initial of the last, the card number and the points."""
    principal = principal_of(request)
    ask = lookup.ask_of(phone=phone, email=email, external_id=external_id, card=card,
                        cancelled_too="guest_services" in principal.scopes)
    return await lookup.find(state.db, ask)


@scoped("guest_services", errors=[errors.NotFound, errors.MemberNotActive, errors.MemberMerged,
                                  errors.DuplicateMember, errors.AgeRestricted, errors.GuardianConsentRequired])
@patch("/v1/members/{member_id:str}", tags=["members"], summary="Correct a member's personal data")
async def correct_member(member_id: MemberPath, data: JSONBody[CorrectionIn], state: State,
                         request: Request[Any, Any, Any]) -> MemberOut:
    """Correct name, email, phone, birth date or state (any of them). An email or phone stays
    unique among active members and a birth date or state passes the age gate again; which
    fields changed (never their old values) and who changed them is recorded, and a
    `member.updated` event names the fields."""
    return await correction.correct(state.db, member_id, data, actor_of(request))


@scoped("guest_services", "admin", errors=[errors.NotFound, errors.MemberNotActive, errors.MemberMerged,
                                           errors.IdempotencyConflict], replays=True)
@post("/v1/members/{member_id:str}/adjustments", tags=["desk"], summary="Add or take points with a reason")
async def adjust_points(member_id: MemberPath, data: JSONBody[AdjustmentIn], state: State,
                        request: Request[Any, Any, Any]) -> Response[AdjustmentOut]:
    """Add (positive `point_cents`) or take (negative) points, with a reason and a note. A positive
    adjustment issues the rewards the balance then allows; a negative one may leave the balance
    below zero. A guest services key adjusts by at most 300,000 point-cents (3,000 points) at a
    time, an admin key by up to 100,000,000. Retry freely: `adjustment_id` is the idempotency key."""
    check_adjustment_limit(principal_of(request), data.point_cents)
    return answer(*unwrap(await state.engine.submit(Adjust.of(member_id, data, actor_of(request)))))


@scoped("guest_services", errors=[errors.NotFound, errors.MemberNotActive, errors.MemberMerged], replays=True)
@post("/v1/members/{member_id:str}/merge", tags=["desk"], summary="Fold a duplicate member into this one")
async def merge_members(member_id: MemberPath, data: JSONBody[MergeIn], state: State,
                        request: Request[Any, Any, Any]) -> Response[MergeOut]:
    """Fold the duplicate `from_member_id` into this member: its balance (`merge_out`/`merge_in`
    entries) and its open rewards (codes and expiry kept) move here; it becomes `merged`, its
    email and phone free again; its purchases are refused with `member_merged` naming this
    member, and returns of its earlier purchases take the points back from this member. The
    same merge again answers 200 with the first answer."""
    return answer(*unwrap(await state.engine.submit(Merge(int(member_id), data.from_member_id, actor_of(request)))))


@scoped("admin")
@get("/v1/keys", tags=["keys"], summary="List the API keys")
async def get_keys(
    state: State,
    cursor: Annotated[str | None, Parameter(max_length=200)] = None,
    limit: Annotated[int, Parameter(ge=1, le=500)] = 100,
) -> KeysPage:
    """Every API key and guest token, oldest first: id, scopes, label, member (a guest token's),
    created and revoked. Tokens are never shown again after they are made."""
    return await keys.list_keys(state.db, cursor=cursor, limit=limit)


@scoped("admin", errors=[errors.NotFound])
@delete("/v1/keys/{key_id:str}", status_code=200, tags=["keys"], summary="Revoke an API key")
async def revoke_key(key_id: KeyPath, state: State) -> KeyOut:
    """Revoke a key: it stops working at once, on every worker and host. Revoking it again
    answers the same."""
    _, key = await keys.revoke_key(state.db, key_id)
    state.auth.forget(key_id)
    return key


ROUTES = [find_members, correct_member, adjust_points, merge_members, get_keys, revoke_key]
