"""Graceful shutdown: SIGTERM lets every accepted request finish, then closes the pool."""

from __future__ import annotations

import asyncio
import signal

import asyncpg
import httpx
import pytest

from tests.reliability.harness import (
    Service,
    bearer,
    enroll_members,
    ledger_state,
    make_keys,
    purchase_body,
    running,
)
from tests.reliability.test_database_faults import service_backends, wait_for

IN_FLIGHT = 5


@pytest.mark.slow
async def test_sigterm_drains_requests_in_flight_and_closes_the_pool(private_db: str) -> None:
    service = Service(private_db)
    with running(service):
        await service.wait_up()
        keys = await make_keys(private_db)
        [member] = await enroll_members(service.base_url, keys["guest_services"], 1)
        holder, watcher = await asyncpg.connect(private_db), await asyncpg.connect(private_db)
        try:
            async with httpx.AsyncClient(base_url=service.base_url, timeout=60) as http:
                # hold the member's row so the postings are still in flight when SIGTERM arrives
                lock = holder.transaction()
                await lock.start()
                await holder.execute("SELECT 1 FROM members WHERE id = $1 FOR UPDATE", member)
                bodies = [purchase_body(member, 10_000 + i) for i in range(IN_FLIGHT)]
                in_flight = [asyncio.create_task(http.post("/v1/purchases", json=b, headers=bearer(keys["checkout"])))
                             for b in bodies]

                async def waiting() -> bool:
                    return bool(await service_backends(watcher, waiting_on_lock=True))

                await wait_for(waiting, what="the postings to wait on the member's row")
                await asyncio.sleep(0.5)  # the others are in the service by now (queued or waiting too)
                assert not any(task.done() for task in in_flight)
                service.terminate()
                await asyncio.sleep(0.5)
                assert service.process.poll() is None, "the service quit with requests in flight"  # type: ignore[union-attr]
                with pytest.raises(httpx.TransportError):  # draining: no new connection is accepted
                    async with httpx.AsyncClient(base_url=service.base_url, timeout=5) as fresh:
                        await fresh.get("/health")
                await lock.rollback()
                answers = await asyncio.gather(*in_flight)
            assert [a.status_code for a in answers] == [201] * IN_FLIGHT, [a.text for a in answers]
            # uvicorn re-raises the SIGTERM it handled once shut down, so the process ends "by" it
            assert service.process.wait(timeout=40) in (0, -signal.SIGTERM)  # type: ignore[union-attr]
            assert "Application shutdown complete" in service.log(), service.log()

            async def pool_closed() -> bool:
                return not await service_backends(watcher)

            await wait_for(pool_closed, timeout=10, what="the service's connections to close")
        finally:
            await holder.close()
            await watcher.close()

    state = await ledger_state(private_db)
    assert {b["purchase_id"] for b in bodies} <= set(state["purchases"])
