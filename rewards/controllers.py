"""Thin HTTP handlers: call the service function, shape the answer.

Each route declares who may call it and the errors it may answer with `rewards.access`
(`@scoped`, above the route's decorator): that makes its guard and its OpenAPI entry.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, get, post, put
from litestar.datastructures import State
from litestar.params import HeaderParameter, JSONBody, Parameter

from rewards import errors, members
from rewards.access import public, scoped
from rewards.auth import GUEST, actor_of, principal_of
from rewards.engine import Cancel, PostPurchase, PostReturn, unwrap
from rewards.rules import Rules
from rewards.schemas import (
    ActivityPage,
    BalanceOut,
    CancelOut,
    EnrolledOut,
    EnrollmentIn,
    MemberNumber,
    MemberOut,
    PurchaseIn,
    PurchaseOut,
    QuoteOut,
    ReturnIn,
    ReturnOut,
    RewardStatusOut,
    RulesIn,
)

__all__ = ["ROUTES", "answer", "public", "scoped"]

# ids in paths are keys like purchase_id in bodies: printable ASCII, no NUL for the database to choke on
KEY_PATTERN = r"^[A-Za-z0-9._:\-]+$"
# the route says {member_id:str}: Litestar's own int reads "025", "+25" or "٢٥" as 25 (rewards.schemas.MemberNumber)
MemberPath = Annotated[MemberNumber, Parameter(
    description="The member's id: 1 to 2^62 in plain digits, no sign, no leading zero.",
    schema_extra={"type": "integer", "minimum": 1, "maximum": 2**62})]


def answer(created: bool, body: Any) -> Response[Any]:
    """201 for a new posting, 200 with the same answer for a replay."""
    return Response(body, status_code=201 if created else 200)


# --- members ----------------------------------------------------------------------------------


def is_staff(request: Request[Any, Any, Any]) -> bool:
    """A staff key (not a guest's token): it sees who made each change."""
    return not principal_of(request).is_guest


@scoped("guest_services", errors=[errors.AgeRestricted, errors.GuardianConsentRequired, errors.DuplicateMember,
                                  errors.IdempotencyConflict], replays=True)
@post("/v1/members", tags=["members"], summary="Enroll a member")
async def enroll_member(
    data: JSONBody[EnrollmentIn], state: State, request: Request[Any, Any, Any],
    idempotency_key: Annotated[str | None, HeaderParameter(
        name="Idempotency-Key", max_length=64, pattern=KEY_PATTERN,
        description="Makes a retry safe: the same key and body again answer 200 with the first answer "
                    "(its card_number included); the same key with another body is 409. A key is the caller's "
                    "own (another API key's same key is another enrollment).")] = None,
) -> Response[EnrolledOut]:
    """Enroll a guest: the age gate, then the member and their consent record. The email and
    phone are compared as guest services and registers look them up (`+1 (555) 888-2535` is
    `5558882535`): an active member who has either is 409 `duplicate_member`, naming that member.
    A guest who cancelled with a negative balance starts from it (`carried_over`)."""
    return answer(*await members.enroll(state.engine, data, actor_of(request), idempotency_key=idempotency_key))


@scoped("guest_services", GUEST, errors=[errors.NotFound])
@get("/v1/members/{member_id:str}", tags=["members"], summary="Read a member's profile")
async def get_member(member_id: MemberPath, state: State, request: Request[Any, Any, Any]) -> MemberOut:
    """The member's profile and consent record (personal data is null once erased), and its
    changes (enrollment, corrections, cancellation, merges), with who made each for staff."""
    return await members.profile(state.db, member_id, staff=is_staff(request))


@scoped("guest_services", GUEST, errors=[errors.NotFound, errors.MemberMerged])
@post("/v1/members/{member_id:str}/cancel", status_code=200, tags=["members"], summary="Cancel a membership")
async def cancel_member(member_id: MemberPath, state: State, request: Request[Any, Any, Any]) -> CancelOut:
    """Cancel (withdraw consent): points forfeited, open rewards voided; idempotent."""
    _, out = unwrap(await state.engine.submit(Cancel(member_id, actor_of(request))))
    return out


@scoped("checkout", "guest_services", GUEST, errors=[errors.NotFound])
@get("/v1/members/{member_id:str}/balance", tags=["members"], summary="Read a member's points and rewards")
async def get_balance(member_id: MemberPath, state: State) -> BalanceOut:
    """Points (whole and in point-cents), points still needed for the next reward, every open
    reward and the newest 100 others, newest first."""
    return await members.balance(state.db, state.rulebook, member_id)


@scoped("guest_services", GUEST, errors=[errors.NotFound])
@get("/v1/members/{member_id:str}/activity", tags=["members"], summary="Page through a member's ledger")
async def get_activity(
    member_id: MemberPath,
    state: State,
    request: Request[Any, Any, Any],
    cursor: Annotated[str | None, Parameter(max_length=200)] = None,
    limit: Annotated[int, Parameter(ge=1, le=200)] = 50,
) -> ActivityPage:
    """The member's ledger, newest first; pass `next_cursor` back as `cursor` for the next page.
    Staff see who made each entry (the key's id and label) and adjustments' notes; a guest does not."""
    return await members.activity(state.db, member_id, cursor=cursor, limit=limit, staff=is_staff(request))


# --- purchases, returns, rewards ----------------------------------------------------------------


@scoped("checkout", errors=[errors.NotFound, errors.MemberNotActive, errors.MemberMerged, errors.IdempotencyConflict,
                            errors.TendersDoNotBalance, errors.UnsupportedCurrency, errors.RewardNotRedeemable,
                            errors.UnknownOffer, errors.ValidationFailed], replays=True)
@post("/v1/purchases", tags=["purchases"], summary="Post a purchase")
async def post_purchase(data: JSONBody[PurchaseIn], state: State, request: Request[Any, Any, Any]
                        ) -> Response[PurchaseOut]:
    """Post a purchase. Retry freely: the same purchase_id and body answer 200 with the first answer."""
    return answer(*unwrap(await state.engine.submit(PostPurchase.of(data, actor_of(request)))))


@scoped("checkout", errors=[errors.NotFound, errors.MemberNotActive, errors.MemberMerged, errors.IdempotencyConflict,
                            errors.TendersDoNotBalance, errors.UnsupportedCurrency, errors.RewardNotRedeemable,
                            errors.UnknownOffer, errors.ValidationFailed])
@post("/v1/purchases/quote", status_code=200, tags=["purchases"], summary="Quote what a purchase would earn")
async def quote_purchase(data: JSONBody[PurchaseIn], state: State, request: Request[Any, Any, Any]) -> QuoteOut:
    """What a purchase would earn, after every check a posting makes (the member, its status, the
    rewards tendered, a purchase_id already used); writes nothing."""
    _, out = unwrap(await state.engine.quote(PostPurchase.of(data, actor_of(request))))
    return out


@scoped("checkout", errors=[errors.NotFound, errors.IdempotencyConflict, errors.ReturnExceedsPurchase],
        replays=True)
@post("/v1/purchases/{purchase_id:str}/returns", tags=["purchases"], summary="Post a return")
async def post_return(
    purchase_id: Annotated[str, Parameter(max_length=64, pattern=KEY_PATTERN)], data: JSONBody[ReturnIn], state: State,
    request: Request[Any, Any, Any],
) -> Response[ReturnOut]:
    """Post a return: the points of the units returned are taken back (a line of quantity 0 is a
    price adjustment); open rewards are voided, newest first, before the balance may go negative."""
    return answer(*unwrap(await state.engine.submit(PostReturn.of(purchase_id, data, actor_of(request)))))


@scoped("checkout", errors=[errors.NotFound])
@get("/v1/rewards/{code:str}", tags=["purchases"], summary="Look up a reward by its code")
async def get_reward(code: Annotated[str, Parameter(max_length=64, pattern=KEY_PATTERN)], state: State) -> RewardStatusOut:
    """A reward's value, status and dates, before a register accepts it as a tender."""
    return await members.reward(state.db, code)


# --- program rules ------------------------------------------------------------------------------


@scoped("admin")
@get("/v1/program/rules", tags=["program"], summary="Read the rules in force")
async def get_rules(state: State) -> Rules:
    """The version of the program's rules in force now."""
    return await state.rulebook.current()


@scoped("admin")
@put("/v1/program/rules", status_code=201, tags=["program"], summary="Publish a new version of the rules")
async def put_rules(data: JSONBody[RulesIn], state: State) -> Rules:
    """Publish a new version; it applies to postings from its effective_from on, never to past ones."""
    return await state.rulebook.publish(data)


ROUTES = [
    enroll_member, get_member, cancel_member, get_balance, get_activity,
    post_purchase, quote_purchase, post_return, get_reward, get_rules, put_rules,
]

