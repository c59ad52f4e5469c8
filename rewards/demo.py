"""`rewards demo`: a realistic synthetic program, posted through the real rules.

Members enroll (backdated over the period), shop in time order, pay by card or cash,
redeem the rewards they earn, return some goods, and a few cancel. Every posting goes
through the posting engine as the API's do, each posted as if live at its own time (`as_of`:
a year of history is posted as it would have been), so `rewards verify` must find it sound.
For millions of purchases see `rewards.bulk_demo`.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

from rich.progress import Progress

from rewards import members as membership
from rewards.db import Database
from rewards.engine import Cancel, Engine, Limits, PostPurchase, PostReturn, unwrap, system
from rewards.rulebook import Rulebook
from rewards.schemas import Channel, EnrollmentIn, LineIn, PurchaseIn, ReturnIn, ReturnLineIn, TenderIn, USState

DEMO = system("demo")

FIRST = ["Ava", "Ben", "Chloe", "Diego", "Emma", "Farah", "Grace", "Hiro", "Isla", "Jon", "Kai", "Lena", "Mia", "Noah"]
LAST = ["Nguyen", "Smith", "Garcia", "Kim", "Patel", "Brown", "Lopez", "Chen", "Johnson", "Okafor", "Rossi"]
STATES: list[USState] = ["CA", "CA", "CA", "CA", "CA", "CA", "TX", "NY", "FL", "WA", "IL", "ME", "OR", "AZ"]
CATEGORIES = [("apparel", 2500, 9000), ("home", 1500, 20000), ("beauty", 800, 4000), ("grocery", 300, 3000),
              ("electronics", 2000, 60000), ("toys", 1000, 5000)]
CONCURRENCY = 8


def demo_phone(seed: int, n: int) -> str:
    """A fictional (555) number of its own for each of the seed's first ten million members."""
    return f"+1555{(seed * 1_000_003 + n) % 10**7:07d}"


def _member(rng: random.Random, n: int, seed: int) -> EnrollmentIn:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    return EnrollmentIn(
        name=f"{first} {last}", email=f"{first}.{last}.{seed}.{n}@example.com".lower(),
        phone=demo_phone(seed, n), birth_date=date(rng.randint(1945, 2004), rng.randint(1, 12), 15),
        state=rng.choice(STATES), terms_version="2023-10-30", notice_version="2023-10-30",
        channel=rng.choice(["store", "online"]),
    )


LINE_COUNTS = (1, 1, 2, 2, 3, 4)
QUANTITIES = (1, 1, 1, 2)
OTHER_TENDERS = ("credit_card", "debit_card", "cash")
CHANNELS: tuple[Channel, ...] = ("store", "store", "online")
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
    engine = Engine(db, Rulebook(db), Limits())
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(days=days)
    counts: dict[str, int] = defaultdict(int)

    with Progress() as progress:
        task = progress.add_task("enrolling members", total=members)
        ids: list[int] = []
        for n in range(members):
            _, enrolled = await membership.enroll(engine, _member(rng, n, seed), DEMO)
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
                    _, out = unwrap(await engine.submit(PostPurchase.of(basket, DEMO, as_of=when)))
                    counts["purchases"] += 1
                    counts["rewards_redeemed"] += len(out.rewards_redeemed)
                    open_rewards.extend((r.code, r.expires_at) for r in out.rewards_issued)
                    counts["rewards_issued"] += len(out.rewards_issued)
                    if rng.random() < 0.05:
                        line = basket.lines[0]
                        ret = _return_of(ref, when, line.sku, line.quantity, line.amount_cents, now)
                        _, back = unwrap(await engine.submit(PostReturn.of(ref, ret, DEMO, as_of=ret.occurred_at)))
                        # a reward the return voided (the balance would have gone below zero) is gone
                        open_rewards[:] = [(c, e) for c, e in open_rewards if c not in back.rewards_voided]
                        counts["returns"] += 1
                    progress.advance(task)
                if rng.random() < 0.02:
                    unwrap(await engine.submit(Cancel(member_id, DEMO)))
                    counts["cancelled"] += 1

        await asyncio.gather(*(shopper() for _ in range(CONCURRENCY)))
    # statistics for what was just loaded: the service's plans are made from them (autovacuum
    # would analyze within a minute; the service started next should not plan meanwhile on the
    # empty tables of before)
    await db.run("ANALYZE")
    return dict(counts)
