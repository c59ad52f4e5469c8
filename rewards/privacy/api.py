"""HTTP handlers of the consumer's requests and of erasure: thin, they call the privacy modules."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any, Literal

from litestar import Request, Response, delete, get, post
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from litestar.params import JSONBody, Parameter

from rewards import errors
from rewards.access import scoped
from rewards.auth import actor_of
from rewards.controllers import MemberPath
from rewards.examples import example_of
from rewards.privacy import erasure, requests, subscribers
from rewards.privacy.examples import register
from rewards.privacy.schemas import (
    CompleteIn,
    DenyIn,
    ErasureScheduledOut,
    PrivacyRequestIn,
    PrivacyRequestOut,
    PrivacyRequestPage,
    RequestStatus,
    RequestType,
    SubscriberErasedOut,
    SubscriberErasureIn,
)
from rewards.schemas import ErasureOut, MemberNumber

register()

RequestPath = Annotated[MemberNumber, Parameter(
    description="The request's id: a whole number in plain digits.",
    schema_extra={"type": "integer", "minimum": 1, "maximum": 2**62})]


def _spec(kind: Any, description: str) -> ResponseSpec:
    return ResponseSpec(kind, generate_examples=False, description=description,
                        examples=[Example(summary="example", value=example_of(kind))])


# --- erasure ------------------------------------------------------------------------------------


@scoped("guest_services", errors=[errors.NotFound], ok=_spec(ErasureOut, "Erased: now, or before"))
@delete("/v1/members/{member_id:str}/personal-data", status_code=200, tags=["members"],
        summary="Erase a member's personal data, with notice",
        responses={202: _spec(ErasureScheduledOut, "Scheduled: the guest is told, and may use their rewards "
                                                    "until then")})
async def erase_member(
    member_id: MemberPath, state: State, request: Request[Any, Any, Any],
    immediate: Annotated[bool, Parameter(description="erase now, without notice (needs `reason`)")] = False,
    reason: Annotated[Literal["minor", "consumer_confirmed"] | None, Parameter(
        description="why now: `minor` (a guest under the program's age found after the fact) or "
                    "`consumer_confirmed` (the consumer asks for it now)")] = None,
) -> Response[Any]:
    """Erase name, email, phone and birth date for good; the anonymous ledger stays.

    By default the erasure is scheduled `REWARDS_ERASURE_NOTICE_HOURS` ahead (24 by default;
    Colorado Rule 6.05(E)): 202 with `scheduled_for`, the points that would be forfeited and the
    rewards that would be voided, and a `member.erasure_scheduled` event, so the guest is told
    first and can still redeem their rewards. Asking again answers the same schedule (the figures
    as they are now). A member already cancelled, or a notice period of 0, is erased at once.
    `?immediate=true&reason=minor` or `reason=consumer_confirmed` erases now. An erased member
    answers 200 with their erasure."""
    if immediate != (reason is not None):
        raise errors.ValidationFailed("immediate=true and a reason (minor or consumer_confirmed) go together",
                                      field="reason")
    if reason is not None:
        return Response(await erasure.erase_now(state.engine, member_id, actor_of(request), reason))
    done = await erasure.request_erasure(state.engine, member_id, actor_of(request),
                                         timedelta(hours=state.settings.erasure_notice_hours))
    return Response(done, status_code=202 if isinstance(done, ErasureScheduledOut) else 200)


@scoped("guest_services", errors=[errors.SubscriberIsMember])
@delete("/v1/subscriptions/personal-data", status_code=200, tags=["mailing list"],
        summary="Erase a subscriber who is not a member")
async def erase_subscriber(data: JSONBody[SubscriberErasureIn], state: State) -> SubscriberErasedOut:
    """Erase a subscriber's address: the subscription is unsubscribed and its address erased; the
    address stays opted out, kept as a keyed hash, until the guest opts in again at a register or
    online. An address a member has is 409 `subscriber_is_member`: erase the member instead. An
    address never subscribed is not stored (`subscriptions_erased` 0)."""
    return await subscribers.erase_subscriber(state.db, data)


# --- the consumer's requests --------------------------------------------------------------------


@scoped("guest_services", errors=[errors.NotFound])
@post("/v1/privacy-requests", status_code=201, tags=["privacy requests"], summary="File a consumer's privacy request")
async def file_request(data: JSONBody[PrivacyRequestIn], state: State,
                       request: Request[Any, Any, Any]) -> PrivacyRequestOut:
    """File a request to know (`access`), to delete or to correct, with how it was made and how
    the consumer was verified. The answer gives its clocks: `confirm_by` (10 business days) and
    `due_at` (45 days). Access requests are answered with `GET /v1/members/{id}/export`,
    corrections made with `PATCH /v1/members/{id}`, deletions with `DELETE
    /v1/members/{id}/personal-data` (which completes the request itself)."""
    return await requests.file(state.db, data, actor_of(request), state.settings.timezone)


@scoped("compliance")
@get("/v1/privacy-requests", tags=["privacy requests"], summary="List consumers' privacy requests")
async def list_requests(
    state: State,
    status: Annotated[RequestStatus | None, Parameter(description="open, completed or denied")] = None,
    type: Annotated[RequestType | None, Parameter(description="access, delete or correct")] = None,
    due_before: Annotated[date | None, Parameter(
        description="only requests due before this day begins (the program's time zone), YYYY-MM-DD")] = None,
    cursor: Annotated[str | None, Parameter(max_length=200)] = None,
    limit: Annotated[int, Parameter(ge=1, le=500)] = 100,
) -> PrivacyRequestPage:
    """Requests newest first; pass `next_cursor` back as `cursor` for the next page. The open ones
    late for their response: `status=open&due_before=` tomorrow."""
    return await requests.page(state.db, state.settings.timezone, status=status, type=type, due_before=due_before,
                               cursor=cursor, limit=limit)


@scoped("guest_services", "compliance", errors=[errors.NotFound])
@get("/v1/privacy-requests/{request_id:str}", tags=["privacy requests"], summary="Read a privacy request")
async def get_request(request_id: RequestPath, state: State) -> PrivacyRequestOut:
    """One request, its clocks and how it was closed."""
    return await requests.one(state.db, request_id, state.settings.timezone)


@scoped("guest_services", errors=[errors.NotFound])
@post("/v1/privacy-requests/{request_id:str}/confirm", status_code=200, tags=["privacy requests"],
      summary="Record that receipt of a request was confirmed")
async def confirm_request(request_id: RequestPath, state: State) -> PrivacyRequestOut:
    """Record that the consumer was told their request was received and how it will be handled
    (11 CCR §7021(a), within 10 business days: `confirm_by`). The first confirmation is kept."""
    return await requests.confirm(state.db, request_id, state.settings.timezone)


@scoped("guest_services", errors=[errors.NotFound, errors.RequestClosed, errors.PersonalDataHeld])
@post("/v1/privacy-requests/{request_id:str}/complete", status_code=200, tags=["privacy requests"],
      summary="Complete a privacy request")
async def complete_request(request_id: RequestPath, data: JSONBody[CompleteIn], state: State,
                           request: Request[Any, Any, Any]) -> PrivacyRequestOut:
    """Record that the request was complied with, `in_whole` or `in_part` (then with the reason).
    A delete request is completed by the erasure itself: completing one while the consumer's
    data is still held is 409 `personal_data_held`. The same completion again answers 200; a
    request already closed otherwise is 409 `request_closed`."""
    _, closed = await requests.complete(state.db, request_id, data, actor_of(request),
                                        state.settings.timezone)
    return closed


@scoped("guest_services", errors=[errors.NotFound, errors.RequestClosed])
@post("/v1/privacy-requests/{request_id:str}/deny", status_code=200, tags=["privacy requests"],
      summary="Deny a privacy request")
async def deny_request(request_id: RequestPath, data: JSONBody[DenyIn], state: State,
                       request: Request[Any, Any, Any]) -> PrivacyRequestOut:
    """Deny the request, with the basis for the denial (kept with the record). The same denial
    again answers 200; a request already closed otherwise is 409 `request_closed`."""
    _, closed = await requests.deny(state.db, request_id, data, actor_of(request), state.settings.timezone)
    return closed


ROUTES = [erase_member, erase_subscriber, file_request, list_requests, get_request, confirm_request,
          complete_request, deny_request]
