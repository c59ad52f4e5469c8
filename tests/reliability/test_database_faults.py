"""Database faults: a PostgreSQL restart during load, backends terminated mid-posting.

While the database is gone the service answers 503 problem+json `database_unavailable` and
/ready is false; once it is back the service recovers by itself (same process, no restart),
its pooled connections to the old server do not keep failing, and no posting is half-written.
All of it runs against a private server: the machine's shared PostgreSQL is never touched.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
import httpx
import pytest

from tests.reliability.harness import (
    Outcomes,
    PrivatePostgres,
    Service,
    assert_balances_match,
    assert_problem,
    bearer,
    enroll_members,
    ledger_state,
    make_keys,
    post_until_answered,
    purchase_body,
    run_verify,
    running,
)


async def service_backends(conn: asyncpg.Connection, *, waiting_on_lock: bool = False) -> list[int]:
    """The pids of the service's server processes on this database."""
    rows = await conn.fetch(
        """SELECT pid FROM pg_stat_activity WHERE application_name = 'rewards' AND datname = current_database()
             AND ($1 = false OR wait_event_type = 'Lock')""",
        waiting_on_lock,
    )
    return [r["pid"] for r in rows]


async def wait_for(predicate, timeout: float = 30, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def warm_pool(http: httpx.AsyncClient, member_id: int, token: str, n: int = 10) -> None:
    """Make the service open several pooled connections at once."""
    answers = await asyncio.gather(*(http.get(f"/v1/members/{member_id}/balance", headers=bearer(token))
                                     for _ in range(n)))
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]


async def all_answer(http: httpx.AsyncClient, member_id: int, token: str, n: int = 20) -> None:
    """n requests in a row, each answered at once: no stale connection is handed out."""
    for i in range(n):
        answer = await http.get(f"/v1/members/{member_id}/balance", headers=bearer(token))
        assert answer.status_code == 200, f"request {i} after the fault: {answer.status_code} {answer.text}"


@pytest.mark.slow
async def test_database_restart_during_load_answers_503_then_recovers_without_restart(
    private_pg: PrivatePostgres, private_db: str
) -> None:
    service = Service(private_db)
    with running(service):
        await service.wait_up()
        pid = service.process.pid  # type: ignore[union-attr]
        keys = await make_keys(private_db)
        members = await enroll_members(service.base_url, keys["guest_services"], 3)
        bodies: dict[str, dict] = {}
        outcomes = Outcomes()
        load_done = asyncio.Event()

        async def checkout(n: int) -> None:
            async with httpx.AsyncClient(base_url=service.base_url, timeout=15) as http:
                i = 0
                while not load_done.is_set():
                    body = purchase_body(members[(n + i) % len(members)], 1_000 + 137 * i, card_cents=500)
                    bodies[body["purchase_id"]] = body
                    await post_until_answered(http, "/v1/purchases", body, keys["checkout"], outcomes,
                                              body["purchase_id"])
                    i += 1

        async def outage() -> None:
            async with httpx.AsyncClient(base_url=service.base_url, timeout=15) as http:
                try:
                    await asyncio.sleep(1.0)
                    private_pg.stop("fast")
                    down = await http.get("/ready")
                    assert down.status_code == 503 and down.json() == {"ready": False}, down.text
                    gone = await http.post("/v1/purchases", json=purchase_body(members[0], 100),
                                           headers=bearer(keys["checkout"]))
                    problem = assert_problem(gone, 503, "database_unavailable")
                    assert gone.headers.get("retry-after"), problem
                    await asyncio.sleep(1.5)
                    private_pg.start()
                    await wait_for(lambda: _ready(http), what="/ready to turn true again")
                    await asyncio.sleep(1.0)
                finally:
                    load_done.set()

        await asyncio.gather(outage(), *(checkout(n) for n in range(4)))
        assert service.process.poll() is None and service.process.pid == pid, "the service was restarted"  # type: ignore[union-attr]

    assert not outcomes.other, [(r.status_code, r.text) for r in outcomes.other[:5]]
    assert outcomes.unavailable, "the load never met the outage"
    for answer in outcomes.unavailable:
        assert_problem(answer, 503, "database_unavailable")
    assert set(outcomes.answers) == set(bodies)
    state = await ledger_state(private_db)
    assert set(state["purchases"]) == set(bodies) and not state["duplicates"]
    assert_balances_match(state, bodies)
    verify = run_verify(private_db)
    assert verify.returncode == 0, verify.stdout + verify.stderr


async def _ready(http: httpx.AsyncClient) -> bool:
    answer = await http.get("/ready")
    return answer.status_code == 200 and answer.json() == {"ready": True}


