"""Pushing events to webhooks, as the Standard Webhooks specification describes.

A webhook is a reader of the feed (`rewards.events.feed`) that pushes what it reads. Each keeps
its position in the feed (`webhooks.position_*`); the job runner (`rewards.jobs`), every tick:
1. seals a pass of the feed: the events committed since the last one;
2. reads, for each webhook with a free slot, the next events of its types after what it has read,
   and attempts them, a bounded number at once (no database connection is held meanwhile);
3. attempts the retries that are due (`webhook_deliveries`);
4. saves each webhook's position: the last event before which every attempt has ended, delivered
   or, if it failed, recorded in `webhook_deliveries` for its retries.
An event delivered at its first attempt costs no write at all; only a failure is a row.

Sending: a POST of the event's JSON (`rewards.events.feed.Event`) with `webhook-id` (the
event's id, the same at every attempt, so a receiver drops what it already has),
`webhook-timestamp` and `webhook-signature` (signed by the `standardwebhooks` package with the
webhook's secret). A 2xx answer is delivery; anything else (another status, a redirect, no
answer within the timeout, a refused connection) is a failed attempt, retried on the schedule
of the specification's reference implementation: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h after
each failure, eight attempts over 27 h 35 min. After the last the delivery is `failed`, listed,
and can be sent again.

At least once. A first attempt is not recorded until it ends; a runner killed meanwhile has not
moved the webhook's position past it, so the next runner reads and sends it again. A retry is
leased: claiming it counts the attempt and moves `next_attempt_at` past the attempt's timeout;
if its outcome is never written, the lease runs out and it is attempted again. Either way with
the same `webhook-id`: an event may arrive twice, never zero times.

A slow or dead endpoint never slows postings: postings only write their events; deliveries
run in the job runner, outside any request, each bounded by its timeout, at most `concurrency`
at once and at most `per_webhook` to one webhook, so one bad endpoint cannot hold every slot.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import aiohttp
import msgspec
from standardwebhooks.webhooks import Webhook

from rewards.coalescing import Coalescer
from rewards.db import Database
from rewards.events.feed import Event, Position, event_of, page_after, seal
from rewards.events.webhooks import SecretBox, SecretUnreadable

log = logging.getLogger("rewards.webhooks")

RETRY_SCHEDULE = (timedelta(seconds=5), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2),
                  timedelta(hours=5), timedelta(hours=10), timedelta(hours=10))
"""How long after each failed attempt the next one is made; after the last, the delivery is failed."""
USER_AGENT = "westique-rewards-webhooks/1"
ERROR_TEXT = 300  # characters of an endpoint's answer kept with a failed attempt
READ_AHEAD = 200  # events read from the feed for a webhook at once, started as its slots free up
RECORD_RETRY_SECONDS = 1.0

_encode = msgspec.json.Encoder().encode

WEBHOOKS = "SELECT id, url, types, secret_sealed, position_pass, position_tx, position_id FROM webhooks"
SAVE_POSITIONS = """
UPDATE webhooks w SET position_pass = p.pass, position_tx = p.tx, position_id = p.id
FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[]) AS p(webhook, pass, tx, id)
WHERE w.id = p.webhook"""

# Up to $1 due retries, at most $4 per webhook less those in flight ($2 webhooks, $3 counts),
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
SELECT c.id AS delivery_id, c.webhook_id, c.attempts, w.url, w.secret_sealed, e.id, e.type, e.member_id,
       e.occurred_at, e.data, (SELECT count(*) FROM candidates) AS due
FROM claimed c JOIN webhooks w ON w.id = c.webhook_id JOIN events e ON e.id = c.event_id
ORDER BY c.id"""

# The outcomes of retries that ended meanwhile, in one statement: delivered (whatever attempt it
# was: the event arrived), or failed and due again after its delay, or failed for good (no
# delay). A failed attempt's outcome is dropped when a later attempt was claimed meanwhile (its
# lease ran out): that attempt's outcome is the one that counts.
RECORD = """
UPDATE webhook_deliveries d
SET status = CASE WHEN o.delivered THEN 'delivered' WHEN o.delay IS NULL THEN 'failed' ELSE 'pending' END,
    delivered_at = CASE WHEN o.delivered THEN now() END,
    next_attempt_at = CASE WHEN o.delivered THEN NULL ELSE now() + o.delay END,
    last_response_status = o.status, last_error = o.error
FROM unnest($1::bigint[], $2::int[], $3::bool[], $4::int[], $5::text[], $6::interval[])
     AS o(id, attempt, delivered, status, error, delay)
WHERE d.id = o.id AND d.status = 'pending' AND (o.delivered OR d.attempts = o.attempt)"""

