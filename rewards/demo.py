"""`rewards demo`: a realistic synthetic program, posted through the real rules.

Members enroll (backdated over the period), shop in time order, pay by card or cash,
redeem the rewards they earn, return some goods, and a few cancel. Everything goes
through the same service functions as the API, so `rewards verify` must find it sound.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

from rich.progress import Progress

from rewards import ledger
from rewards import members as membership
from rewards.db import Database
from rewards.rulebook import Rulebook
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
        state=rng.choice(STATES), terms_version="2026-01", notice_version="2026-01",
        channel=rng.choice(["store", "online"]),
    )


def _basket(rng: random.Random, ref: str, member_id: int, when: datetime, card_holder: bool,
            open_rewards: list[tuple[str, datetime]]) -> PurchaseIn:
    lines = []
    for i in range(rng.choice([1, 1, 2, 2, 3, 4])):
        category, low, high = rng.choice(CATEGORIES)
        lines.append(LineIn(sku=f"{category[:3].upper()}-{rng.randint(100, 999)}-{i}", category=category,
                            quantity=rng.choice([1, 1, 1, 2]), amount_cents=rng.randint(low, high)))
    if rng.random() < 0.05:
        lines.append(LineIn(sku="GIFTCARD", category="gift_card", quantity=1, amount_cents=rng.choice([2500, 5000])))
    subtotal = sum(line.amount_cents for line in lines)
    lines.append(LineIn(sku="TAX", category="tax", quantity=1, amount_cents=subtotal * 8 // 100))
    total = subtotal + subtotal * 8 // 100
    tenders = []
    open_rewards[:] = [(code, expires) for code, expires in open_rewards if expires > when]
    if open_rewards and rng.random() < 0.6 and total > 1000:
        tenders.append(TenderIn(method="reward", amount_cents=1000, reward_code=open_rewards.pop(0)[0]))
        total -= 1000
    method = "westique_credit_card" if card_holder and rng.random() < 0.8 else rng.choice(
        ["credit_card", "debit_card", "cash"])
    tenders.append(TenderIn(method=method, amount_cents=total))
    return PurchaseIn(purchase_id=ref, member_id=member_id, occurred_at=when, store_id=f"S{rng.randint(1, 40):03d}",
                      channel=rng.choice(["store", "store", "online"]), lines=lines, tenders=tenders)


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
                        ret = ReturnIn(return_id=f"{ref}-r", occurred_at=when + timedelta(days=3), lines=[
                            ReturnLineIn(sku=line.sku, quantity=line.quantity, amount_cents=line.amount_cents)])
                        await ledger.post_return(db, rulebook, ref, ret)
                        counts["returns"] += 1
                    progress.advance(task)
                if rng.random() < 0.02:
                    await membership.cancel(db, member_id)
                    counts["cancelled"] += 1

        await asyncio.gather(*(shopper() for _ in range(CONCURRENCY)))
    return dict(counts)

