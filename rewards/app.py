"""create_app(): wiring, lifespan, exception handlers, health and metrics."""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import prometheus_client
from litestar import Litestar, MediaType, Request, Response, get
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from litestar.utils.scope.state import ScopeState
from twilio.request_validator import RequestValidator

from rewards import controllers, errors, mailing_api, pages
from rewards.auth import Authenticator
from rewards.config import Settings, load_settings
from rewards.db import Database, DatabaseUnavailable, database_from_env
from rewards.engine import Engine, limits_of
from rewards.migrations import migrate
from rewards.pages import unsubscribe
from rewards.plugins import plugin_routes
from rewards.rulebook import Rulebook
from rewards.texting import Replies
from rewards.unsubscribe_links import UnsubscribeLinks

log = logging.getLogger("rewards")
PROBLEM = "application/problem+json"

REQUESTS = prometheus_client.Counter("rewards_http_responses_total", "HTTP responses", ["method", "status"])
LATENCY = prometheus_client.Histogram(
    "rewards_http_request_seconds", "Time to answer a request", ["method"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
ERRORS = prometheus_client.Counter("rewards_errors_total", "Problem responses by code", ["code"])


def problem(status: int, code: str, title: str, detail: str, **extra: Any) -> Response[dict[str, Any]]:
    """An RFC 9457 problem document with our stable `code`."""
    ERRORS.labels(code).inc()
    body = {"type": f"https://westique.example/problems/{code}", "title": title, "status": status,
            "detail": detail, "code": code}
    body.update({k: v for k, v in extra.items() if v is not None})
    headers = {"retry-after": str(extra["retry_after"])} if "retry_after" in extra else None
    return Response(body, status_code=status, media_type=PROBLEM, headers=headers)


def on_domain_error(request: Request[Any, Any, Any], exc: errors.DomainError) -> Response[Any]:
    if pages.wants_page(request):
        ERRORS.labels(exc.code).inc()
        return pages.error_page(exc)
    return problem(exc.status, exc.code, exc.title, exc.detail, **exc.extra)


_AT = re.compile(r" - at `\$\.?([^`]*)`")


def on_validation_error(_: Request[Any, Any, Any], exc: ValidationException) -> Response[dict[str, Any]]:
    """Litestar's decoding errors, as our 422 `validation_error` naming the field."""
    detail = str(exc.detail)
    field = None
    for item in exc.extra or []:
        if isinstance(item, dict):
            detail = item.get("message", detail)
            field = item.get("key") or field
    match = _AT.search(detail)
    if match:
        field, detail = match.group(1) or None, _AT.sub("", detail)
    if field == "data":  # Litestar's name for the whole body
        field = None
    if "malformed" in detail.lower():
        return problem(400, "malformed_request", "The request body is not valid JSON", detail)
    return problem(422, "validation_error", "The request is not valid", detail, field=field)


class _Admission(msgspec.Struct, frozen=True):
    """What a handler asks of a request before it runs: the scopes, and the body's type."""

    scopes: tuple[str, ...]
    body_type: Any


_ADMISSIONS: dict[Any, _Admission] = {}


def _admission(handler: Any) -> _Admission:
    found = _ADMISSIONS.get(handler)
    if found is None:
        data = handler.parsed_fn_signature.parameters.get("data")
        found = _ADMISSIONS[handler] = _Admission(tuple(handler.opt.get("scopes", ())),
                                                  data.annotation if data is not None else None)
    return found


def _authorization(scope: Scope) -> str | None:
    # straight from the ASGI scope (names come lowercased): Litestar's Headers is built per request
    for name, value in scope["headers"]:
        if name == b"authorization":
            return value.decode("latin-1")
    return None


async def admit(request: Request[Any, Any, Any]) -> None:
    """Before the handler: check the caller's scopes, then decode the JSON body strictly.

    One hook instead of a guard per handler (Litestar copies the handler for every guard
    call, a tenth of a posting's CPU in the profile). The caller is checked before the
    body is read, so an unauthorized caller learns nothing about what a valid body looks
    like. Litestar converts bodies leniently ("100" would pass as 100 cents, a number as a
    time) and lets bytes that are not UTF-8, or nest without end, through as a 500; our
    inbound structs are strict: a wrong type is a 422 naming the field, a broken body a
    400. The decoded body is handed to Litestar's own body cache, so it is decoded once.
    """
    admission = _admission(request.route_handler)
    if admission.scopes:
        request.state.principal = await request.app.state.auth.require(
            _authorization(request.scope), *admission.scopes, member_id=request.path_params.get("member_id"))
    if admission.body_type is None:
        return
    try:
        decoded = msgspec.json.decode((await request.body()) or b"null", type=admission.body_type)
    except msgspec.ValidationError as exc:
        match = _AT.search(str(exc))
        raise errors.ValidationFailed(_AT.sub("", str(exc)), field=(match.group(1) or None) if match else None) from exc
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise errors.MalformedRequest(f"the body is not valid JSON: {exc}") from exc
    ScopeState.from_scope(request.scope).json = decoded


def on_http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    code = {400: "malformed_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
            405: "method_not_allowed", 413: "payload_too_large", 429: "rate_limited"}.get(exc.status_code, "http_error")
    if code == "malformed_request":
        return problem(400, code, "The request body is not valid JSON", str(exc.detail))
    return problem(exc.status_code, code, str(exc.detail), str(exc.detail))


def on_unavailable(_: Request[Any, Any, Any], exc: DatabaseUnavailable) -> Response[dict[str, Any]]:
    err = errors.ServiceUnavailable("the database cannot be reached right now; retry shortly")
    return problem(err.status, err.code, err.title, err.detail, retry_after=1)


def on_unexpected(_: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    log.exception("unexpected error", exc_info=exc)
    return problem(500, "internal_error", "Internal error", "something went wrong on our side; it has been logged")


@get("/health", tags=["operations"], include_in_schema=True)
async def health() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@get("/ready", tags=["operations"])
async def ready(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    """Readiness: false (503) while the database cannot be reached."""
    db: Database = request.app.state.db
    try:
        async with asyncio.timeout(2):
            rows = await db.run("SELECT 1 AS ok")
        ok = rows[0]["ok"] == 1
    except (DatabaseUnavailable, TimeoutError, OSError):
        ok = False
    return Response({"ready": ok}, status_code=200 if ok else 503)


@get("/metrics", tags=["operations"], media_type=MediaType.TEXT)
async def metrics() -> Response[bytes]:
    """Prometheus metrics of this worker process."""
    return Response(prometheus_client.generate_latest(), media_type=prometheus_client.CONTENT_TYPE_LATEST)


def metrics_middleware(app: ASGIApp) -> ASGIApp:
    # labelled children are looked up once: `labels()` costs more than the increment
    responses: dict[tuple[str, int], Any] = {}
    latencies: dict[str, Any] = {}

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        method = scope["method"]

        async def send_counting(message: Message) -> None:
            if message["type"] == "http.response.start":
                key = (method, message["status"])
                counter = responses.get(key) or responses.setdefault(key, REQUESTS.labels(method, str(key[1])))
                counter.inc()
                latency = latencies.get(method) or latencies.setdefault(method, LATENCY.labels(method))
                latency.observe(time.perf_counter() - started)
            await send(message)

        await app(scope, receive, send_counting)

    return middleware


def create_app(settings: Settings | None = None, *, extra_routes: list[Any] | None = None) -> Litestar:
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        db = database_from_env(settings)
        await migrate(db.url)
        app.state.db = db
        app.state.settings = settings
        app.state.rulebook = Rulebook(db)
        await app.state.rulebook.load()
        app.state.engine = Engine(db, app.state.rulebook, limits_of(settings))
        app.state.auth = Authenticator(db, guest_rate_limit=settings.guest_rate_limit)
        app.state.settings = settings
        app.state.links = UnsubscribeLinks.from_settings(settings)
        app.state.replies = Replies(guest_services_phone=settings.guest_services_phone,
                                    guest_services_email=settings.guest_services_email)
        app.state.twilio = RequestValidator(settings.twilio_auth_token) if settings.twilio_auth_token else None
        # what start-up made (modules, routes, the schema) lives as long as the process: out of
        # the collector's sight, a full collection no longer walks it in the middle of a request
        gc.freeze()
        try:
            yield
        finally:
            await db.close()

    return Litestar(
        route_handlers=[health, ready, metrics, *controllers.ROUTES, *mailing_api.ROUTES, *unsubscribe.ROUTES,
                        *plugin_routes(), *(extra_routes or [])],
        lifespan=[lifespan],
        middleware=[metrics_middleware],
        exception_handlers={
            errors.DomainError: on_domain_error,
            ValidationException: on_validation_error,
            HTTPException: on_http_error,
            DatabaseUnavailable: on_unavailable,
            Exception: on_unexpected,
        },
        openapi_config=OpenAPIConfig(
            title="Westique Rewards",
            version="1.0.0",
            description="The rewards program and its financial-incentive disclosures.",
            path="/schema",
            render_plugins=[ScalarRenderPlugin()],
        ),
        template_config=pages.template_config(),
        request_max_body_size=settings.max_body_bytes,
        before_request=admit,
        debug=False,
    )
