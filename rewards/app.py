"""create_app(): wiring, lifespan, exception handlers, health and metrics."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import prometheus_client
from litestar import Litestar, MediaType, Request, Response, get
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import multiprocess
from twilio.request_validator import RequestValidator

from rewards import controllers, errors, guest_api, mailing_api, openapi, pages
from rewards.access import public
from rewards.auth import Authenticator
from rewards.config import Settings, load_settings, secret_key
from rewards.db import Database, DatabaseUnavailable, database_from_env
from rewards.decoding import StrictBodies
from rewards.desk import api as desk_api
from rewards.engine import Engine, limits_of
from rewards.events import api as events_api
from rewards.events.webhooks import SecretBox
from rewards.migrations import migrate
from rewards.openapi import PROBLEM, PROBLEM_TYPE, Problem
from rewards.pages import guest, unsubscribe
from rewards.pages.signed_in import SessionCookies
from rewards.privacy import api as privacy_api
from rewards.plugins import plugin_routes
from rewards.rulebook import Rulebook
from rewards.schemas import TYPE_DECODERS
from rewards.texting import Replies
from rewards.unsubscribe_links import UnsubscribeLinks

log = logging.getLogger("rewards")
API_VERSION = "1.0.0"

REQUESTS = prometheus_client.Counter("rewards_http_responses_total", "HTTP responses", ["method", "status"])
LATENCY = prometheus_client.Histogram(
    "rewards_http_request_seconds", "Time to answer a request", ["method"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
ERRORS = prometheus_client.Counter("rewards_errors_total", "Problem responses by code", ["code"])


def problem(status: int, code: str, title: str, detail: str, **extra: Any) -> Response[Problem]:
    """An RFC 9457 problem document with our stable `code` (its schema: `rewards.openapi.Problem`)."""
    ERRORS.labels(code).inc()
    body = Problem(type=PROBLEM_TYPE + code, title=title, status=status, detail=detail, code=code,
                   **{k: v for k, v in extra.items() if v is not None})
    headers = {"retry-after": str(body.retry_after)} if body.retry_after is not None else None
    return Response(body, status_code=status, media_type=PROBLEM, headers=headers)


def on_domain_error(request: Request[Any, Any, Any], exc: errors.DomainError) -> Response[Any]:
    if pages.wants_page(request):
        ERRORS.labels(exc.code).inc()
        return pages.error_page(exc, request.url.path)
    return problem(exc.status, exc.code, exc.title, exc.detail, **exc.extra)


def on_validation_error(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Problem]:
    """Litestar's errors about path and query parameters, as our 422 `validation_error`
    naming the parameter as the client sends it (bodies are decoded by `rewards.decoding`,
    which raises ours)."""
    detail, field = str(exc.detail), None
    for item in exc.extra or []:
        if isinstance(item, dict):
            detail = item.get("message", detail)
            field = item.get("key") or field
    field = request.route_handler.opt.get("parameter_names", {}).get(field, field)
    if field == "data":  # the body is missing: Litestar hands an empty body to no decoder
        return problem(400, "malformed_request", "The request body is not valid JSON",
                       "the request has no body; send a JSON object")
    return problem(422, "validation_error", "The request is not valid", detail, field=field)


def on_http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Problem]:
    code = {400: "malformed_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
            405: "method_not_allowed", 413: "payload_too_large", 429: "rate_limited"}.get(exc.status_code, "http_error")
    if code == "malformed_request":
        return problem(400, code, "The request body is not valid JSON", str(exc.detail))
    return problem(exc.status_code, code, str(exc.detail), str(exc.detail))


def on_unavailable(_: Request[Any, Any, Any], exc: DatabaseUnavailable) -> Response[Problem]:
    err = errors.ServiceUnavailable("the database cannot be reached right now; retry shortly")
    return problem(err.status, err.code, err.title, err.detail, retry_after=1)


def on_unexpected(_: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    log.exception("unexpected error", exc_info=exc)
    return problem(500, "internal_error", "Internal error", "something went wrong on our side; it has been logged")


@public(database=False, ok=ResponseSpec(dict[str, str], generate_examples=False, description="The process answers",
                                        examples=[Example(summary="alive", value={"status": "ok"})]))
@get("/health", tags=["operations"], summary="Check that the service is alive")
async def health() -> dict[str, str]:
    """Liveness: the process answers (`{"status": "ok"}`), whatever the database's state."""
    return {"status": "ok"}