# First attempts that failed: each becomes a delivery, due again after its delay (none: failed).
# A webhook deleted meanwhile is skipped; an event already there (sent again after a crash) too.
FIRST_FAILED = """
INSERT INTO webhook_deliveries (webhook_id, event_id, status, attempts, next_attempt_at, last_attempt_at,
                                last_response_status, last_error)
SELECT f.webhook, f.event, CASE WHEN f.delay IS NULL THEN 'failed' ELSE 'pending' END, 1, now() + f.delay, f.tried,
       f.status, f.error
FROM unnest($1::bigint[], $2::bigint[], $3::timestamptz[], $4::int[], $5::text[], $6::interval[])
     AS f(webhook, event, tried, status, error, delay)
JOIN webhooks w ON w.id = f.webhook
ON CONFLICT (webhook_id, event_id) DO NOTHING"""


@dataclass
class Stream:
    """A webhook as the deliverer reads the feed for it."""

    webhook_id: int
    url: str
    types: list[str] | None
    secret_sealed: str
    saved: Position
    """Its position as stored: every attempt of an event up to it has ended."""
    read_to: Position
    """Where its next read starts."""
    queue: deque[tuple[Position, Event]] = field(default_factory=deque)
    """Events read and not yet attempted, in feed order."""
    window: deque[list[object]] = field(default_factory=deque)
    """The events attempted past `saved`, in feed order: [position, ended]."""
    dirty: bool = False
    """`saved` moved since it was last stored."""
    more: bool = False
    """Its last read was full: more may be waiting in the feed."""

    def ended(self, entry: list[object]) -> None:
        entry[1] = True
        while self.window and self.window[0][1]:
            self.saved = self.window.popleft()[0]  # type: ignore[assignment]
            self.dirty = True
        self.caught_up()

    def caught_up(self) -> None:
        """With nothing attempted or waiting, the position is where the next read starts."""
        if not self.window and not self.queue and self.saved != self.read_to:
            self.saved, self.dirty = self.read_to, True


