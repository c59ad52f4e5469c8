"""Pushing events to webhooks, as the Standard Webhooks specification describes.

One job runner does it (`rewards.jobs`), in three steps each tick:
1. seal a pass of the feed (`rewards.events.feed`): the events committed since the last one;
2. dispatch: every event of the passes not yet dispatched becomes a delivery row for each
   webhook that wants its type, and the dispatch pointer moves past them, in one transaction
   (`webhook_deliveries` is unique by webhook and event: an event is handed to a webhook once);
3. send the deliveries that are due, a bounded number at once, without a database connection
   or transaction held while a request is under way.

Sending: a POST of the event's JSON (`rewards.events.feed.Event`) with `webhook-id` (the
event's id, the same at every attempt, so a receiver drops what it already has),
`webhook-timestamp` and `webhook-signature` (signed by the `standardwebhooks` package with the
webhook's secret). A 2xx answer is delivery; anything else (another status, a redirect, no
answer within the timeout, a refused connection) is a failed attempt, retried on the schedule
of the specification's reference implementation: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h after
each failure, eight attempts over 27 h 35 min. After the last the delivery is `failed`, listed,
and can be sent again.

At least once: a delivery is leased, not locked. Claiming it counts an attempt and moves
`next_attempt_at` past the attempt's timeout; the outcome is written when the attempt ends. A
runner killed mid-attempt writes nothing: the lease runs out and the delivery is attempted again,
with the same `webhook-id`. So an event may arrive twice, never zero times.

A slow or dead endpoint never slows postings: postings only write their events; deliveries
run in the job runner, outside any request, each bounded by its timeout, at most `concurrency`
at once and at most `per_webhook` to one webhook, so one bad endpoint cannot hold every slot.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import aiohttp
import asyncpg
import msgspec
from standardwebhooks.webhooks import Webhook

from rewards.db import Database
from rewards.events.feed import Event, event_id, pass_events, seal
from rewards.events.webhooks import SecretBox, SecretUnreadable

log = logging.getLogger("rewards.webhooks")

RETRY_SCHEDULE = (timedelta(seconds=5), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2),
                  timedelta(hours=5), timedelta(hours=10), timedelta(hours=10))
"""How long after each failed attempt the next one is made; after the last, the delivery is failed."""
USER_AGENT = "westique-rewards-webhooks/1"
ERROR_TEXT = 300  # characters of an endpoint's answer kept with a failed attempt
PASSES_PER_DISPATCH = 100

_encode = msgspec.json.Encoder().encode

# --- dispatch ------------------------------------------------------------------------------------

DISPATCH = f"""
INSERT INTO webhook_deliveries (webhook_id, event_id, next_attempt_at)
SELECT w.id, e.id, now()
FROM event_passes p
CROSS JOIN LATERAL (SELECT -1::bigint AS from_tx, -1::bigint AS from_id) s
CROSS JOIN LATERAL ({pass_events(limit="ALL")}) e
JOIN webhooks w ON cardinality(w.types) = 0 OR e.type = ANY (w.types)
WHERE p.pass > $1 AND p.pass <= $2
ORDER BY p.pass, e.tx, e.id, w.id
ON CONFLICT (webhook_id, event_id) DO NOTHING"""


async def dispatch(db: Database) -> int:
    """Hand the events of the passes not yet dispatched to the webhooks that want them; the
    deliveries made. Passes are dispatched once, in order (the pointer is locked and moved in
    the same transaction)."""

    async def work(conn: asyncpg.Connection) -> int:
        last = await conn.fetchval("SELECT last_pass FROM webhook_dispatch WHERE id = 1 FOR UPDATE")
        upto = await conn.fetchval("SELECT max(pass) FROM (SELECT pass FROM event_passes WHERE pass > $1 "
                                   "ORDER BY pass LIMIT $2) p", last, PASSES_PER_DISPATCH)
        if upto is None:
            return 0
        made = 0
        if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM webhooks)"):
            made = int((await conn.execute(DISPATCH, last, upto)).split()[-1])
        await conn.execute("UPDATE webhook_dispatch SET last_pass = $1 WHERE id = 1", upto)
        return made

    return await db.transaction(work)


# --- claiming and recording ------------------------------------------------------------------------

# Up to $1 due deliveries, at most $4 per webhook less those in flight ($2 webhooks, $3 counts),
# leased for $5: their attempt is counted now, and if nothing is written before the lease
# ends, they are due again.
CLAIM = """
WITH busy AS (SELECT * FROM unnest($2::bigint[], $3::int[]) AS b(webhook_id, n)),
candidates AS MATERIALIZED (
    SELECT id, webhook_id, next_attempt_at FROM webhook_deliveries
    WHERE status = 'pending' AND next_attempt_at <= now()
    ORDER BY next_attempt_at, id LIMIT $1 * 4
    FOR UPDATE SKIP LOCKED),