@pytest.mark.slow
async def test_pooled_connections_to_a_restarted_server_are_not_handed_out(
    private_pg: PrivatePostgres, private_db: str
) -> None:
    service = Service(private_db)
    with running(service):
        await service.wait_up()
        keys = await make_keys(private_db)
        [member] = await enroll_members(service.base_url, keys["guest_services"], 1)
        async with httpx.AsyncClient(base_url=service.base_url, timeout=15) as http:
            await warm_pool(http, member, keys["checkout"])
            private_pg.stop("fast")
            private_pg.start()
            await (await asyncpg.connect(private_db)).close()  # the server is back
            await all_answer(http, member, keys["checkout"])


@pytest.mark.slow
async def test_terminated_idle_backends_do_not_fail_the_next_requests(private_db: str) -> None:
    service = Service(private_db)
    with running(service):
        await service.wait_up()
        keys = await make_keys(private_db)
        [member] = await enroll_members(service.base_url, keys["guest_services"], 1)
        admin = await asyncpg.connect(private_db)
        try:
            async with httpx.AsyncClient(base_url=service.base_url, timeout=15) as http:
                await warm_pool(http, member, keys["checkout"])
                pids = await service_backends(admin)
                assert len(pids) >= 2
                await admin.execute("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) pid", pids)
                await wait_for(lambda: _gone(admin, pids), what="the backends to exit")
                await all_answer(http, member, keys["checkout"])
        finally:
            await admin.close()


async def _gone(conn: asyncpg.Connection, pids: list[int]) -> bool:
    return not await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1::int[])", pids)


@pytest.mark.slow
async def test_backend_terminated_mid_posting_writes_nothing_and_a_retry_posts_once(private_db: str) -> None:
    service = Service(private_db)
    with running(service):
        await service.wait_up()
        keys = await make_keys(private_db)
        [member] = await enroll_members(service.base_url, keys["guest_services"], 1)
        checkout = keys["checkout"]
        # one connection holds the lock; another watches (pg_stat_activity is frozen inside a transaction)
        admin, watcher = await asyncpg.connect(private_db), await asyncpg.connect(private_db)
        async with httpx.AsyncClient(base_url=service.base_url, timeout=30) as http:
            first = purchase_body(member, 40_000, card_cents=10_000)
            assert (await http.post("/v1/purchases", json=first, headers=bearer(checkout))).status_code == 201
            before = await ledger_state(private_db)

            # hold the member's row, so every posting for them stops inside its transaction
            lock = admin.transaction()
            await lock.start()
            await admin.execute("SELECT 1 FROM members WHERE id = $1 FOR UPDATE", member)
            bodies = [purchase_body(member, 31_000 + i, card_cents=1_000) for i in range(3)]
            ret = {"return_id": "r-terminated", "occurred_at": first["occurred_at"],
                   "lines": [{"sku": "SKU-A", "quantity": 1, "amount_cents": 20_000}]}
            in_flight = [asyncio.create_task(http.post("/v1/purchases", json=b, headers=bearer(checkout)))
                         for b in bodies]
            in_flight.append(asyncio.create_task(http.post(
                f"/v1/purchases/{first['purchase_id']}/returns", json=ret, headers=bearer(checkout))))
            await wait_for(lambda: _waiting(watcher), what="the postings to wait on the lock")
            await asyncio.sleep(0.3)  # all four are in the service now, waiting or queued to
            assert not any(task.done() for task in in_flight)
            while not all(task.done() for task in in_flight):  # postings may share a backend, or queue for one
                await watcher.execute("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) pid",
                                      await service_backends(watcher, waiting_on_lock=True))
                await asyncio.sleep(0.05)
            answers = await asyncio.gather(*in_flight)
            await lock.rollback()
            for answer in answers:
                assert_problem(answer, 503, "database_unavailable")

            after = await ledger_state(private_db)
            assert after["purchases"].keys() == before["purchases"].keys(), "a terminated posting left a purchase"
            assert after["returns"].keys() == before["returns"].keys(), "a terminated return left a row"
            assert after["members"][member] == before["members"][member]
            assert run_verify(private_db).returncode == 0

            # the checkout retries: each posting now counts once
            for body in bodies:
                assert (await http.post("/v1/purchases", json=body, headers=bearer(checkout))).status_code == 201
                assert (await http.post("/v1/purchases", json=body, headers=bearer(checkout))).status_code == 200
            returned = await http.post(f"/v1/purchases/{first['purchase_id']}/returns", json=ret,
                                       headers=bearer(checkout))
            assert returned.status_code == 201, returned.text
        await admin.close()
        await watcher.close()

    state = await ledger_state(private_db)
    reversed_points = returned.json()["point_cents_reversed"]
    assert reversed_points > 0
    assert_balances_match(state, {b["purchase_id"]: b for b in [first, *bodies]}, {member: reversed_points})
    verify = run_verify(private_db)
    assert verify.returncode == 0, verify.stdout + verify.stderr


async def _waiting(conn: asyncpg.Connection) -> list[int]:
    return await service_backends(conn, waiting_on_lock=True)
