"""`rewards demo --bulk`: a program of a million members and ten million purchases, in minutes.

The same program as `rewards.demo`, generated the same way, but loaded as pg_restore loads:
members copied in, the foreign keys and secondary indexes set aside, purchases planned by the
posting engine's own planner (`rewards.engine.planner.Planner`: the same decisions as every
posting) chunk by chunk in two processes and written with binary COPY, then the indexes built
and the keys validated once. Returns and cancellations afterwards go through the engine as
ever. Only for an empty program: it refuses a database that has purchases.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import re
import traceback
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import asyncpg
import msgspec
from rich.progress import Progress

from rewards import members as membership
from rewards.db import Database
from rewards.demo import CONCURRENCY, _basket, _member, _return_of
from rewards.engine import Cancel, Engine, Limits, PostPurchase, PostReturn, unwrap, system
from rewards.engine import rows
from rewards.engine.planner import OutOfIds, Planner
from rewards.engine.posting import WRITES, draw_ids, new_reward_code
from rewards.engine.snapshot import Ids, Member, Snapshot
from rewards.rulebook import Rulebook, rules_from_row

BULK_DEMO = system("demo")
# the tables have no statistics while loading (nothing has analyzed them): a chunk's few
# thousand ids would otherwise be hashed against a whole table instead of probed by index
INDEX_PROBES = "SET LOCAL enable_seqscan = off; SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off"

# building an index over ten million rows takes longer than a request's 30 s statement timeout
DDL_TIMEOUT = 3600.0
BULK_CHUNK = 2000  # members whose purchases are generated and applied together, in one transaction
BULK_PROCESSES = 2  # generating purchases in Python is the bottleneck: one process per core
BULK_WORKERS = 2  # chunks in flight per process: one is planned while the other is written


INDEX_NAME = re.compile(r"CREATE (?:UNIQUE )?INDEX (\S+) ON")


class _Restore(NamedTuple):
    table: str
    statement: str
    constraint: str | None = None  # a foreign key's name: declared NOT VALID, then validated


async def _set_aside(conn: asyncpg.Connection, tables: tuple[str, ...]) -> list[_Restore]:
    """Drop the foreign keys, unique constraints and other indexes of `tables`; return how to restore them.

    What pg_restore does for a big load: rows go in without per-row index and reference
    checks, then each index is built once, sorted, each unique constraint checked by that
    build and each foreign key validated by one join. Primary keys stay.
    """
    restore: list[_Restore] = []
    for r in await conn.fetch(
            """SELECT i.indrelid::regclass::text AS tab, i.indexrelid::regclass::text AS name,
                      pg_get_indexdef(i.indexrelid) AS def FROM pg_index i
               WHERE i.indrelid = ANY ($1::regclass[]) AND NOT i.indisprimary
                 AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)""", list(tables)):
        restore.append(_Restore(r["tab"], r["def"]))
    for r in await conn.fetch(
            """SELECT conrelid::regclass::text AS tab, conname, contype = 'f' AS is_foreign_key,
                      pg_get_constraintdef(oid) AS def
               FROM pg_constraint WHERE contype IN ('f', 'u') AND conrelid = ANY ($1::regclass[])
               ORDER BY contype = 'f', conrelid, conname""", list(tables)):
        # (contype is a "char", which asyncpg returns as bytes: compared with "f" it never matched,
        # and every foreign key was added validating, locking its referenced table against the others)
        statement = f'ALTER TABLE {r["tab"]} ADD CONSTRAINT "{r["conname"]}" {r["def"]}'
        restore.append(_Restore(r["tab"], statement, r["conname"] if r["is_foreign_key"] else None))
    for item in reversed(restore):  # foreign keys first, then what they might lean on
        if item.statement.startswith("ALTER TABLE"):
            name = item.statement.split('"')[1]
            await conn.execute(f'ALTER TABLE {item.table} DROP CONSTRAINT "{name}"')
        else:
            named = INDEX_NAME.match(item.statement)
            assert named is not None, item.statement  # every index statement it restores names its index
            await conn.execute(f"DROP INDEX {named[1]}")
    return restore


async def _restore(db: Database, restore: list[_Restore], progress: Progress) -> None:
    """Indexes and unique constraints built table by table in parallel; then the foreign keys,
    declared NOT VALID at once and validated, again a table per connection."""
    task = progress.add_task("rebuilding indexes and checking references", total=len(restore))
    by_table: dict[str, list[_Restore]] = defaultdict(list)
    for item in restore:
        by_table[item.table].append(item)

    async def run(items: list[_Restore], validate: bool) -> None:
        async with db.connection() as conn:
            await conn.execute("SET maintenance_work_mem = '512MB'")
            for item in items:
                if validate:
                    await conn.execute(f'ALTER TABLE {item.table} VALIDATE CONSTRAINT "{item.constraint}"',
                                       timeout=DDL_TIMEOUT)
                else:
                    await conn.execute(item.statement, timeout=DDL_TIMEOUT)
                progress.advance(task)

    await asyncio.gather(*(run([i for i in items if not i.constraint], False) for items in by_table.values()))
    async with db.connection() as conn:
        for item in restore:
            if item.constraint:
                await conn.execute(item.statement + " NOT VALID", timeout=DDL_TIMEOUT)
    await asyncio.gather(*(run([i for i in items if i.constraint], True) for items in by_table.values()))


async def run_bulk_demo(db: Database, *, members: int, purchases: int, days: int, seed: int) -> dict[str, int]:
    """The same program as `run_demo`, at scale (see the module's docstring)."""
    rng = random.Random(seed)
    rulebook = Rulebook(db)
    await rulebook.load()
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(days=days)
    counts: dict[str, int] = defaultdict(int)
    async with db.connection() as conn:
        if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM purchases)"):
            raise RuntimeError("the bulk demo fills an empty program; this database already has purchases")
        await conn.execute("SET maintenance_work_mem = '512MB'")
        restore = await _set_aside(conn, ("purchases", "rewards", "ledger", "consents"))
        try:
            with Progress() as progress:
                ids = await _bulk_members(conn, rng, members, seed, start, progress)
                counts["members"] = members
                await _bulk_purchases(db, rulebook, rng, ids, purchases, start, days, seed, counts, progress)
                await _restore(db, restore, progress)
                restore = []
        finally:
            for item in restore:  # a failed load still leaves the schema whole, as far as its rows allow
                try:
                    await conn.execute(item.statement, timeout=DDL_TIMEOUT)
                except (asyncpg.DuplicateObjectError, asyncpg.DuplicateTableError):
                    pass
        await conn.execute("ANALYZE", timeout=DDL_TIMEOUT)
    await _bulk_aftermath(db, rulebook, rng, ids, counts)
    return dict(counts)