class Readiness(msgspec.Struct):
    ready: bool
    """Whether the database answers: false (and status 503) while it cannot be reached."""


@public(database=False, ok=ResponseSpec(Readiness, generate_examples=False, description="The database answers",
                                        examples=[Example(summary="ready", value={"ready": True})]))
@get("/ready", tags=["operations"], summary="Check that the service can reach its database", responses={503: ResponseSpec(
    Readiness, generate_examples=False, description="The database cannot be reached",
    examples=[Example(summary="not ready", value={"ready": False})])})
async def ready(request: Request[Any, Any, Any]) -> Response[Readiness]:
    """Readiness, for a load balancer: 200 `{"ready": true}` when the database answers,
    503 `{"ready": false}` while it cannot be reached (the service recovers by itself)."""
    db: Database = request.app.state.db
    try:
        async with asyncio.timeout(2):
            rows = await db.run("SELECT 1 AS ok")
        ok = rows[0]["ok"] == 1
    except (DatabaseUnavailable, TimeoutError, OSError):
        ok = False
    return Response(Readiness(ok), status_code=200 if ok else 503)


# Litestar adds the charset to a text/ type itself
METRICS_MEDIA_TYPE = prometheus_client.CONTENT_TYPE_LATEST.removesuffix("; charset=utf-8")
METRICS_EXAMPLE = """\
# HELP rewards_http_responses_total HTTP responses
# TYPE rewards_http_responses_total counter
rewards_http_responses_total{method="POST",status="201"} 1843.0
"""


@public(database=False, ok=ResponseSpec(str, media_type=prometheus_client.CONTENT_TYPE_LATEST, generate_examples=False,
                                        description="The metrics, in Prometheus' text format",
                                        examples=[Example(summary="a counter", value=METRICS_EXAMPLE)]))
@get("/metrics", tags=["operations"], media_type=MediaType.TEXT, summary="Prometheus metrics")
async def metrics() -> Response[bytes]:
    """Prometheus metrics: responses by method and status, latency, problems by code. Under
    `rewards serve` every worker writes its figures to one folder (Prometheus' multiprocess
    mode), so a scrape answered by any worker counts the requests of all of them."""
    return Response(prometheus_client.generate_latest(_registry()), media_type=METRICS_MEDIA_TYPE)


def _registry() -> prometheus_client.CollectorRegistry:
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return prometheus_client.REGISTRY
    registry = prometheus_client.CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def metrics_middleware(app: ASGIApp) -> ASGIApp:
    # labelled children are looked up once: `labels()` costs more than the increment
    responses: dict[tuple[str, int], Any] = {}
    latencies: dict[str, Any] = {}

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        method = scope["method"]  # type: ignore[typeddict-item]  # an http scope (checked above)

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
        await app.state.auth.start()
        app.state.settings = settings
        # the configured key, or the data folder's (made on first use): read once for all three
        key = secret_key(settings)
        app.state.links = UnsubscribeLinks(key, settings.public_url)
        app.state.session_cookies = SessionCookies(key, settings.public_url)
        app.state.webhook_secrets = SecretBox(key)
        app.state.replies = Replies(guest_services_phone=settings.guest_services_phone,
                                    guest_services_email=settings.guest_services_email)
        app.state.twilio = RequestValidator(settings.twilio_auth_token) if settings.twilio_auth_token else None
        # what start-up made (modules, routes, the schema) lives as long as the process: out of
        # the collector's sight, a full collection no longer walks it in the middle of a request
        gc.freeze()
        try:
            yield
        finally:
            await app.state.auth.stop()
            await db.close()

    return Litestar(
        route_handlers=[health, ready, metrics, openapi.assets_router(), *controllers.ROUTES, *desk_api.ROUTES,
                        *mailing_api.ROUTES, *events_api.ROUTES, *guest_api.ROUTES, *unsubscribe.ROUTES, *guest.ROUTES,
                        *privacy_api.ROUTES,
                        *plugin_routes(), *(extra_routes or [])],
        lifespan=[lifespan],
        middleware=[metrics_middleware],
        plugins=[StrictBodies()],
        type_decoders=TYPE_DECODERS,
        exception_handlers={
            errors.DomainError: on_domain_error,
            ValidationException: on_validation_error,
            HTTPException: on_http_error,
            DatabaseUnavailable: on_unavailable,
            Exception: on_unexpected,
        },
        openapi_config=openapi.openapi_config(API_VERSION),
        template_config=pages.template_config(),
        request_max_body_size=settings.max_body_bytes,
        debug=False,
    )
