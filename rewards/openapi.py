"""The OpenAPI document's common parts: the problem+json schema, the bearer scheme, the error
responses each route declares, and the Swagger UI served from the package's own files.

What a route declares (its scopes, its errors) is in `rewards.access`; this module turns
it into OpenAPI objects.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

import msgspec
from msgspec import Meta
from litestar.openapi import OpenAPIConfig
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, Example, SecurityScheme, Tag
from litestar.router import Router
from litestar.static_files import create_static_files_router

PROBLEM = "application/problem+json"
PROBLEM_TYPE = "https://westique.example/problems/"
SECURITY_SCHEME = "bearer"
SCHEMA_PATH = "/schema"
ASSETS_PATH = f"{SCHEMA_PATH}/assets"
SWAGGER_UI_PACKAGE = "swagger_ui"  # swagger-ui-py, pinned in pyproject.toml: its static/ is Swagger UI itself


class Problem(msgspec.Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    """An error, as RFC 9457 problem details (`application/problem+json`) with a stable `code`.

    `rewards.app.problem` builds every error answer from this struct, so the document cannot
    describe another shape than the one sent: a domain error with an extra field that is not
    declared here fails (TypeError) until it is.
    """

    type: Annotated[str, Meta(description="A URI naming the kind of problem: "
                                          "`https://westique.example/problems/<code>`.")]
    title: Annotated[str, Meta(description="A short summary of the kind of problem, the same for every "
                                           "occurrence of the code.")]
    status: Annotated[int, Meta(description="The HTTP status code of the answer.")]
    detail: Annotated[str, Meta(description="What went wrong with this request, in words.")]
    code: Annotated[str, Meta(description="The stable, machine-readable code of the problem (each route lists "
                                          "the codes it may answer).")]
    field: Annotated[str | None, Meta(description="For `validation_error`: the request field at fault, as a path "
                                                  "(`lines[0].amount_cents`), when one field is; for "
                                                  "`duplicate_member`: `email`, `phone` or `external_id`.")] = None
    retry_after: Annotated[int | None, Meta(description="For `rate_limited` and `database_unavailable`: seconds to "
                                                        "wait before retrying (also the `Retry-After` header).")] = None
    reward_code: Annotated[str | None, Meta(description="For `reward_not_redeemable`: the reward tendered that "
                                                        "cannot be redeemed.")] = None
    sku: Annotated[str | None, Meta(description="For `return_exceeds_purchase`: the returned SKU that exceeds "
                                                "what was bought.")] = None
    constraint: Annotated[str | None, Meta(description="For `duplicate_member`: the rule the enrollment broke: "
                                                       "`members_active_email`, `members_active_phone` or "
                                                       "`members_active_external_id`.")] = None
    member_id: Annotated[int | None, Meta(description="For `duplicate_member`: the active member who already has "
                                                      "the email, phone or external id (`field` says which).")] = None
    merged_into: Annotated[int | None, Meta(description="For `member_merged`: the member the one asked for was merged "
                                                        "into; use that member.")] = None


class ErrorCode(msgspec.Struct, frozen=True):
    """One error a route may answer: its status, its code, what it means, and an example detail."""

    status: int
    code: str
    title: str
    example: str
    field: str | None = None


# the errors the framework and the service's plumbing answer, besides the domain's own (rewards.errors)
UNAUTHORIZED = ErrorCode(401, "unauthorized", "A valid bearer token is required", "send Authorization: Bearer <token>")
FORBIDDEN = ErrorCode(403, "forbidden", "This token may not do that", "this needs one of the scopes checkout")
RATE_LIMITED = ErrorCode(429, "rate_limited", "Too many requests", "a guest token may make 120 requests a minute")
UNAVAILABLE = ErrorCode(503, "database_unavailable", "The database cannot be reached; retry shortly",
                        "the database cannot be reached right now; retry shortly")
MALFORMED = ErrorCode(400, "malformed_request", "The request body is not valid JSON",
                      "the body is not valid JSON: malformed JSON")
TOO_LARGE = ErrorCode(413, "payload_too_large", "The request body is too large",
                      "Request Entity Too Large")
INVALID = ErrorCode(422, "validation_error", "The request is not valid",
                    "Expected `int`, got `str`", field="lines[0].amount_cents")


def problem_example(error: ErrorCode) -> dict[str, Any]:
    body = Problem(type=PROBLEM_TYPE + error.code, title=error.title, status=error.status, detail=error.example,
                   code=error.code, field=error.field,
                   retry_after={429: 60, 503: 1}.get(error.status))
    return msgspec.to_builtins(body)


def error_responses(errors: Iterable[ErrorCode]) -> dict[int, ResponseSpec]:
    """One response per status, its description naming every code it may carry, an example each."""
    by_status: dict[int, list[ErrorCode]] = {}
    for error in errors:
        listed = by_status.setdefault(error.status, [])
        if error.code not in {e.code for e in listed}:
            listed.append(error)
    return {
        status: ResponseSpec(
            data_container=Problem,
            media_type=PROBLEM,
            generate_examples=False,
            description="; ".join(f"`{e.code}`: {e.title}" for e in listed),
            examples=[Example(summary=e.code, value=problem_example(e)) for e in listed],
        )
        for status, listed in sorted(by_status.items())
    }


TAGS = [
    Tag(name="members", description="Enrollment, profiles, balances, activity, cancellation and erasure."),
    Tag(name="purchases", description="Purchases, returns and rewards, as checkout systems post them."),
    Tag(name="program", description="The program's rules, versioned by the date they take effect."),
    Tag(name="desk", description="At the register and the guest-services desk: find a member, adjust points, "
                                 "merge duplicates."),
    Tag(name="keys", description="API keys: list them, revoke one."),
    Tag(name="mailing list", description="Email and text subscriptions, offers, and inbound texts."),
    Tag(name="reports", description="The Notice of Financial Incentive's figures and the liability report."),
    Tag(name="operations", description="Health, readiness and metrics, for load balancers and monitoring."),
]

DESCRIPTION = """\
The Westique Rewards program and its financial-incentive disclosures.