class Attempt(msgspec.Struct, kw_only=True):
    webhook_id: int
    attempt: int
    url: str
    secret_sealed: str
    event: Event
    delivery_id: int | None = None
    """A retry's delivery; None for a first attempt, read from the feed."""
    tried_at: datetime = msgspec.field(default_factory=lambda: datetime.now(UTC))


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
    """Reads the feed for each webhook and sends what it reads, and the retries that are due, a
    bounded number at once."""

    def __init__(self, db: Database, box: SecretBox, *, timeout: float = 10.0, concurrency: int = 16,
                 per_webhook: int = 8, schedule: Sequence[timedelta] = RETRY_SCHEDULE) -> None:
        self.db = db
        self.box = box
        self.timeout = timeout
        self.concurrency = concurrency
        self.per_webhook = per_webhook
        self.schedule = tuple(schedule)
        # a retry's lease: its timeout, and time to write its outcome
        self.lease = timedelta(seconds=2 * timeout + 5)
        self._streams: dict[int, Stream] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._in_flight: Counter[int] = Counter()
        self._secrets: dict[str, str] = {}
        self._session: aiohttp.ClientSession | None = None
        # outcomes of attempts that end together are written together
        self._records: Coalescer[tuple[Attempt, Outcome], None] = Coalescer(self._record_batch, in_flight=1)
        # more was waiting than the last reads took: an attempt that ends starts the next at once,
        # so a backlog drains as fast as the endpoints answer, not one read per tick
        self._retry_backlog = False
        self._filling = False
        self._fill_again = False

    async def tick(self) -> str | None:
        """Seal, read the webhooks' streams and the due retries, start what fits, save the
        positions; what it did, or None."""
        sealed = await seal(self.db)
        await self._refresh()
        started = await self.fill(read=True)
        await self.save_positions()
        if sealed is None and not started:
            return None
        return f"pass {sealed or '-'}, {started} attempts started"

    async def _refresh(self) -> None:
        """The webhooks as stored: new ones start at their stored position, deleted ones go."""
        found = {r["id"]: r for r in await self.db.run(WEBHOOKS)}
        for gone in set(self._streams) - set(found):
            del self._streams[gone]
        for webhook_id, row in found.items():
            if webhook_id not in self._streams:
                position = (row["position_pass"], row["position_tx"], row["position_id"])
                self._streams[webhook_id] = Stream(webhook_id, row["url"], list(row["types"]) or None,
                                                   row["secret_sealed"], saved=position, read_to=position)

    async def fill(self, *, read: bool = False) -> int:
        """Start the attempts that fit: the streams' next events (read from the feed when `read`,
        or when a stream's queue ran out while more waits), then due retries. One fill at a time."""
        if self._filling:
            self._fill_again = True
            return 0
        self._filling = True
        started = 0
        try:
            while True:
                self._fill_again = False
                started += await self._start_streams(read)
                if read or self._retry_backlog:
                    started += await self._claim_retries()
                if not self._fill_again:
                    return started
                read = False
        finally:
            self._filling = False

    def _free(self, webhook_id: int) -> int:
        return min(self.concurrency - len(self._tasks), self.per_webhook - self._in_flight[webhook_id])

    async def _start_streams(self, read: bool) -> int:
        started = 0
        for stream in list(self._streams.values()):
            room = self._free(stream.webhook_id)
            if room <= 0:
                continue
            if len(stream.queue) < room and (read or stream.more):
                items, stream.read_to = await page_after(self.db, stream.read_to, stream.types, READ_AHEAD)
                stream.queue.extend(items)
                stream.more = len(items) == READ_AHEAD
            while stream.queue and room > 0:
                position, event = stream.queue.popleft()
                entry: list[object] = [position, False]
                stream.window.append(entry)
                self._start(Attempt(webhook_id=stream.webhook_id, attempt=1, url=stream.url,
                                    secret_sealed=stream.secret_sealed, event=event), stream, entry)
                room -= 1
                started += 1
            stream.caught_up()
        return started

    async def _claim_retries(self) -> int:
        free = self.concurrency - len(self._tasks)
        if free <= 0:
            return 0
        busy = [(w, n) for w, n in self._in_flight.items() if n > 0]
        rows = await self.db.run(CLAIM, free, [w for w, _ in busy], [n for _, n in busy], self.per_webhook,
                                 self.lease)
        self._retry_backlog = bool(rows) and rows[0]["due"] > len(rows)
        for row in rows:
            self._start(Attempt(webhook_id=row["webhook_id"], attempt=row["attempts"], url=row["url"],
                                secret_sealed=row["secret_sealed"], delivery_id=row["delivery_id"],
                                event=event_of(row)), None, None)
        return len(rows)

    def _start(self, attempt: Attempt, stream: Stream | None, entry: list[object] | None) -> None:
        self._in_flight[attempt.webhook_id] += 1
        task = asyncio.create_task(self._attempt(attempt, stream, entry))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def save_positions(self) -> None:
        """Store the positions that moved (after their failures were recorded)."""
        moved = [s for s in self._streams.values() if s.dirty]
        if not moved:
            return
        for stream in moved:
            stream.dirty = False
        try:
            await self.db.run(SAVE_POSITIONS, [s.webhook_id for s in moved], [s.saved[0] for s in moved],
                              [s.saved[1] for s in moved], [s.saved[2] for s in moved])
        except BaseException:
            for stream in moved:
                stream.dirty = True
            raise

    async def drain(self) -> None:
        """Wait for the attempts under way (and those they start), then save the positions."""
        while self._tasks or self._filling:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
            await asyncio.sleep(0)
        await self.save_positions()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self.save_positions()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _attempt(self, attempt: Attempt, stream: Stream | None, entry: list[object] | None) -> None:
        try:
            while True:
                try:
                    outcome = await self.send(attempt)
                    await self._record(attempt, outcome)
                    break
                except Exception:  # noqa: BLE001 - below
                    log.exception("webhook %s: the outcome of %s could not be recorded", attempt.webhook_id,
                                  attempt.event.id)
                    if stream is None:
                        return  # a retry: its lease runs out and it is claimed again
                    # a first attempt holds its webhook's position until its outcome is written
                    await asyncio.sleep(RECORD_RETRY_SECONDS)
            if stream is not None and entry is not None:
                stream.ended(entry)
        finally:
            self._in_flight[attempt.webhook_id] -= 1
        if (stream is not None and (stream.queue or stream.more)) or self._retry_backlog:
            try:
                await self.fill()
            except Exception:  # noqa: BLE001 - the next tick starts them
                log.exception("starting webhook deliveries")

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
        if outcome.delivered and attempt.delivery_id is None:
            return  # a first attempt that succeeded: nothing to write, the position moves past it
        await self._records.submit((attempt, outcome))
        if not outcome.delivered and retry_after(attempt.attempt, self.schedule) is None:
            log.warning("webhook %s: %s failed %d times; the last: %s", attempt.webhook_id, attempt.event.id,
                        attempt.attempt, outcome.error)

    async def _record_batch(self, batch: list[tuple[Attempt, Outcome]]) -> list[None]:
        retries = [(a, o) for a, o in batch if a.delivery_id is not None]
        firsts = [(a, o) for a, o in batch if a.delivery_id is None]
        if retries:
            await self.db.run(RECORD, [a.delivery_id for a, _ in retries], [a.attempt for a, _ in retries],
                              [o.delivered for _, o in retries], [o.status for _, o in retries],
                              [o.error for _, o in retries],
                              [None if o.delivered else retry_after(a.attempt, self.schedule) for a, o in retries])
        if firsts:
            await self.db.run(FIRST_FAILED, [a.webhook_id for a, _ in firsts],
                              [int(a.event.id.removeprefix("evt_")) for a, _ in firsts],
                              [a.tried_at for a, _ in firsts], [o.status for _, o in firsts],
                              [o.error for _, o in firsts], [retry_after(1, self.schedule) for _ in firsts])
        return [None] * len(batch)
