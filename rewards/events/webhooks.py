"""Webhooks: the endpoints events are pushed to, their signing secrets, and their deliveries.

A webhook reads the feed from its own position (`rewards.events.delivery`); an event whose
first attempt fails becomes a delivery row, retried on the schedule, listed, and sent again on
request. An event delivered at its first attempt leaves no row.

A webhook names a URL and the event types it wants (none: every type). Its secret is a
Standard Webhooks secret (`whsec_` and 32 random bytes in base64), shown once, when it is made.
The service must keep it to sign every delivery, so it is stored sealed: encrypted and
authenticated with Fernet (AES-128-CBC and HMAC-SHA256, `cryptography`), under a key derived by
HKDF-SHA256 from REWARDS_SECRET_KEY. A copy of the database alone (a backup, a replica, a
leaked dump) then cannot forge deliveries; whoever also holds the service's key can, as they
can forge its unsubscribe links. The cost: changing or losing REWARDS_SECRET_KEY makes every
stored secret unreadable; deliveries then fail with that reason and are retried until the key
is back or the webhook is made again (docs/events.md).

Deleting a webhook deletes it with its deliveries and its secret.
"""

from __future__ import annotations

import base64
import secrets
from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import urlsplit

import asyncpg
import msgspec
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from msgspec import Meta

from rewards import errors
from rewards.db import Database
from rewards.events import EVENT_TYPES
from rewards.events.feed import END, event_id, seal
from rewards.schemas import Inbound

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
_HKDF_INFO = b"rewards.webhook-secrets"

EventType = Literal[EVENT_TYPES]  # type: ignore[valid-type]
DeliveryStatus = Literal["pending", "delivered", "failed"]


class SecretUnreadable(Exception):
    """A stored webhook secret cannot be opened with this REWARDS_SECRET_KEY."""


class SecretBox:
    """Seals and opens webhook secrets with a key derived from the service's secret key."""

    def __init__(self, service_key: str) -> None:
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(service_key.encode())
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode("ascii")

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode("ascii")).decode()
        except InvalidToken:
            raise SecretUnreadable("the webhook's secret cannot be read with this REWARDS_SECRET_KEY (was the key "
                                   "changed?); restore the key, or delete the webhook and make it again") from None


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


# --- the API's shapes --------------------------------------------------------------------------

Url = Annotated[str, Meta(min_length=10, max_length=2000, pattern=r"^https?://[^\s\x00-\x1f\x7f]+$")]
Description = Annotated[str, Meta(max_length=500, pattern=r"^[^\x00-\x1f\x7f]*$")]


class WebhookIn(Inbound, frozen=True, kw_only=True):
    url: Url
    """Where to POST each event: https in production (http is accepted, for receivers on a private network)."""
    types: Annotated[list[EventType], Meta(max_length=len(EVENT_TYPES))] = []
    """The event types to send; none: every type."""
    description: Description = ""


class WebhookOut(msgspec.Struct, kw_only=True):
    webhook_id: int
    url: str
    types: list[str]
    """The event types sent; empty: every type."""
    description: str
    created_at: datetime
    pending: int
    """Deliveries whose first attempt failed, waiting for their next."""
    failed: int
    """Deliveries given up after every retry (list them with ?status=failed, send them again with retry)."""


class WebhookCreatedOut(msgspec.Struct, kw_only=True):
    webhook_id: int
    secret: str
    """The signing secret (Standard Webhooks: `whsec_` and base64). Shown this once; keep it with the receiver."""
    url: str
    types: list[str]
    description: str
    created_at: datetime


class WebhookList(msgspec.Struct, kw_only=True):
    items: list[WebhookOut]


class DeliveryOut(msgspec.Struct, kw_only=True):
    """An event whose first attempt to the webhook failed, and what became of it."""

    delivery_id: int
    event_id: str
    """The event delivered: its `id`, and the `webhook-id` header of every attempt."""
    event_type: str
    status: DeliveryStatus
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    """Pending: when the next attempt is due."""
    last_attempt_at: datetime | None
    last_response_status: int | None
    """The HTTP status the endpoint answered at the last attempt; null when it did not answer."""
    last_error: str | None
    """Why the last attempt failed, in words."""
    delivered_at: datetime | None


class DeliveryPage(msgspec.Struct, kw_only=True):
    items: list[DeliveryOut]
    next_cursor: str | None
    """Pass it back as `cursor` for the next (older) page; null on the last."""


class RetriedOut(msgspec.Struct, kw_only=True):
    requeued: int
    """Failed deliveries now pending again, each due at once with a new round of retries."""


def check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.fragment or parts.username \
            or parts.password:
        raise errors.ValidationFailed("url is an http(s) URL with a host, without credentials or a fragment",
                                      field="url")
    return url


# --- storing -----------------------------------------------------------------------------------

_WEBHOOK_COLUMNS = """w.id, w.url, w.types, w.description, w.created_at,
    (SELECT count(*) FROM webhook_deliveries d WHERE d.webhook_id = w.id AND d.status = 'pending') AS pending,
    (SELECT count(*) FROM webhook_deliveries d WHERE d.webhook_id = w.id AND d.status = 'failed') AS failed"""


def _webhook_out(row: asyncpg.Record) -> WebhookOut:
    return WebhookOut(webhook_id=row["id"], url=row["url"], types=list(row["types"]), description=row["description"],
                      created_at=row["created_at"], pending=row["pending"], failed=row["failed"])


