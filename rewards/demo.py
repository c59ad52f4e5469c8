"""`rewards demo`: a realistic synthetic program, posted through the real rules.

Members enroll (backdated over the period), shop in time order, pay by card or cash,
redeem the rewards they earn, return some goods, and a few cancel. Everything goes
through the same service functions as the API, so `rewards verify` must find it sound.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import re
import traceback
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

import asyncpg
from rich.progress import Progress

from rewards import bulk, ledger
from rewards import members as membership
from rewards.db import Database
from rewards.rulebook import Rulebook, rules_from_row
from rewards.rules import in_force_lookup
from rewards.schemas import EnrollmentIn, LineIn, PurchaseIn, ReturnIn, ReturnLineIn, TenderIn

FIRST = ["Ava", "Ben", "Chloe", "Diego", "Emma", "Farah", "Grace", "Hiro", "Isla", "Jon", "Kai", "Lena", "Mia", "Noah"]
LAST = ["Nguyen", "Smith", "Garcia", "Kim", "Patel", "Brown", "Lopez", "Chen", "Johnson", "Okafor", "Rossi"]
STATES = ["CA"] * 6 + ["TX", "NY", "FL", "WA", "IL", "ME", "OR", "AZ"]
CATEGORIES = [("apparel", 2500, 9000), ("home", 1500, 20000), ("beauty", 800, 4000), ("grocery", 300, 3000),
              ("electronics", 2000, 60000), ("toys", 1000, 5000)]
CONCURRENCY = 8


def _member(rng: random.Random, n: int, seed: int) -> EnrollmentIn:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    return EnrollmentIn(
        name=f"{first} {last}", email=f"{first}.{last}.{seed}.{n}@example.com".lower(),
        phone=f"+1555{seed % 1000:03d}{n:07d}"[:15], birth_date=date(rng.randint(1945, 2004), rng.randint(1, 12), 15),
        state=rng.choice(STATES), terms_version="2023-10-30", notice_version="2023-10-30",
        channel=rng.choice(["store", "online"]),
    )


LINE_COUNTS = (1, 1, 2, 2, 3, 4)
QUANTITIES = (1, 1, 1, 2)
OTHER_TENDERS = ("credit_card", "debit_card", "cash")
CHANNELS = ("store", "store", "online")
STORES = tuple(f"S{n:03d}" for n in range(1, 41))
SKU_PREFIXES = tuple(c[:3].upper() for c, _, _ in CATEGORIES)


def _basket(rng: random.Random, ref: str, member_id: int, when: datetime, card_holder: bool,
            open_rewards: list[tuple[str, datetime]]) -> PurchaseIn:
    # rng.random() alone: randint and choice cost several times more, and the big demo draws billions
    r = rng.random
    lines = []
    for i in range(LINE_COUNTS[int(r() * 6)]):
        k = int(r() * len(CATEGORIES))
        category, low, high = CATEGORIES[k]
        lines.append(LineIn(sku=f"{SKU_PREFIXES[k]}-{100 + int(r() * 900)}-{i}", category=category,
                            quantity=QUANTITIES[int(r() * 4)], amount_cents=low + int(r() * (high - low + 1))))
    if r() < 0.05:
        lines.append(LineIn(sku="GIFTCARD", category="gift_card", quantity=1, amount_cents=2500 if r() < 0.5 else 5000))
    subtotal = sum(line.amount_cents for line in lines)
    lines.append(LineIn(sku="TAX", category="tax", quantity=1, amount_cents=subtotal * 8 // 100))
    total = subtotal + subtotal * 8 // 100
    tenders = []
    if open_rewards:
        open_rewards[:] = [(code, expires) for code, expires in open_rewards if expires > when]
    if open_rewards and r() < 0.6 and total > 1000:
        tenders.append(TenderIn(method="reward", amount_cents=1000, reward_code=open_rewards.pop(0)[0]))
        total -= 1000
    method = "westique_credit_card" if card_holder and r() < 0.8 else OTHER_TENDERS[int(r() * 3)]
    tenders.append(TenderIn(method=method, amount_cents=total))
    return PurchaseIn(purchase_id=ref, member_id=member_id, occurred_at=when, store_id=STORES[int(r() * 40)],
                      channel=CHANNELS[int(r() * 3)], lines=lines, tenders=tenders)


def _return_of(purchase_id: str, bought_at: datetime, sku: str, quantity: int, amount_cents: int,
               now: datetime) -> ReturnIn:
    """The demo's return of one line of a purchase: three days after it, or now for a purchase
    of the last three days (a return dated in the future is refused)."""
    return ReturnIn(return_id=f"{purchase_id}-r", occurred_at=min(bought_at + timedelta(days=3), now),
                    lines=[ReturnLineIn(sku=sku, quantity=quantity, amount_cents=amount_cents)])


async def run_demo(db: Database, *, members: int, purchases: int, days: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    rulebook = Rulebook(db)
    await rulebook.load()
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(days=days)
    counts: dict[str, int] = defaultdict(int)

    with Progress() as progress:
        task = progress.add_task("enrolling members", total=members)
        ids: list[int] = []
        for n in range(members):
            enrolled = await membership.enroll(db, _member(rng, n, seed))
            ids.append(enrolled.member_id)
            progress.advance(task)
        # backdate enrollment across the first months of the period, as a real program grew
        await db.run(
            """UPDATE members SET enrolled_at = $2::timestamptz - (random() * interval '60 days')
               WHERE id = ANY ($1::bigint[])""", ids, start)
        await db.run("UPDATE consents c SET accepted_at = m.enrolled_at FROM members m "
                     "WHERE m.id = c.member_id AND m.id = ANY ($1::bigint[])", ids)
        counts["members"] = members

        card_holders = {m for m in ids if rng.random() < 0.3}
        plan: dict[int, list[datetime]] = defaultdict(list)
        for _ in range(purchases):
            plan[rng.choice(ids)].append(start + timedelta(seconds=rng.randint(0, days * 86400 - 1)))

        task = progress.add_task("posting purchases", total=purchases)
        queue: asyncio.Queue[int] = asyncio.Queue()
        for member_id in plan:
            queue.put_nowait(member_id)

        async def shopper() -> None:
            while not queue.empty():
                member_id = queue.get_nowait()
                open_rewards: list[tuple[str, datetime]] = []
                for k, when in enumerate(sorted(plan[member_id])):
                    ref = f"demo-{seed}-{member_id}-{k}"
                    basket = _basket(rng, ref, member_id, when, member_id in card_holders, open_rewards)
                    _, out = await ledger.post_purchase(db, rulebook, basket)
                    counts["purchases"] += 1
                    counts["rewards_redeemed"] += len(out.rewards_redeemed)
                    open_rewards.extend((r.code, r.expires_at) for r in out.rewards_issued)
                    counts["rewards_issued"] += len(out.rewards_issued)
                    if rng.random() < 0.05:
                        line = basket.lines[0]
                        ret = _return_of(ref, when, line.sku, line.quantity, line.amount_cents, now)
                        await ledger.post_return(db, rulebook, ref, ret)
                        counts["returns"] += 1
                    progress.advance(task)
                if rng.random() < 0.02:
                    await membership.cancel(db, member_id)
                    counts["cancelled"] += 1

        await asyncio.gather(*(shopper() for _ in range(CONCURRENCY)))
    return dict(counts)



# --- bulk mode: a program of a million members and ten million purchases, in minutes -------------

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
            await conn.execute(f"DROP INDEX {INDEX_NAME.match(item.statement)[1]}")
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
    """The same program as `run_demo`, at scale: members copied in, purchases applied set-based.

    Purchases go through the same rules and the same set-based posting as the importer
    (`rewards.bulk.apply`), member by member in time order, redeeming the rewards they earn;
    returns and cancellations then go through the service functions. Needs a program with
    no purchases yet (the foreign keys and secondary indexes are set aside while loading).
    """
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
            rows.append((member_id, e.name, e.email, e.phone, e.birth_date, e.state, enrolled))
            consents.append((member_id, e.terms_version, e.notice_version, e.channel, e.guardian_consent, enrolled))
        async with conn.transaction():
            await conn.copy_records_to_table(
                "members", records=rows,
                columns=["id", "name", "email", "phone", "birth_date", "state", "enrolled_at"])
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
    in_force = in_force_lookup(versions)

    async def worker(worker_rng: random.Random) -> None:
        r = worker_rng.random
        async with db.connection() as conn:
            # asyncpg's own jsonb codec (binary, from str) instead of the pool's text one: the
            # purchases then go by binary COPY (this pool is the demo's, for this load only)
            await conn.reset_type_codec("jsonb", schema="pg_catalog")
            while queue:
                chunk = queue.pop()
                async with conn.transaction():
                    # a demo load is simply run again after a crash: no need to wait for each flush
                    await conn.execute("SET LOCAL synchronous_commit = off")
                    # the tables have no statistics while loading (nothing has analyzed them), and a
                    # chunk's few thousand ids would otherwise be hashed against a whole table:
                    # members to lock and update them, rewards (a scan that grows with the load)
                    # to redeem
                    await conn.execute(bulk.INDEX_PROBES)
                    batch = bulk.Batch(conn, answers=False, binary_copy=True)
                    # no purchase_ids: the program was empty and these ids are new by construction
                    # (the unique constraint, rebuilt after the load, checks it)
                    await batch.load(member_ids=[m for m, _ in chunk], purchase_ids=[], reward_codes=[],
                                     offer_codes=[])
                    for m, n in chunk:
                        card_holder = r() < 0.3
                        open_rewards: list[tuple[str, datetime]] = []
                        for k, when in enumerate(sorted(start + timedelta(seconds=int(r() * span)) for _ in range(n))):
                            basket = _basket(worker_rng, f"demo-{seed}-{m}-{k}", m, when, card_holder, open_rewards)
                            version = in_force(when)
                            outcome = batch.plan(bulk.Posting.of(basket, version,
                                                                 ledger.purchase_earning(basket, version)))
                            counts[outcome.outcome if outcome.outcome != "created" else "purchases"] += 1
                            if outcome.issued_codes:
                                counts["rewards_issued"] += len(outcome.issued_codes)
                                expires = when + timedelta(days=version.reward_validity_days)
                                open_rewards.extend((code, expires) for code in outcome.issued_codes)
                            counts["rewards_redeemed"] += len(outcome.redeemed)
                        await asyncio.sleep(0)  # let the other worker's COPY go on meanwhile
                    await batch.write()
                with done.get_lock():
                    done.value += sum(n for _, n in chunk)

    try:
        await asyncio.gather(*(worker(random.Random(process_seed + w)) for w in range(BULK_WORKERS)))
    finally:
        await db.close()
    return counts


async def _bulk_aftermath(db: Database, rulebook: Rulebook, rng: random.Random, ids: list[int],
                          counts: dict[str, int]) -> None:
    """A few returns and cancellations, through the service functions themselves."""
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
                await membership.cancel(db, member_id)
                counts["cancelled"] += 1
                continue
            rows = await db.run("SELECT ext_id, occurred_at, body FROM purchases WHERE member_id = $1 "
                                "ORDER BY occurred_at LIMIT 1", member_id)
            if not rows:
                continue
            line = rows[0]["body"]["lines"][0]
            ret = _return_of(rows[0]["ext_id"], rows[0]["occurred_at"], line["sku"], line["quantity"],
                             line["amount_cents"], datetime.now(UTC))
            await ledger.post_return(db, rulebook, rows[0]["ext_id"], ret)
            counts["returns"] += 1

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
