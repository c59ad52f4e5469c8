"""The mailing list's two costs: sending an offer to every subscriber, and the offer check on a purchase.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/mailing.py [--subscribers 100000]

Makes a database of its own (dropped at the end), then
- sends one offer to `--subscribers` active subscriptions (one INSERT ... SELECT) and prints the time;
- posts purchases through the posting engine (`Engine.submit`) in alternating rounds without and with an offer
  named, and prints the median time of each and their ratio (the machine is shared: the ratio
  is the figure, not the absolute times).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from rewards import mailing
from rewards.db import Database
from rewards.engine import Engine, Limits, PostPurchase, system, unwrap
from rewards.migrations import migrate
from rewards.rulebook import Rulebook
from rewards.schemas import LineIn, OfferIn, OfferUseIn, PurchaseIn, TenderIn


def with_database(url: str, name: str) -> str:
    base, _, query = url.partition("?")
    return base.rsplit("/", 1)[0] + "/" + name + ("?" + query if query else "")


def a_purchase(member_id: int, offers: list[OfferUseIn]) -> PurchaseIn:
    return PurchaseIn(
        purchase_id=uuid.uuid4().hex, member_id=member_id, occurred_at=datetime.now(UTC) - timedelta(minutes=1),
        store_id="S001", channel="store", lines=[LineIn(sku="SKU-1", category="apparel", quantity=1, amount_cents=2500)],
        tenders=[TenderIn(method="cash", amount_cents=2500)], offers=offers,
    )


async def run(subscribers: int, rounds: int, per_round: int) -> None:
    server = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"bench_mailing_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(with_database(server, "postgres"))
    await admin.execute(f'CREATE DATABASE "{name}"')
    db = Database(with_database(server, name), pool_size=4)
    try:
        await migrate(db.url)
        async with db.connection() as conn:
            await conn.execute(
                """INSERT INTO subscriptions (channel, address, status, source)
                   SELECT 'email', 'guest' || g || '@example.com', 'active', 'online' FROM generate_series(1, $1) g""",
                subscribers,
            )
            member_id = await conn.fetchval(
                "INSERT INTO members (name, email, phone, birth_date, state) "
                "VALUES ('Bench', 'bench@example.com', '+14155550100', '1980-01-01', 'CA') RETURNING id"
            )
        started = time.perf_counter()
        _, offer = await mailing.make_offer(db, OfferIn(code="BENCH5", value_cents=500, channel="email"))
        sent = time.perf_counter() - started
        print(f"offer sent to {offer.deliveries} subscriptions in {sent * 1000:.0f} ms "
              f"({offer.deliveries / sent:,.0f} deliveries/s)")

        engine = Engine(db, Rulebook(db), Limits())
        times: dict[str, list[float]] = {"without offers": [], "with one offer": []}
        for _ in range(rounds):
            for label, offers in (("without offers", []), ("with one offer", [OfferUseIn(code="BENCH5", discount_cents=500)])):
                for _ in range(per_round):
                    started = time.perf_counter()
                    unwrap(await engine.submit(PostPurchase.of(a_purchase(member_id, offers), system("bench"))))
                    times[label].append(time.perf_counter() - started)
        medians = {label: statistics.median(values) * 1e6 for label, values in times.items()}
        for label, value in medians.items():
            print(f"a purchase {label}: median {value:.0f} µs over {len(times[label])} postings")
        print(f"ratio with/without: {medians['with one offer'] / medians['without offers']:.3f}")
    finally:
        await db.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per-round", type=int, default=100)
    args = parser.parse_args()
    asyncio.run(run(args.subscribers, args.rounds, args.per_round))


if __name__ == "__main__":
    main()
