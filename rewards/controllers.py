"""Thin HTTP handlers: check the caller, call the service function, shape the answer."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, delete, get, post, put
from litestar.datastructures import State
from litestar.params import JSONBody, Parameter

from rewards import members
from rewards.auth import GUEST, actor_of
from rewards.engine import Cancel, PostPurchase, PostReturn, unwrap
from rewards.rules import Rules
from rewards.schemas import (
    ActivityPage,
    BalanceOut,
    CancelOut,
    EnrolledOut,
    EnrollmentIn,
    ErasureOut,
    MemberOut,
    PurchaseIn,
    PurchaseOut,
    QuoteOut,
    ReturnIn,
    ReturnOut,
    RewardStatusOut,
    RulesIn,
)

# ids in paths are keys like purchase_id in bodies: printable ASCII, no NUL for the database to choke on
KEY_PATTERN = r"^[A-Za-z0-9._:\-]+$"
MemberPath = Annotated[int, Parameter(ge=1, le=2**62, description="the member's id")]


def scoped(*scopes: str) -> dict[str, Any]:
    """Who may call the handler: a token holding one of `scopes`, or with GUEST, the path
    member's own guest token. Checked by `rewards.app.admit` before the body is read."""
    return {"opt": {"scopes": scopes}}


def answer(created: bool, body: Any) -> Response[Any]:
    """201 for a new posting, 200 with the same answer for a replay."""
    return Response(body, status_code=201 if created else 200)


# --- members ----------------------------------------------------------------------------------


@post("/v1/members", **scoped("guest_services"), status_code=201, tags=["members"])
async def enroll_member(data: JSONBody[EnrollmentIn], state: State) -> EnrolledOut:
    """Enroll a guest: the age gate, then the member and their consent record."""
    return await members.enroll(state.db, data)


@get("/v1/members/{member_id:int}", **scoped("guest_services", GUEST), tags=["members"])
async def get_member(member_id: MemberPath, state: State) -> MemberOut:
    return await members.profile(state.db, member_id)


@post("/v1/members/{member_id:int}/cancel", **scoped("guest_services", GUEST), status_code=200, tags=["members"])
async def cancel_member(member_id: MemberPath, state: State, request: Request[Any, Any, Any]) -> CancelOut:
    """Cancel (withdraw consent): points forfeited, open rewards voided; idempotent."""
    _, out = unwrap(await state.engine.submit(Cancel(member_id, actor_of(request))))
    return out


@delete("/v1/members/{member_id:int}/personal-data", **scoped("guest_services"), status_code=200, tags=["members"])
async def erase_member(member_id: MemberPath, state: State, request: Request[Any, Any, Any]) -> ErasureOut:
    """Erase name, email, phone and birth date for good; the anonymous ledger stays."""
    return await members.erase(state.engine, member_id, actor_of(request))


@get("/v1/members/{member_id:int}/balance", **scoped("checkout", "guest_services", GUEST), tags=["members"])
async def get_balance(member_id: MemberPath, state: State) -> BalanceOut:
    return await members.balance(state.db, state.rulebook, member_id)


@get("/v1/members/{member_id:int}/activity", **scoped("guest_services", GUEST), tags=["members"])
async def get_activity(
    member_id: MemberPath,
    state: State,
    cursor: Annotated[str | None, Parameter(max_length=200)] = None,
    limit: Annotated[int, Parameter(ge=1, le=200)] = 50,
) -> ActivityPage:
    """The member's ledger, newest first; pass `next_cursor` back as `cursor` for the next page."""
    return await members.activity(state.db, member_id, cursor=cursor, limit=limit)


# --- purchases, returns, rewards ----------------------------------------------------------------


@post("/v1/purchases", **scoped("checkout"), tags=["purchases"])
async def post_purchase(data: JSONBody[PurchaseIn], state: State, request: Request[Any, Any, Any]
                        ) -> Response[PurchaseOut]:
    """Post a purchase. Retry freely: the same purchase_id and body answer 200 with the first answer."""
    return answer(*unwrap(await state.engine.submit(PostPurchase.of(data, actor_of(request)))))


@post("/v1/purchases/quote", **scoped("checkout"), status_code=200, tags=["purchases"])
async def quote_purchase(data: JSONBody[PurchaseIn], state: State, request: Request[Any, Any, Any]) -> QuoteOut:
    """What a purchase would earn, after every check a posting makes; writes nothing."""
    _, out = unwrap(await state.engine.quote(PostPurchase.of(data, actor_of(request))))
    return out


@post("/v1/purchases/{purchase_id:str}/returns", **scoped("checkout"), tags=["purchases"])
async def post_return(
    purchase_id: Annotated[str, Parameter(max_length=64, pattern=KEY_PATTERN)], data: JSONBody[ReturnIn], state: State,
    request: Request[Any, Any, Any],
) -> Response[ReturnOut]:
    """Post a return: the points of the units returned are taken back (a line of quantity 0 is a
    price adjustment); open rewards are voided, newest first, before the balance may go negative."""
    return answer(*unwrap(await state.engine.submit(PostReturn.of(purchase_id, data, actor_of(request)))))


@get("/v1/rewards/{code:str}", **scoped("checkout"), tags=["purchases"])
async def get_reward(code: Annotated[str, Parameter(max_length=64, pattern=KEY_PATTERN)], state: State) -> RewardStatusOut:
    return await members.reward(state.db, code)


# --- program rules ------------------------------------------------------------------------------


@get("/v1/program/rules", **scoped("admin"), tags=["program"])
async def get_rules(state: State) -> Rules:
    return await state.rulebook.current()


@put("/v1/program/rules", **scoped("admin"), status_code=201, tags=["program"])
async def put_rules(data: JSONBody[RulesIn], state: State) -> Rules:
    """Publish a new version; it applies to postings from its effective_from on, never to past ones."""
    return await state.rulebook.publish(data)


ROUTES = [
    enroll_member, get_member, cancel_member, erase_member, get_balance, get_activity,
    post_purchase, quote_purchase, post_return, get_reward, get_rules, put_rules,
]

