"""Who may call a route, and what it may answer: declared once, above the route.

    @scoped("checkout", errors=[errors.NotFound, errors.MemberNotActive])
    @post("/v1/purchases", summary="Post a purchase", tags=["purchases"])
    async def post_purchase(data: PurchaseIn, state: State) -> Response[PurchaseOut]:
        '''What the route does, in words (the OpenAPI description).'''

`scoped` gives the route its check (the token must hold one of the scopes, or with GUEST be
the guest token of the path's member) and documents it: the bearer security requirement,
the scopes in words, and every error response it can give as problem+json with its codes
(401, 403 and 429 from the check; 400, 413 and 422 when it reads a body; 422 when it takes
parameters; 503 always; and the domain errors it lists), with request and response examples
from `rewards.examples`. `public` does the same for routes that need no token.
`tests/test_openapi.py` fails for any route that is not declared so.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from litestar import Request, Response
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example, Operation
from litestar.params import ParameterKwarg
from litestar.types import Scope

from rewards import errors, openapi
from rewards.auth import GUEST, Authenticator
from rewards.examples import example_of
from rewards.schemas import member_number_or_none

# handler parameters that are not the client's to send (Litestar's reserved names)
_NOT_PARAMETERS = frozenset({"state", "request", "scope", "headers", "cookies", "socket", "data", "body", "query"})

EXAMPLE_DETAILS: dict[str, str] = {
    "not_found": "member 42 does not exist",
    "member_not_active": "member 42 is cancelled",
    "duplicate_member": "member 7 is active with this phone; find it (GET /v1/members?phone=…) or merge the two",
    "age_restricted": "members must be at least 13 years old",
    "guardian_consent_required": "a member under 18 needs a guardian's consent",
    "idempotency_conflict": "purchase_id pos-12-000981 was posted before with a different body",
    "tenders_do_not_balance": "the tenders add up to 31000 cents, the lines to 31234",
    "unsupported_currency": "currency EUR is not supported",
    "reward_not_redeemable": "reward WR3F9A61C0B27D4E85 is not this member's, not issued, expired, or worth less than tendered",
    "return_exceeds_purchase": "more of SKU JKT-221 is returned than was bought",
    "unknown_offer": "offer SPRING10 was never made",
    "request_closed": "request 12 was completed on 2026-12-04; it cannot be denied now",
    "personal_data_held": "member 42's personal data is still held: the erasure scheduled for "
                          "2026-12-03T09:30:00Z completes this request when it happens",
    "subscriber_is_member": "ann@example.com is member 42's: erase the member (DELETE /v1/members/42/personal-data)",
    "member_merged": "member 42 was merged into member 7; use that member",
}


def error_code(error: type[errors.DomainError]) -> openapi.ErrorCode:
    return openapi.ErrorCode(error.status, error.code, error.title, EXAMPLE_DETAILS.get(error.code, error.title))


def _authorization(scope: Scope) -> str | None:
    # straight from the ASGI scope (names come lowercased): Litestar's Headers is built per request
    for name, value in scope["headers"]:
        if name == b"authorization":
            return value.decode("latin-1")
    return None


def require(*scopes: str) -> Callable[[Request[Any, Any, Any]], Awaitable[None]]:
    """The route's check: the caller holds one of `scopes`, or, with GUEST among them, is the
    guest token of the member named in the path. It runs as the route's `before_request` hook,
    before the body is read, so a caller who may not call the route learns nothing of what a
    valid body looks like. Not a Litestar guard: Litestar copies the route handler for every
    guard call (`copy(self)` in `authorize_connection`), 31 us of CPU a posting for
    `post_purchase`'s handler, about a tenth of the service's CPU per posting
    (bench/README.md); `before_request` runs at the same point for us and copies nothing."""
    guest_may = GUEST in scopes

    async def check(request: Request[Any, Any, Any]) -> None:
        member_id = member_number_or_none(request.path_params.get("member_id")) if guest_may else None
        auth: Authenticator = request.app.state.auth
        # the caller, for the handler: who made the change it records (`rewards.auth.actor_of`)
        request.state.principal = await auth.require(_authorization(request.scope), *scopes, member_id=member_id)

    return check


def who_may_call(scopes: Sequence[str]) -> str:
    staff = [f"`{s}`" for s in scopes if s != GUEST]
    words = f"a token with the scope {staff[0]}" if len(staff) == 1 else \
        f"a token with any of the scopes {', '.join(staff)}"
    if GUEST in scopes:
        words += ", or the guest token of the member in the path"
    return f"**Who may call:** {words}."


def scoped(*scopes: str, errors: Iterable[type[errors.DomainError]] = (), replays: bool = False,
           ok: ResponseSpec | None = None) -> Callable[[HTTPRouteHandler], HTTPRouteHandler]:
    """Declare a route's scopes and the domain errors it may answer (see the module's docstring).

    `replays`: the route answers 201 for a new posting and 200 with the first answer for a
    replay (`rewards.controllers.answer`). `ok`: the success response, when it is not the
    handler's return type as JSON (a report in several formats).
    """
    if not scopes or any(not s for s in scopes):
        raise ValueError("a scoped route names at least one scope; use @public for routes open to all")
    declared = [error_code(e) for e in errors]

    def declare(handler: HTTPRouteHandler) -> HTTPRouteHandler:
        if handler.before_request is not None:
            raise ValueError(f"{handler.handler_name} has a before_request hook already: scoped's check is that hook")
        handler.before_request = require(*scopes)
        handler.security = [{openapi.SECURITY_SCHEME: [scope]} for scope in scopes]
        handler.opt["scopes"] = tuple(scopes)
        auth_errors = [openapi.UNAUTHORIZED, openapi.FORBIDDEN, openapi.RATE_LIMITED]
        _document(handler, who_may_call(scopes), [*auth_errors, *declared], replays=replays, ok=ok)
        return handler

    return declare


def public(*, errors: Iterable[type[errors.DomainError]] = (), database: bool = True,
           ok: ResponseSpec | None = None) -> Callable[[HTTPRouteHandler], HTTPRouteHandler]:
    """Declare a route that needs no token. `database`: it reads the database (503 when down)."""
    declared = [error_code(e) for e in errors]

    def declare(handler: HTTPRouteHandler) -> HTTPRouteHandler:
        handler.opt["public"] = True
        _document(handler, "**Who may call:** anyone; no token is needed.", declared, database=database, ok=ok)
        return handler

    return declare


@dataclass
class DeclaredOperation(Operation):
    """An operation that answers only the responses its route declares. Litestar adds a 400
    with its own error schema to every route that takes parameters; ours answer those
    errors as 422 problem+json (declared), so that 400 is dropped unless declared."""

    def __post_init__(self) -> None:
        for status, response in list((self.responses or {}).items()):
            content = getattr(response, "content", None) or {}
            if status == "400" and openapi.PROBLEM not in content:
                del self.responses[status]  # type: ignore[union-attr]


def _document(handler: HTTPRouteHandler, who: str, declared: list[openapi.ErrorCode], *, replays: bool = False,
              database: bool = True, ok: ResponseSpec | None = None) -> None:
    fn = handler.fn
    hints = typing.get_type_hints(fn, include_extras=True)
    parameters = [name for name in inspect.signature(fn).parameters if name not in _NOT_PARAMETERS]
    reads_body = "data" in hints
    found = list(declared)
    if reads_body:
        found += [openapi.MALFORMED, openapi.TOO_LARGE, openapi.INVALID]
    elif parameters:
        found.append(openapi.INVALID)
    if database:
        found.append(openapi.UNAVAILABLE)

    doc = inspect.cleandoc(fn.__doc__ or "")
    handler.description = f"{doc}\n\n{who}" if doc else who
    responses: dict[int, ResponseSpec] = dict(handler.responses or {})
    success = ok or _success(handler, hints.get("return"))
    if success is not None:
        status = 201 if replays else handler.status_code
        responses[status] = success
        if replays:
            responses[200] = ResponseSpec(
                data_container=success.data_container, generate_examples=False, examples=success.examples,
                description="The same request again (a retry): the first answer, unchanged.")
    responses.update(openapi.error_responses(found))
    handler.responses = responses
    handler.operation_class = DeclaredOperation
    # the handler's own name (`post_purchase`): what a generated client calls its function
    handler.operation_id = handler.operation_id or handler.handler_name
    handler.opt["errors"] = tuple(sorted({(e.status, e.code) for e in found}))
    handler.opt["parameter_names"] = public_names(hints)


def public_names(hints: dict[str, Any]) -> dict[str, str]:
    """Parameters whose name in the request is not the handler's (`format` for `fmt`): Litestar
    names the handler's in its validation errors, our `field` names the client's."""
    names = {}
    for name, hint in hints.items():
        for meta in getattr(hint, "__metadata__", ()):
            alias = getattr(meta, "name", None) or getattr(meta, "query", None)
            if isinstance(meta, ParameterKwarg) and alias and alias != name:
                names[name] = alias
    return names


def _success(handler: HTTPRouteHandler, returned: Any) -> ResponseSpec | None:
    """The success response: the handler's return type (inside a Response[...]) with its example."""
    if typing.get_origin(returned) is Response or returned is Response:
        args = typing.get_args(returned)
        returned = args[0] if args else None
    if returned is None or returned is type(None):
        return None
    example = example_of(returned)
    return ResponseSpec(
        data_container=returned, generate_examples=False,
        description=handler.response_description or ("Created" if handler.status_code == 201 else "OK"),
        examples=[Example(summary="example", value=example)] if example is not None else None,
    )