async def _bulk_members(conn: asyncpg.Connection, rng: random.Random, members: int, seed: int, start: datetime,
                        progress: Progress) -> list[int]:
    task = progress.add_task("enrolling members", total=members)
    today = datetime.now(UTC).date()
    ids: list[int] = []
    for first in range(0, members, 50_000):
        n = min(50_000, members - first)
        block = await conn.fetchval(
            "SELECT array_agg(nextval('members_id_seq')) FROM generate_series(1, $1)", n)
        rows, consents = [], []
        for k, member_id in enumerate(block):
            e = _member(rng, first + k, seed)
            membership.check_age(e.birth_date, e.state, e.guardian_consent, today)
            enrolled = start - timedelta(seconds=rng.randint(0, 60 * 86400))
            given = membership.contacts_of(e.email, e.phone)
            rows.append((member_id, e.name, given.email, given.phone, given.email_normalized, given.phone_normalized,
                         e.birth_date, e.state, enrolled))
            consents.append((member_id, e.terms_version, e.notice_version, e.channel, e.guardian_consent, enrolled))
        async with conn.transaction():
            await conn.copy_records_to_table(
                "members", records=rows,
                columns=["id", "name", "email", "phone", "email_normalized", "phone_normalized", "birth_date", "state",
                         "enrolled_at"])
            await conn.copy_records_to_table(
                "consents", records=consents,
                columns=["member_id", "terms_version", "notice_version", "channel", "guardian_consent", "accepted_at"])
        ids.extend(block)
        progress.advance(task, n)
    return ids


