"""The background jobs, and the one runner that runs them across all processes and hosts.

A job is a name, how often it runs, and one run (`Job`); `standard_jobs` lists the service's:
webhook delivery (`rewards.events.delivery`, every second), reward expiry (`rewards.expiry`,
every quarter of REWARDS_EXPIRY_INTERVAL), the erasures whose notice has ended
(`rewards.privacy.erasure.erase_due`, every minute) and the deletion of privacy requests closed
24 months ago (`rewards.privacy.requests.purge_expired`, hourly). A job added later is one more
`Job` in that list.

One runner at a time: a runner holds the PostgreSQL advisory lock `JOBS_LOCK` on a connection
of its own for as long as it runs the jobs. Others, on this host or another, try again every
`LOCK_RETRY_SECONDS` and one takes over when the lock is released, which PostgreSQL does the
moment the holder's session ends: its process exits or is killed, its connection breaks, or
it stops answering (the lock's session ends after `idle_session_timeout`, and TCP keepalives
find a host that vanished). The jobs are correct without the lock (deliveries are leased,
expiry and erasure go through the engine under the member's lock and do nothing twice); the lock keeps
them from doing the same work twice over.

`rewards serve` starts `rewards jobs run` beside its workers (REWARDS_JOBS=off to leave it to
another host), at a lower CPU priority (nice 10), so under load the postings come first and
the deliveries wait; `rewards jobs run [--once]` runs them alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg

from rewards.config import Settings, secret_key
from rewards.db import UNAVAILABLE, Database, DatabaseUnavailable, asyncpg_dsn
from rewards.engine import Engine, limits_of
from rewards.events.delivery import Deliverer
from rewards.events.webhooks import SecretBox
from rewards.expiry import expire_due
from rewards.privacy.erasure import erase_due
from rewards.privacy.requests import RETENTION, purge_expired
from rewards.rulebook import Rulebook

log = logging.getLogger("rewards.jobs")

JOBS_LOCK = 0x4A4F_4253  # "JOBS": the runner's lock, held by its own session
LOCK_RETRY_SECONDS = 2.0
HEARTBEAT_SECONDS = 5.0
# the lock's session: ended by the server when the runner stops answering, so another takes over
LOCK_SESSION = {"application_name": "rewards jobs", "idle_session_timeout": "60s",
                "tcp_keepalives_idle": "15", "tcp_keepalives_interval": "5", "tcp_keepalives_count": "3"}
# a webhook sees an event within about this long; each run that finds new events seals a pass
WEBHOOKS_EVERY_SECONDS = 1.0
ERASURES_EVERY_SECONDS = 60.0
PURGE_EVERY_SECONDS = 3600.0
ONCE_ROUNDS = 10_000  # `--once`: the jobs are run again while they find work, at most this many rounds


@dataclass(frozen=True)
class Job:
    name: str
    every: float
    """Seconds from the start of one run to the start of the next."""
    run: Callable[[], Awaitable[str | None]]
    """One run: what it did, for the log, or None when it found nothing to do."""
    drain: Callable[[], Awaitable[None]] | None = None
    """Wait for the work a run started in the background (`--once` waits for it)."""
    close: Callable[[], Awaitable[None]] | None = None
    log_level: int = logging.INFO
    """How what a run did is logged (a job that runs four times a second: DEBUG)."""


def standard_jobs(db: Database, settings: Settings) -> list[Job]:
    """The service's jobs, on `db`."""
    concurrency = settings.webhook_concurrency
    deliverer = Deliverer(db, SecretBox(secret_key(settings)), timeout=settings.webhook_timeout.total_seconds(),
                          concurrency=concurrency, per_webhook=max(1, concurrency // 2))
    engine = Engine(db, Rulebook(db), limits_of(settings))

    async def expire() -> str | None:
        run = await expire_due(engine, settings.expiry_notice)
        return str(run) if run.expired or run.noticed else None

    async def erase() -> str | None:
        erased = await erase_due(engine)
        return f"erased members {', '.join(map(str, erased))} (their notice ended)" if erased else None

    async def purge() -> str | None:
        purged = await purge_expired(db)
        return f"deleted {purged} privacy requests closed more than {RETENTION} ago" if purged else None

    return [
        Job("reward_expiry", settings.expiry_interval.total_seconds() / 4, expire),
        # an erasure happens within a minute of the end of its notice
        Job("erasures_due", ERASURES_EVERY_SECONDS, erase),
        Job("privacy_requests_purge", PURGE_EVERY_SECONDS, purge),
        Job("webhooks", WEBHOOKS_EVERY_SECONDS, deliverer.tick, drain=deliverer.drain, close=deliverer.close,
            log_level=logging.DEBUG),
    ]


class Runner:
    """Runs `jobs` while it holds the jobs lock; waits for the lock otherwise."""

    def __init__(self, url: str, jobs: list[Job]) -> None:
        self.url = url
        self.jobs = jobs
        self.holding = asyncio.Event()

    async def _take_lock(self) -> asyncpg.Connection | None:
        """A connection holding the jobs lock, or None when another runner holds it."""
        conn = await asyncpg.connect(asyncpg_dsn(self.url), server_settings=LOCK_SESSION, timeout=10)
        try:
            if await conn.fetchval("SELECT pg_try_advisory_lock($1)", JOBS_LOCK):
                return conn
        except BaseException:
            await conn.close()
            raise
        await conn.close()
        return None

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop` is set: take the lock when it is free, and run the jobs while holding it."""
        while not stop.is_set():
            try:
                conn = await self._take_lock()
            except (*UNAVAILABLE, asyncpg.PostgresError) as exc:
                log.warning("the jobs lock cannot be taken now: %s", exc)
                conn = None
            if conn is None:
                await _sleep(stop, LOCK_RETRY_SECONDS)
                continue
            log.info("took the jobs lock: running %s", ", ".join(job.name for job in self.jobs))
            self.holding.set()
            try:
                await self._hold(conn, stop)
            finally:
                self.holding.clear()
                with contextlib.suppress(Exception):
                    await conn.close()

    async def _hold(self, conn: asyncpg.Connection, stop: asyncio.Event) -> None:
        lost = asyncio.Event()
        loops = [asyncio.create_task(self._loop(job, stop, lost)) for job in self.jobs]
        try:
            while not stop.is_set():
                await _sleep(stop, HEARTBEAT_SECONDS)
                try:
                    await asyncio.wait_for(conn.fetchval("SELECT 1"), HEARTBEAT_SECONDS)
                except (*UNAVAILABLE, asyncpg.PostgresError) as exc:
                    log.warning("lost the jobs lock (%s): stopping the jobs", exc)
                    return
        finally:
            lost.set()
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            await self._close()

    async def _loop(self, job: Job, stop: asyncio.Event, lost: asyncio.Event) -> None:
        while not stop.is_set() and not lost.is_set():
            started = time.monotonic()
            await _run_logged(job)
            await _sleep(stop, job.every - (time.monotonic() - started))

    async def _close(self) -> None:
        for job in self.jobs:
            if job.close is not None:
                with contextlib.suppress(Exception):
                    await job.close()

    async def run_once(self) -> bool:
        """Run the jobs, in turn, until a round finds nothing to do (what one job does may give
        another work: an expiry's event to deliver); False (nothing run) when another runner
        holds the lock."""
        conn = await self._take_lock()
        if conn is None:
            return False
        try:
            for _ in range(ONCE_ROUNDS):
                busy = False
                for job in self.jobs:
                    busy = await _run_logged(job) is not None or busy
                    if job.drain is not None:
                        await job.drain()
                if not busy:
                    break
            return True
        finally:
            await self._close()
            await conn.close()


async def _run_logged(job: Job) -> str | None:
    try:
        did = await job.run()
    except (DatabaseUnavailable, *UNAVAILABLE) as exc:
        log.warning("%s: the database cannot be reached now (%s)", job.name, exc)
        return None
    except Exception:  # noqa: BLE001 - a job's failure is logged and the job runs again later
        log.exception("%s failed", job.name)
        return None
    if did:
        log.log(job.log_level, "%s: %s", job.name, did)
    return did


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    """Sleep `seconds`, or less when `stop` is set meanwhile."""
    if seconds > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)
