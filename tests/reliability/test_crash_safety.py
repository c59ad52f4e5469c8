"""Crash safety: SIGKILL the service under purchase load, restart it, retry what got no answer.

Afterwards every purchase counts exactly once, every balance is what its purchases earn by
`rewards.rules`, and `rewards verify` finds nothing wrong (README: Guarantees).
"""

from __future__ import annotations

import asyncio
import os
import random

import httpx
import pytest

from tests.reliability.harness import (
    Outcomes,
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
    service = Service(private_db, workers=2)
    with running(service):
        await service.wait_up()
        keys = await make_keys(private_db)
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
          f"{len(outcomes.unavailable)} answered 503")