due AS (
    SELECT c.id FROM (SELECT c.*, row_number() OVER (PARTITION BY c.webhook_id ORDER BY c.next_attempt_at, c.id) AS k
                      FROM candidates c) c
    LEFT JOIN busy b ON b.webhook_id = c.webhook_id
    WHERE c.k <= $4 - coalesce(b.n, 0)
    ORDER BY c.next_attempt_at, c.id LIMIT $1),
claimed AS (
    UPDATE webhook_deliveries d SET attempts = d.attempts + 1, last_attempt_at = now(),
                                    next_attempt_at = now() + $5::interval
    FROM due WHERE d.id = due.id
    RETURNING d.id, d.webhook_id, d.event_id, d.attempts)
SELECT c.id, c.webhook_id, c.attempts, w.url, w.secret_sealed, e.id AS event_id, e.type, e.member_id,
       e.occurred_at, e.data, (SELECT count(*) FROM candidates) AS due
FROM claimed c JOIN webhooks w ON w.id = c.webhook_id JOIN events e ON e.id = c.event_id
ORDER BY c.id"""

DELIVERED = """
UPDATE webhook_deliveries SET status = 'delivered', delivered_at = now(), next_attempt_at = NULL,
                              last_response_status = $2, last_error = NULL
WHERE id = $1 AND status = 'pending'"""
# the outcome of a failed attempt, unless a later attempt was claimed meanwhile (its lease ran out)
ATTEMPT_FAILED = """
UPDATE webhook_deliveries SET last_response_status = $3, last_error = $4,
                              status = CASE WHEN $5::interval IS NULL THEN 'failed' ELSE 'pending' END,
                              next_attempt_at = now() + $5::interval