async def create(db: Database, box: SecretBox, webhook: WebhookIn, *, key_id: int | None) -> WebhookCreatedOut:
    """Register a webhook; the answer holds its secret, which is never shown again. It is sent the
    events committed from now on: its position is the end of the feed, sealed first."""
    secret = new_secret()
    types = sorted(set(webhook.types))
    url = check_url(webhook.url)
    await seal(db)
    rows = await db.run(
        f"""INSERT INTO webhooks (url, types, description, secret_sealed, created_by_key_id, position_pass,
                                  position_tx, position_id)
            VALUES ($1, $2, $3, $4, $5, ({END}), 0, 0) RETURNING id, created_at""",
        url, types, webhook.description, box.seal(secret), key_id)
    return WebhookCreatedOut(webhook_id=rows[0]["id"], secret=secret, url=webhook.url, types=types,
                             description=webhook.description, created_at=rows[0]["created_at"])


async def list_all(db: Database) -> WebhookList:
    rows = await db.run(f"SELECT {_WEBHOOK_COLUMNS} FROM webhooks w ORDER BY w.id")
    return WebhookList(items=[_webhook_out(r) for r in rows])


async def delete(db: Database, webhook_id: int) -> None:
    if not await db.run("DELETE FROM webhooks WHERE id = $1 RETURNING id", webhook_id):
        raise errors.NotFound(f"webhook {webhook_id} does not exist")


async def _exists(conn: asyncpg.Connection, webhook_id: int) -> None:
    if not await conn.fetchval("SELECT true FROM webhooks WHERE id = $1", webhook_id):
        raise errors.NotFound(f"webhook {webhook_id} does not exist")


_DELIVERY_COLUMNS = """d.id, d.event_id, e.type AS event_type, d.status, d.attempts, d.created_at, d.next_attempt_at,
    d.last_attempt_at, d.last_response_status, d.last_error, d.delivered_at"""
DELIVERIES = f"""
    SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN events e ON e.id = d.event_id
    WHERE d.webhook_id = $1 AND ($2::text IS NULL OR d.status = $2) AND d.id < $3
    ORDER BY d.id DESC LIMIT $4"""


def _delivery_out(row: asyncpg.Record) -> DeliveryOut:
    return DeliveryOut(delivery_id=row["id"], event_id=event_id(row["event_id"]), event_type=row["event_type"],
                       status=row["status"], attempts=row["attempts"], created_at=row["created_at"],
                       next_attempt_at=row["next_attempt_at"], last_attempt_at=row["last_attempt_at"],
                       last_response_status=row["last_response_status"], last_error=row["last_error"],
                       delivered_at=row["delivered_at"])


def _encode_cursor(delivery_id: int) -> str:
    return base64.urlsafe_b64encode(f"d1.{delivery_id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        prefix, _, number = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii").partition(".")
        if prefix != "d1" or not number.isdigit() or not 0 < int(number) < 2**63:
            raise ValueError(prefix)
        return int(number)
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.ValidationFailed("cursor is not one this service gave out", field="cursor") from exc


async def deliveries(db: Database, webhook_id: int, *, status: str | None, cursor: str | None,
                     limit: int) -> DeliveryPage:
    """A webhook's deliveries, newest first, of one status or all."""
    before = _decode_cursor(cursor) if cursor else 2**63 - 1
    async with db.connection() as conn:
        await _exists(conn, webhook_id)
        rows = await conn.fetch(DELIVERIES, webhook_id, status, before, limit + 1)
    page = rows[:limit]
    return DeliveryPage(items=[_delivery_out(r) for r in page],
                        next_cursor=_encode_cursor(page[-1]["id"]) if len(rows) > limit else None)


# Send again: due at once, with a round of retries of its own. A pending delivery is left as it is
# (it is queued already, or an attempt is under way).
RETRY = """
    UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = now(), delivered_at = NULL
    WHERE webhook_id = $1 AND id = $2 AND status <> 'pending'"""
RETRY_FAILED = """
    UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = now()
    WHERE webhook_id = $1 AND status = 'failed'"""
DELIVERY = f"""
    SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN events e ON e.id = d.event_id
    WHERE d.webhook_id = $1 AND d.id = $2"""


async def retry(db: Database, webhook_id: int, delivery_id: int) -> DeliveryOut:
    """Send a failed (or delivered) delivery again, with the same `webhook-id`; the delivery now."""
    async def work(conn: asyncpg.Connection) -> DeliveryOut:
        await _exists(conn, webhook_id)
        await conn.execute(RETRY, webhook_id, delivery_id)
        row = await conn.fetchrow(DELIVERY, webhook_id, delivery_id)
        if row is None:
            raise errors.NotFound(f"webhook {webhook_id} has no delivery {delivery_id}")
        return _delivery_out(row)

    return await db.transaction(work)


async def retry_failed(db: Database, webhook_id: int) -> RetriedOut:
    """Send every failed delivery of the webhook again (after an outage longer than the retries)."""
    async def work(conn: asyncpg.Connection) -> RetriedOut:
        await _exists(conn, webhook_id)
        status = await conn.execute(RETRY_FAILED, webhook_id)
        return RetriedOut(requeued=int(status.split()[-1]))

    return await db.transaction(work)
