"""HTTP handlers of the events feed and the webhooks; docs/events.md says what they promise."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, delete, get, post
from litestar.datastructures import State
from litestar.params import JSONBody, Parameter

from rewards import errors
from rewards.access import scoped
from rewards.auth import actor_of
from rewards.events import feed, webhooks
from rewards.events.feed import FeedPage
from rewards.events.webhooks import (
    DeliveryOut,
    DeliveryPage,
    RetriedOut,
    WebhookCreatedOut,
    WebhookIn,
    WebhookList,
)
from rewards.examples import register_examples

WebhookPath = Annotated[int, Parameter(ge=1, le=2**62, description="the webhook's id")]
DeliveryPath = Annotated[int, Parameter(ge=1, le=2**62, description="the delivery's id")]


class WebhookDeletedOut(msgspec.Struct, kw_only=True):
    webhook_id: int
    status: Literal["deleted"] = "deleted"


# examples first: @scoped reads them as it declares each route
_EVENT = {"id": "evt_1042", "type": "reward.issued", "occurred_at": "2026-11-25T10:00:00Z", "member_id": 1,
          "data": {"code": "WR3F9A61C0B27D4E85", "value_cents": 1000, "issued_at": "2026-11-25T10:00:00Z",
                   "expires_at": "2027-02-23T10:00:00Z", "purchase_id": "pos-12-000981"}}
_CREATED_AT = "2026-12-01T08:00:00Z"
_DELIVERY = {"delivery_id": 88, "event_id": "evt_1042", "event_type": "reward.issued", "status": "failed",
             "attempts": 8, "created_at": "2026-11-25T10:00:01Z", "next_attempt_at": None,
             "last_attempt_at": "2026-11-26T13:35:02Z", "last_response_status": 503,
             "last_error": "HTTP 503: Service Unavailable", "delivered_at": None}
register_examples({
    FeedPage: {"items": [_EVENT, {
        "id": "evt_1043", "type": "reward.expiring", "occurred_at": "2027-02-16T10:05:00Z", "member_id": 1,
        "data": {"code": "WR8C1D07E4A95B3F26", "value_cents": 1000, "issued_at": "2026-11-25T10:00:00Z",
                 "expires_at": "2027-02-23T10:00:00Z"}}],
        "next_cursor": "ZjEuMTIuODE3NzQuMTA0Mw"},
    WebhookIn: {"url": "https://mailer.westique.example/hooks/rewards", "types": ["reward.issued", "reward.expiring"],
                "description": "the email sender"},
    WebhookCreatedOut: {"webhook_id": 3, "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw7pYdTk1jyp0=",
                        "url": "https://mailer.westique.example/hooks/rewards",
                        "types": ["reward.expiring", "reward.issued"], "description": "the email sender",
                        "created_at": _CREATED_AT},
    WebhookList: {"items": [{"webhook_id": 3, "url": "https://mailer.westique.example/hooks/rewards",
                             "types": ["reward.expiring", "reward.issued"], "description": "the email sender",
                             "created_at": _CREATED_AT, "pending": 0, "failed": 1}]},
    WebhookDeletedOut: {"webhook_id": 3, "status": "deleted"},
    DeliveryPage: {"items": [_DELIVERY], "next_cursor": None},
    DeliveryOut: {**_DELIVERY, "status": "pending", "attempts": 0, "next_attempt_at": "2026-12-01T09:00:00Z"},
    RetriedOut: {"requeued": 12},
})


@scoped("integrations")
@get("/v1/events", tags=["events"], summary="Read the events feed")
async def read_events(
    state: State,
    after: Annotated[str | None, Parameter(max_length=200, description=(
        "the `next_cursor` of the page before; none: from the first event"))] = None,
    types: Annotated[str | None, Parameter(max_length=2000, description=(
        "event types to keep, separated by commas (`reward.issued,reward.expiring`); none: every type"))] = None,
    limit: Annotated[int, Parameter(ge=1, le=1000, description="events per page, at most")] = 100,
) -> FeedPage:
    """What happened, in the order the changes committed. Follow `next_cursor` (always given) to
    read every event exactly once: an event never appears behind a cursor already handed out,
    even when postings commit in another order than they began. An empty page means everything
    committed so far was read; ask again later with the same cursor. Each event:
    `{"id", "type", "occurred_at", "member_id"?, "data"}`; personal data only in messages to
    deliver (`offer.delivery`)."""
    return await feed.read(state.db, after=after, types=feed.parse_types(types), limit=limit)


@scoped("admin")
@post("/v1/webhooks", status_code=201, tags=["events"], summary="Register a webhook")
async def create_webhook(data: JSONBody[WebhookIn], state: State, request: Request[Any, Any, Any]) -> WebhookCreatedOut:
    """Push events to `url` as the Standard Webhooks specification describes: each a POST of the
    event's JSON with `webhook-id` (the event's id), `webhook-timestamp` and `webhook-signature`
    (HMAC-SHA256 with the secret). A 2xx answer is delivery; anything else is retried for 27
    hours (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h), then the delivery is `failed`. The
    answer holds the signing secret, shown this once. `types`: the event types to send (none:
    every type)."""
    return await webhooks.create(state.db, state.webhook_secrets, data, key_id=actor_of(request).key_id)


@scoped("admin")
@get("/v1/webhooks", tags=["events"], summary="List the webhooks")
async def list_webhooks(state: State) -> WebhookList:
    """Every webhook with its pending and failed deliveries (never its secret)."""
    return await webhooks.list_all(state.db)


@scoped("admin", errors=[errors.NotFound])
@delete("/v1/webhooks/{webhook_id:int}", status_code=200, tags=["events"], summary="Delete a webhook")
async def delete_webhook(webhook_id: WebhookPath, state: State) -> WebhookDeletedOut:
    """Stop pushing to the webhook: it is deleted with its secret and its deliveries, pending or not."""
    await webhooks.delete(state.db, webhook_id)
    return WebhookDeletedOut(webhook_id=webhook_id)


@scoped("admin", errors=[errors.NotFound])
@get("/v1/webhooks/{webhook_id:int}/deliveries", tags=["events"],
     summary="List a webhook's retried and failed deliveries")
async def list_deliveries(
    webhook_id: WebhookPath,
    state: State,
    status: Annotated[Literal["pending", "delivered", "failed"] | None, Parameter(
        description="only the deliveries in this state (`failed`: given up after every retry)")] = None,
    cursor: Annotated[str | None, Parameter(max_length=200, description="the `next_cursor` of the page before")] = None,
    limit: Annotated[int, Parameter(ge=1, le=200, description="deliveries per page, at most")] = 50,
) -> DeliveryPage:
    """The events whose first attempt to the webhook failed, newest first: each with its attempts,
    the endpoint's last answer and why the last attempt failed; `pending` ones wait for a retry,
    `failed` ones were given up after every retry (send them again with `retry`). An event
    delivered at its first attempt is not listed."""
    return await webhooks.deliveries(state.db, webhook_id, status=status, cursor=cursor, limit=limit)


@scoped("admin", errors=[errors.NotFound])
@post("/v1/webhooks/{webhook_id:int}/deliveries/{delivery_id:int}/retry", status_code=202, tags=["events"],
      summary="Send a delivery again")
async def retry_delivery(webhook_id: WebhookPath, delivery_id: DeliveryPath, state: State) -> DeliveryOut:
    """Send a failed (or delivered) delivery again, now, with a new round of retries and the same
    `webhook-id`, so a receiver that has it already can tell. A pending one is left as it is."""
    return await webhooks.retry(state.db, webhook_id, delivery_id)


@scoped("admin", errors=[errors.NotFound])
@post("/v1/webhooks/{webhook_id:int}/deliveries/retry-failed", status_code=202, tags=["events"],
      summary="Send every failed delivery again")
async def retry_failed_deliveries(webhook_id: WebhookPath, state: State) -> RetriedOut:
    """After an endpoint was down for longer than the retries last: every failed delivery of the
    webhook is sent again, now, each with a new round of retries and its own `webhook-id`."""
    return await webhooks.retry_failed(state.db, webhook_id)


ROUTES = [read_events, create_webhook, list_webhooks, delete_webhook, list_deliveries, retry_delivery,
          retry_failed_deliveries]