Every `/v1` route needs `Authorization: Bearer <token>` (the scheme in any case). A token
carries scopes (`checkout`, `guest_services`, `compliance`, `admin`), or is a guest token
bound to one member, which reads and cancels that member only and is rate-limited. Each
route says which scopes it accepts.

Errors are `application/problem+json` documents with a stable `code`; each route lists the
codes it may answer. Amounts are integer cents; points are integer point-cents (hundredths
of a point). Postings are idempotent: the same `purchase_id` (or `return_id`, or offer
`code`) with the same body answers 200 with the first answer; with another body, 409.
"""


def swagger_ui_folder() -> Path:
    """Swagger UI's files, as installed with the package (found without importing it)."""
    spec = importlib.util.find_spec(SWAGGER_UI_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("swagger-ui-py is not installed: pip install westique-rewards brings it")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


def openapi_config(version: str) -> OpenAPIConfig:
    """The document at /schema/openapi.json and Swagger UI at /schema, with no file from the
    network: the page loads Swagger UI from /schema/assets, served by `assets_router`."""
    return OpenAPIConfig(
        title="Westique Rewards",
        version=version,
        description=DESCRIPTION,
        path=SCHEMA_PATH,
        tags=TAGS,
        components=Components(security_schemes={SECURITY_SCHEME: SecurityScheme(
            type="http", scheme="bearer",
            description="An API key or a guest token, made with `rewards keys create`.",
        )}),
        render_plugins=[SwaggerRenderPlugin(
            path="/swagger",
            js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            css_url=f"{ASSETS_PATH}/swagger-ui.css",
            standalone_preset_js_url=f"{ASSETS_PATH}/swagger-ui-standalone-preset.js",
            favicon=f"<link rel='icon' type='image/png' href='{ASSETS_PATH}/favicon-32x32.png'>",
        )],
    )


def assets_router() -> Router:
    return create_static_files_router(path=ASSETS_PATH, directories=[swagger_ui_folder()],
                                      include_in_schema=False, opt={"public": True})