WHERE id = $1 AND attempts = $2 AND status = 'pending'"""


class Attempt(msgspec.Struct, kw_only=True):
    delivery_id: int
    webhook_id: int
    attempt: int
    url: str
    secret_sealed: str
    event: Event


class Outcome(msgspec.Struct, kw_only=True):
    delivered: bool
    status: int | None = None
    error: str | None = None


def retry_after(attempt: int, schedule: Sequence[timedelta]) -> timedelta | None:
    """How long after failed attempt number `attempt` (1 is the first) the next is due; None: no more."""
    return schedule[attempt - 1] if attempt <= len(schedule) else None


def signed_request(event: Event, secret: str, *, now: datetime | None = None) -> tuple[bytes, dict[str, str]]:
    """The body and the headers of a delivery, signed as the Standard Webhooks specification says."""
    body = _encode(event)
    when = (now or datetime.now(UTC)).replace(microsecond=0)
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": event.id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": Webhook(secret).sign(event.id, when, body.decode()),
    }
    return body, headers


class Deliverer:
    """Claims due deliveries and sends them, a bounded number at once."""

    def __init__(self, db: Database, box: SecretBox, *, timeout: float = 10.0, concurrency: int = 16,
                 per_webhook: int = 8, schedule: Sequence[timedelta] = RETRY_SCHEDULE) -> None:
        self.db = db
        self.box = box
        self.timeout = timeout
        self.concurrency = concurrency
        self.per_webhook = per_webhook
        self.schedule = tuple(schedule)
        # an attempt's lease: its timeout, and time to write its outcome
        self.lease = timedelta(seconds=2 * timeout + 5)
        self._tasks: set[asyncio.Task[None]] = set()
        self._in_flight: Counter[int] = Counter()
        # more was due than the last claim took: an attempt that ends claims again at once, so
        # a backlog drains as fast as the endpoints answer, not one claim per tick
        self._backlog = False
        self._claiming = False
        self._claim_again = False
        self._secrets: dict[str, str] = {}
        self._session: aiohttp.ClientSession | None = None

    async def tick(self) -> str | None:
        """Seal, dispatch, and start the attempts that are due and fit; what it did, or None."""
        sealed = await seal(self.db)
        dispatched = await dispatch(self.db)
        started = await self.start_due()
        if sealed is None and not dispatched and not started:
            return None
        return f"pass {sealed or '-'}, {dispatched} deliveries made, {started} attempts started"

    async def start_due(self) -> int:
        """Claim the due deliveries that fit and start their attempts; how many. One claim at a time."""
        if self._claiming:
            self._claim_again = True
            return 0
        self._claiming = True
        started = 0
        try:
            while True:
                self._claim_again = False
                started += await self._claim()
                if not (self._claim_again and self._backlog):
                    return started
        finally:
            self._claiming = False

    async def _claim(self) -> int:
        free = self.concurrency - len(self._tasks)
        if free <= 0:
            self._backlog = True
            return 0
        busy = [(w, n) for w, n in self._in_flight.items() if n > 0]
        rows = await self.db.run(CLAIM, free, [w for w, _ in busy], [n for _, n in busy], self.per_webhook,
                                 self.lease)
        self._backlog = bool(rows) and rows[0]["due"] > len(rows)
        for row in rows:
            attempt = Attempt(delivery_id=row["id"], webhook_id=row["webhook_id"], attempt=row["attempts"],
                              url=row["url"], secret_sealed=row["secret_sealed"],
                              event=Event(id=event_id(row["event_id"]), type=row["type"],
                                          occurred_at=row["occurred_at"], member_id=row["member_id"],
                                          data=row["data"]))
            self._in_flight[attempt.webhook_id] += 1
            task = asyncio.create_task(self._attempt(attempt))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return len(rows)

    async def drain(self) -> None:
        """Wait for the attempts under way (and those they start)."""
        while self._tasks or self._claiming:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
            await asyncio.sleep(0)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _attempt(self, attempt: Attempt) -> None:
        try:
            outcome = await self.send(attempt)
            await self._record(attempt, outcome)
        except Exception:  # noqa: BLE001 - the lease runs out and the delivery is attempted again
            log.exception("webhook delivery %s: the outcome could not be recorded", attempt.delivery_id)
        finally:
            self._in_flight[attempt.webhook_id] -= 1
        if self._backlog:
            try:
                await self.start_due()
            except Exception:  # noqa: BLE001 - the next tick claims them
                log.exception("claiming webhook deliveries")

    def _secret(self, sealed: str) -> str:
        found = self._secrets.get(sealed)
        if found is None:
            found = self._secrets[sealed] = self.box.open(sealed)
        return found

    async def send(self, attempt: Attempt) -> Outcome:
        """One attempt: its outcome, never an exception."""
        try:
            body, headers = signed_request(attempt.event, self._secret(attempt.secret_sealed))
        except SecretUnreadable as exc:
            return Outcome(delivered=False, error=str(exc))
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.concurrency, limit_per_host=self.per_webhook),
                timeout=aiohttp.ClientTimeout(total=self.timeout))
        try:
            async with self._session.post(attempt.url, data=body, headers=headers, allow_redirects=False) as answer:
                if 200 <= answer.status < 300:
                    return Outcome(delivered=True, status=answer.status)
                said = (await answer.content.read(ERROR_TEXT)).decode(errors="replace").strip()
                return Outcome(delivered=False, status=answer.status,
                               error=f"HTTP {answer.status}" + (f": {said}" if said else ""))
        except TimeoutError:
            return Outcome(delivered=False, error=f"no answer within {self.timeout:g} s")
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return Outcome(delivered=False, error=f"{type(exc).__name__}: {exc}"[:ERROR_TEXT])

    async def _record(self, attempt: Attempt, outcome: Outcome) -> None:
        if outcome.delivered:
            await self.db.run(DELIVERED, attempt.delivery_id, outcome.status)
            return
        delay = retry_after(attempt.attempt, self.schedule)
        await self.db.run(ATTEMPT_FAILED, attempt.delivery_id, attempt.attempt, outcome.status, outcome.error, delay)
        if delay is None:
            log.warning("webhook %s: delivery %s of %s failed %d times; the last: %s", attempt.webhook_id,
                        attempt.delivery_id, attempt.event.id, attempt.attempt, outcome.error)
