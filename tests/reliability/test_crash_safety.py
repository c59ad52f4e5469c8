"""Crash safety: SIGKILL the service under purchase load, restart it, retry what got no answer.

Afterwards every purchase counts exactly once, every balance is what its purchases earn by
`rewards.rules`, `rewards verify` finds nothing wrong, and every event was delivered at least
once to a webhook registered before the load (the kills cut deliveries off too) (README:
Guarantees).
"""

from __future__ import annotations

import asyncio
import os
import random
import time

import asyncpg
import httpx
import pytest

from tests.events.support import Receiver
from tests.reliability.harness import (
    Outcomes,
    bearer,
    Service,
    assert_balances_match,
    earned,
    enroll_members,
    ledger_state,
    make_keys,
    post_until_answered,
    purchase_body,
    run_verify,
    running,
)

KILLS = int(os.environ.get("REWARDS_CRASH_KILLS", "4"))
CLIENTS = 8
MEMBERS = 4


@pytest.mark.slow
async def test_sigkill_under_load_counts_every_purchase_exactly_once(private_db: str) -> None:
    # a short webhook timeout: an attempt cut off by a kill is leased for 2 × 2 + 5 s, then made again
    service = Service(private_db, workers=2, env={"REWARDS_WEBHOOK_TIMEOUT": "2s"})
    receiver = Receiver().start()
    with running(service):
        await service.wait_up()
        keys = await make_keys(private_db)
        async with httpx.AsyncClient(base_url=service.base_url, timeout=15) as http:
            hook = await http.post("/v1/webhooks", json={"url": receiver.url}, headers=bearer(keys["admin"]))
            assert hook.status_code == 201, hook.text
            receiver.secret = hook.json()["secret"]
        members = await enroll_members(service.base_url, keys["guest_services"], MEMBERS)
        bodies: dict[str, dict] = {}
        outcomes = Outcomes()
        killing_done = asyncio.Event()
        rng = random.Random(int(os.environ.get("REWARDS_CRASH_SEED", "5")))
        print(f"seed: REWARDS_CRASH_SEED={os.environ.get('REWARDS_CRASH_SEED', '5')}")

        async def checkout(n: int) -> None:
            async with httpx.AsyncClient(base_url=service.base_url, timeout=15) as http:
                i = 0
                while not killing_done.is_set() or i < 10:
                    amount = rng.randrange(1, 40_000)
                    body = purchase_body(members[(n + i) % MEMBERS], amount, card_cents=rng.choice([0, amount // 3]),
                                         gift_card_cents=rng.choice([0, 0, 2_500]))
                    bodies[body["purchase_id"]] = body
                    await post_until_answered(http, "/v1/purchases", body, keys["checkout"], outcomes,
                                              body["purchase_id"])
                    i += 1

        async def crasher() -> None:
            try:
                for _ in range(KILLS):
                    await asyncio.sleep(rng.uniform(0.4, 1.2))
                    service.kill()
                    service.start()
                    await service.wait_up()
            finally:
                killing_done.set()

        await asyncio.gather(crasher(), *(checkout(n) for n in range(CLIENTS)))
        # once more, with deliveries under way: their answers reach a service that is gone
        receiver.delay = 1.0
        cut_off = await deliveries_under_way(receiver)
        service.kill()
        receiver.delay = 0
        service.start()
        await service.wait_up()
        undelivered = await wait_for_deliveries(private_db, receiver)
    receiver.stop()

    times = {webhook_id: sum(1 for r in receiver.accepted() if r.webhook_id == webhook_id) for webhook_id in cut_off}
    assert all(n >= 2 for n in times.values()), f"an attempt cut off by the kill was not made again: {times}"

    assert not undelivered, f"{len(undelivered)} events never delivered, such as {sorted(undelivered)[:5]}"
    assert receiver.received and all(r.verified for r in receiver.received)
    delivered_purchases = {r.event["data"]["purchase_id"] for r in receiver.accepted()
                           if r.event["type"] == "purchase.posted"}
    assert delivered_purchases == set(bodies), "a purchase's event was never delivered"
    assert not outcomes.other, [(r.status_code, r.text) for r in outcomes.other[:5]]
    assert outcomes.unanswered > 0, "no request was cut off: the kills did not happen under load"
    assert set(outcomes.answers) == set(bodies)
    for purchase_id, answer in outcomes.answers.items():
        assert answer.json()["point_cents_earned"] == earned(bodies[purchase_id]), answer.text

    state = await ledger_state(private_db)
    assert not state["duplicates"]
    assert set(state["purchases"]) == set(bodies), "a purchase was lost or invented"
    assert_balances_match(state, bodies)
    verify = run_verify(private_db)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    print(f"{len(bodies)} purchases, {KILLS} kills, {outcomes.unanswered} requests cut off, "
          f"{len(outcomes.unavailable)} answered 503; {len(receiver.accepted())} deliveries accepted, "
          f"{len(receiver.accepted()) - len({r.webhook_id for r in receiver.accepted()})} of them again")


async def deliveries_under_way(receiver: Receiver, seconds: float = 60) -> set[str]:
    """The webhook-ids of attempts the receiver is answering, once there are some."""
    deadline = time.monotonic() + seconds
    while not receiver.in_flight:
        assert time.monotonic() < deadline, "no delivery under way to cut off"
        await asyncio.sleep(0.02)
    return set(receiver.in_flight)


async def wait_for_deliveries(url: str, receiver: Receiver, seconds: float = 120) -> set[int]:
    """Until the receiver has accepted every event in the database and the service has recorded
    its webhook's position past them all, with no delivery waiting for a retry (or `seconds`
    passed): the events the receiver never got, or every event when the service never caught up."""
    conn = await asyncpg.connect(url)
    try:
        deadline = time.monotonic() + seconds
        while True:
            written = {r["id"] for r in await conn.fetch("SELECT id FROM events")}
            missing = written - {int(r.webhook_id.removeprefix("evt_")) for r in receiver.accepted()}
            caught_up = await conn.fetchval(
                """SELECT w.position_pass > (SELECT coalesce(max(pass), 0) FROM event_passes)
                          AND NOT EXISTS (SELECT 1 FROM webhook_deliveries WHERE status <> 'delivered')
                   FROM webhooks w""")
            if (not missing and caught_up) or time.monotonic() > deadline:
                return missing if caught_up else written
            await asyncio.sleep(0.5)
    finally:
        await conn.close()