async def _bulk_purchases(db: Database, rulebook: Rulebook, rng: random.Random, ids: list[int], purchases: int,
                          start: datetime, days: int, seed: int, counts: dict[str, int], progress: Progress) -> None:
    """Purchases in BULK_PROCESSES processes (Python is the bottleneck), chunks of members each."""
    task = progress.add_task("posting purchases", total=purchases)
    per_member = [0] * len(ids)
    r = rng.random
    for _ in range(purchases):
        per_member[int(r() * len(ids))] += 1
    chunks = [[(ids[i], per_member[i]) for i in range(first, min(first + BULK_CHUNK, len(ids))) if per_member[i]]
              for first in range(0, len(ids), BULK_CHUNK)]
    context = multiprocessing.get_context("spawn")
    done = context.Value("q", 0)
    results = context.Queue()
    processes = [
        context.Process(target=_purchases_process, daemon=True,
                        args=(db.url, chunks[n::BULK_PROCESSES], seed, start, days, rng.random(), done, results))
        for n in range(BULK_PROCESSES)
    ]
    for process in processes:
        process.start()
    try:
        while any(process.is_alive() for process in processes) and results.qsize() < len(processes):
            progress.update(task, completed=done.value)
            await asyncio.sleep(0.25)
        for _ in processes:
            found = await asyncio.to_thread(results.get, True, 600)
            if isinstance(found, str):
                raise RuntimeError(f"a bulk demo process failed:\n{found}")
            for key, value in found.items():
                counts[key] += value
        progress.update(task, completed=done.value)
    finally:
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()


def _purchases_process(url: str, chunks: list[list[tuple[int, int]]], seed: int, start: datetime, days: int,
                       process_seed: float, done: Any, results: Any) -> None:
    """One process of the bulk demo: its chunks of members, each chunk one transaction."""
    try:
        counts = asyncio.run(_purchases_in_process(url, chunks, seed, start, days, process_seed, done))
        results.put(dict(counts))
    except BaseException:  # noqa: BLE001 - the parent reports it
        results.put(traceback.format_exc())


async def _purchases_in_process(url: str, chunks: list[list[tuple[int, int]]], seed: int, start: datetime,
                                days: int, process_seed: float, done: Any) -> dict[str, int]:
    db = Database(url, pool_size=BULK_WORKERS)
    # each worker holds its connection for the whole load, so the rules are read once here
    # (nothing publishes a version meanwhile) and never refreshed from the pool
    async with db.connection() as conn:
        versions = [rules_from_row(r) for r in
                    await conn.fetch("SELECT version, effective_from, body FROM program_rules ORDER BY version")]
    counts: dict[str, int] = defaultdict(int)
    queue = list(reversed(chunks))
    span = days * 86400 - 1

    async def worker(worker_rng: random.Random) -> None:
        r = worker_rng.random
        async with db.connection() as conn:
            # asyncpg's own jsonb codec (binary, from str) instead of the pool's text one: the
            # purchases then go by binary COPY (this pool is the demo's, for this load only)
            await conn.reset_type_codec("jsonb", schema="pg_catalog")
            while queue:
                chunk = queue.pop()
                n_purchases = sum(n for _, n in chunk)
                async with conn.transaction():
                    # a demo load is simply run again after a crash: no need to wait for each flush
                    await conn.execute("SET LOCAL synchronous_commit = off")
                    await conn.execute(INDEX_PROBES)
                    locked = await conn.fetch(
                        "SELECT id, status, point_cents, rewards_issued, cancelled_at FROM members "
                        "WHERE id = ANY ($1::bigint[]) ORDER BY id FOR UPDATE", [m for m, _ in chunk])
                    snapshot = Snapshot(
                        now=datetime.now(UTC), rules_version=versions[-1].version,
                        members=[Member(**dict(row)) for row in locked],
                        ids=Ids(purchases=await draw_ids(conn, "purchases", n_purchases),
                                rewards=await draw_ids(conn, "rewards", n_purchases // 4 + 16)))
                    planner = Planner(snapshot, versions, Limits(), new_reward_code)
                    for m, n in chunk:
                        card_holder = r() < 0.3
                        open_rewards: list[tuple[str, datetime]] = []
                        for k, when in enumerate(sorted(start + timedelta(seconds=int(r() * span)) for _ in range(n))):
                            basket = _basket(worker_rng, f"demo-{seed}-{m}-{k}", m, when, card_holder, open_rewards)
                            command = PostPurchase.of(basket, BULK_DEMO, as_of=when)
                            while True:
                                try:
                                    outcome = planner.decide(command)
                                    break
                                except OutOfIds as short:
                                    planner.add_ids(short.table, await draw_ids(conn, short.table,
                                                                                max(1000, short.missing)))
                            if outcome.error is not None:
                                counts[outcome.error.code] += 1
                                continue
                            counts["purchases"] += 1
                            issued = outcome.answer.rewards_issued
                            counts["rewards_issued"] += len(issued)
                            open_rewards.extend((w.code, w.expires_at) for w in issued)
                            counts["rewards_redeemed"] += len(outcome.answer.rewards_redeemed)
                        await asyncio.sleep(0)  # let the other worker's COPY go on meanwhile
                    await copy_plan(conn, planner.result())
                with done.get_lock():
                    done.value += n_purchases

    try:
        await asyncio.gather(*(worker(random.Random(process_seed + w)) for w in range(BULK_WORKERS)))
    finally:
        await db.close()
    return counts


def _copy_value(name: str, value: Any) -> Any:
    """A row's field as binary COPY takes it (rows hold bytea and jsonb as the JSON writer wants them)."""
    if isinstance(value, msgspec.Raw):
        return bytes(value).decode()
    if isinstance(value, dict):  # an event's data: jsonb
        return msgspec.json.encode(value).decode()
    if name == "fingerprint":
        return bytes.fromhex(value.removeprefix("\\x"))
    return value


async def copy_plan(conn: asyncpg.Connection, plan: rows.Plan) -> None:
    """The plan's rows written as `posting.WRITES` writes them, the inserts by binary COPY: two
    to three times cheaper per row when the tables' keys and indexes are set aside."""
    for w in WRITES:
        part = getattr(plan, w.field)
        found = list(part.values()) if isinstance(part, dict) else part
        if not found:
            continue
        if w.key is None:
            fields = w.row.__struct_fields__
            await conn.copy_records_to_table(
                w.table, columns=list(fields),
                records=[tuple(_copy_value(f, getattr(row, f)) for f in fields) for row in found])
        else:
            await conn.execute(w.sql(1), msgspec.json.encode(found).decode())


async def _bulk_aftermath(db: Database, rulebook: Rulebook, rng: random.Random, ids: list[int],
                          counts: dict[str, int]) -> None:
    """A few returns and cancellations, through the engine as any posting."""
    engine = Engine(db, rulebook, Limits())
    returning = rng.sample(ids, min(len(ids), max(1, len(ids) // 200)))
    cancelling = rng.sample(ids, min(len(ids), max(1, len(ids) // 200)))
    queue: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
    for m in returning:
        queue.put_nowait(("return", m))
    for m in cancelling:
        queue.put_nowait(("cancel", m))

    async def worker() -> None:
        while not queue.empty():
            what, member_id = queue.get_nowait()
            if what == "cancel":
                unwrap(await engine.submit(Cancel(member_id, BULK_DEMO)))
                counts["cancelled"] += 1
                continue
            found = await db.run("SELECT ext_id, occurred_at, body FROM purchases WHERE member_id = $1 "
                                 "ORDER BY occurred_at LIMIT 1", member_id)
            if not found:
                continue
            line = found[0]["body"]["lines"][0]
            ret = _return_of(found[0]["ext_id"], found[0]["occurred_at"], line["sku"], line["quantity"],
                             line["amount_cents"], datetime.now(UTC))
            unwrap(await engine.submit(PostReturn.of(found[0]["ext_id"], ret, BULK_DEMO, as_of=ret.occurred_at)))
            counts["returns"] += 1

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
