"""Webhooks as the Standard Webhooks specification describes them: signed deliveries that a receiver
verifies with the `standardwebhooks` package, retries with the same webhook-id, failed deliveries
listed and sent again, slow endpoints that hold no one else up; and the one job runner."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from rewards.engine import PostPurchase
from rewards.events.delivery import Deliverer
from rewards.events.webhooks import SecretBox
from rewards.jobs import JOBS_LOCK, Job, Runner
from tests.conftest import TESTS, auth, purchase_in
from tests.events.support import Receiver, read_all
from tests.reliability.harness import REPO

FAST = (timedelta(milliseconds=200), timedelta(milliseconds=200))  # three attempts, a fifth of a second apart


@pytest.fixture(autouse=True)
async def no_webhooks_yet(events_db: Any) -> None:
    """Each test starts with no webhook: the module's database is shared by its tests."""
    await events_db.run("DELETE FROM webhooks")


async def register(client: Any, keys: dict[str, str], url: str, **extra: Any) -> dict[str, Any]:
    answer = await client.post("/v1/webhooks", json={"url": url, **extra}, headers=auth(keys["admin"]))
    assert answer.status_code == 201, answer.text
    return answer.json()


def deliverer(client: Any, db: Any, **options: Any) -> Deliverer:
    return Deliverer(db, client.app.state.webhook_secrets, **{"timeout": 3.0, "schedule": FAST, **options})


async def until(check: Callable[[], Awaitable[bool]], what: str, *, seconds: float = 15, every: float = 0.05) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {seconds} s")
        await asyncio.sleep(every)


async def deliver_until(sender: Deliverer, check: Callable[[], bool], what: str, *, seconds: float = 15) -> None:
    async def ticked() -> bool:
        await sender.tick()
        return check()

    await until(ticked, what, seconds=seconds)


def failed_attempt(sender: Deliverer, db: Any, webhook_id: int, error: str = "%") -> Callable[[], Awaitable[bool]]:
    """A check for `until`: one more round of `sender`, then whether an attempt to the webhook failed so."""
    async def check() -> bool:
        await sender.tick()
        await sender.drain()
        return bool(await db.run("SELECT 1 FROM webhook_deliveries WHERE webhook_id = $1 AND last_error LIKE $2",
                                 webhook_id, error))

    return check


async def post(engine: Any, member: int, amount: int = 31_000) -> Any:
    return (await engine.submit(PostPurchase.of(purchase_in(member, amount), TESTS))).answer


async def test_a_webhook_gets_a_secret_shown_once_and_kept_sealed(
    events_client: Any, events_keys: dict[str, str], events_db: Any
) -> None:
    made = await register(events_client, events_keys, "https://mailer.example.com/hooks", types=["reward.issued"],
                          description="the mailer")
    secret = made["secret"]
    assert secret.startswith("whsec_") and len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    listed = await events_client.get("/v1/webhooks", headers=auth(events_keys["admin"]))
    mine = [w for w in listed.json()["items"] if w["webhook_id"] == made["webhook_id"]]
    assert mine == [{"webhook_id": made["webhook_id"], "url": "https://mailer.example.com/hooks",
                     "types": ["reward.issued"], "description": "the mailer", "created_at": made["created_at"],
                     "pending": 0, "failed": 0}]
    assert secret not in listed.text
    [row] = await events_db.run("SELECT secret_sealed, created_by_key_id FROM webhooks WHERE id = $1",
                                made["webhook_id"])
    assert secret not in row["secret_sealed"] and secret.removeprefix("whsec_")[:16] not in row["secret_sealed"]
    assert events_client.app.state.webhook_secrets.open(row["secret_sealed"]) == secret
    assert row["created_by_key_id"] is not None
    again = await register(events_client, events_keys, "https://mailer.example.com/hooks")
    assert again["secret"] != secret and again["types"] == []


@pytest.mark.parametrize(("body", "field"), [
    ({"url": "ftp://mailer.example.com/hooks"}, "url"), ({"url": "https://user:pw@mailer.example.com/x"}, "url"),
    ({"url": "https://mailer.example.com/x#frag"}, "url"), ({"url": "https:///nohost/path"}, "url"),
    ({"url": "https://mailer.example.com/x", "types": ["reward.issued", "reward.gone"]}, "types"),
    ({"url": "https://mailer.example.com/x", "secret": "whsec_mine"}, "secret"),
])
async def test_a_webhook_that_is_not_valid_is_a_422_and_is_not_stored(
    events_client: Any, events_keys: dict[str, str], events_db: Any, body: dict[str, Any], field: str
) -> None:
    count = (await events_db.run("SELECT count(*) AS n FROM webhooks"))[0]["n"]
    answer = await events_client.post("/v1/webhooks", json=body, headers=auth(events_keys["admin"]))
    assert answer.status_code == 422, answer.text
    problem = answer.json()
    # an unknown field is named in the detail (strict decoding), a bad value by `field`
    assert problem["code"] == "validation_error" and field in (problem.get("field") or problem["detail"])
    assert (await events_db.run("SELECT count(*) AS n FROM webhooks"))[0]["n"] == count


async def test_deliveries_are_signed_so_that_the_standard_webhooks_library_verifies_them(
    events_client: Any, events_keys: dict[str, str], events_db: Any, events_engine: Any, enroll: Any,
    receiver: Receiver
) -> None:
    picky = Receiver().start()
    try:
        everything = await register(events_client, events_keys, receiver.url)
        receiver.secret = everything["secret"]
        rewards_only = await register(events_client, events_keys, picky.url, types=["reward.issued"])
        picky.secret = rewards_only["secret"]
        member = await enroll()
        posted = await post(events_engine, member, 61_000)  # two rewards
        sender = deliverer(events_client, events_db)
        feed, _ = await read_all(events_client, events_keys["integrations"])
        wanted = {e["id"] for e in feed if e.get("member_id") == member}
        await deliver_until(sender, lambda: wanted <= {r.webhook_id for r in receiver.accepted()}
                            and len(picky.accepted()) == len(posted.rewards_issued), "the member's events delivered")
        await sender.drain()
        await sender.close()
    finally:
        picky.stop()
    assert receiver.received and all(r.verified for r in receiver.received)
    by_id = {e["id"]: e for e in feed}
    for got in receiver.accepted():
        assert got.event == by_id[got.webhook_id], "a delivery differs from the feed's event"
        assert got.headers["content-type"] == "application/json"
        assert abs(int(got.headers["webhook-timestamp"]) - time.time()) < 60
    # attempts run side by side: a receiver sees them in any order (the feed has the order)
    assert sorted(r.event["data"]["code"] for r in picky.accepted()) == sorted(r.code for r in posted.rewards_issued)
    assert {r.event["type"] for r in picky.accepted()} == {"reward.issued"}


async def test_a_500_is_retried_with_the_same_webhook_id_until_a_2xx(
    events_client: Any, events_keys: dict[str, str], events_db: Any, events_engine: Any, enroll: Any,
    receiver: Receiver
) -> None:
    made = await register(events_client, events_keys, receiver.url, types=["purchase.posted"])
    receiver.secret, receiver.fail_first = made["secret"], 1
    await post(events_engine, await enroll(), 500)
    sender = deliverer(events_client, events_db, schedule=(timedelta(milliseconds=300),))
    await deliver_until(sender, lambda: len(receiver.received) >= 1, "the first attempt")
    await sender.drain()
    listed = await events_client.get(f"/v1/webhooks/{made['webhook_id']}/deliveries",
                                     headers=auth(events_keys["admin"]))
    [first] = listed.json()["items"]
    assert (first["status"], first["attempts"], first["last_response_status"]) == ("pending", 1, 500)
    assert first["last_error"].startswith("HTTP 500")
    await deliver_until(sender, lambda: len(receiver.accepted()) == 1, "the retry")
    await sender.drain()
    await sender.close()
    assert [r.answered for r in receiver.received] == [500, 204]
    assert receiver.received[0].webhook_id == receiver.received[1].webhook_id == first["event_id"]
    assert receiver.received[0].body == receiver.received[1].body
    [done] = (await events_client.get(f"/v1/webhooks/{made['webhook_id']}/deliveries?status=delivered",
                                      headers=auth(events_keys["admin"]))).json()["items"]
    assert (done["status"], done["attempts"], done["last_error"]) == ("delivered", 2, None)


async def test_a_delivery_failed_after_every_retry_is_listed_and_can_be_sent_again(
    events_client: Any, events_keys: dict[str, str], events_db: Any, events_engine: Any, enroll: Any,
    receiver: Receiver
) -> None:
    admin = auth(events_keys["admin"])
    made = await register(events_client, events_keys, receiver.url, types=["purchase.posted"])
    hook = made["webhook_id"]
    receiver.secret, receiver.fail_first = made["secret"], 1000
    member = await enroll()
    await post(events_engine, member, 500)
    await post(events_engine, member, 700)
    sender = deliverer(events_client, events_db)
    failed_url = f"/v1/webhooks/{hook}/deliveries?status=failed"

    async def all_failed() -> bool:
        await sender.tick()
        await sender.drain()
        return len((await events_client.get(failed_url, headers=admin)).json()["items"]) == 2

    await until(all_failed, "both deliveries failed")
    failed = (await events_client.get(failed_url, headers=admin)).json()["items"]
    assert all((d["attempts"], d["last_response_status"], d["next_attempt_at"]) == (3, 500, None) for d in failed)
    assert len(receiver.received) == 6
    listed = (await events_client.get("/v1/webhooks", headers=admin)).json()["items"]
    assert [(w["pending"], w["failed"]) for w in listed if w["webhook_id"] == hook] == [(0, 2)]

    receiver.fail_first = 3  # the endpoint is back
    one = failed[0]
    again = await events_client.post(f"/v1/webhooks/{hook}/deliveries/{one['delivery_id']}/retry", headers=admin)
    assert again.status_code == 202, again.text
    assert (again.json()["status"], again.json()["attempts"]) == ("pending", 0)
    await deliver_until(sender, lambda: len(receiver.accepted()) == 1, "the delivery sent again")
    assert receiver.accepted()[0].webhook_id == one["event_id"]
    rest = await events_client.post(f"/v1/webhooks/{hook}/deliveries/retry-failed", headers=admin)
    assert rest.status_code == 202 and rest.json() == {"requeued": 1}
    await deliver_until(sender, lambda: len(receiver.accepted()) == 2, "every failed delivery sent again")
    await sender.drain()
    await sender.close()
    assert {r.webhook_id for r in receiver.accepted()} == {d["event_id"] for d in failed}
    missing = await events_client.post(f"/v1/webhooks/{hook}/deliveries/999999999/retry", headers=admin)
    assert missing.status_code == 404


async def test_a_hanging_endpoint_takes_only_its_share_and_postings_do_not_wait_for_it(
    events_client: Any, events_keys: dict[str, str], events_db: Any, events_engine: Any, enroll: Any,
    receiver: Receiver
) -> None:
    hanging = Receiver(delay=6).start()
    try:
        slow = await register(events_client, events_keys, hanging.url, types=["purchase.posted"])
        hanging.secret = slow["secret"]
        fast = await register(events_client, events_keys, receiver.url, types=["purchase.posted"])
        receiver.secret = fast["secret"]
        member = await enroll()
        for amount in range(100, 700, 100):
            await post(events_engine, member, amount)
        sender = deliverer(events_client, events_db, timeout=3.0, concurrency=4, per_webhook=2)
        await deliver_until(sender, lambda: len(receiver.accepted()) == 6, "every delivery to the healthy endpoint")
        # meanwhile the hanging endpoint was given its two slots and no more
        assert hanging.arrived == 2 and not hanging.received
        started = time.monotonic()
        for amount in range(100, 600, 100):
            await post(events_engine, member, amount)
        assert time.monotonic() - started < 2.5, "postings waited for a delivery"
        timed_out = "SELECT status, attempts, last_error FROM webhook_deliveries WHERE webhook_id = $1"
        await until(lambda: events_db.run(timed_out, slow["webhook_id"]), "the hanging attempts to time out")
        await sender.close()
        rows = await events_db.run(timed_out, slow["webhook_id"])
        assert rows and all((r["status"], r["attempts"], r["last_error"]) == ("pending", 1, "no answer within 3 s")
                            for r in rows)
    finally:
        hanging.stop()


async def test_a_dead_endpoint_fails_its_attempts_at_once_and_a_wrong_key_says_why(
    events_client: Any, events_keys: dict[str, str], events_db: Any, events_engine: Any, enroll: Any,
    receiver: Receiver
) -> None:
    gone = Receiver().start()
    gone.stop()  # nothing listens there any more
    dead = await register(events_client, events_keys, gone.url, types=["member.enrolled"])
    await enroll()
    sender = deliverer(events_client, events_db)
    await until(failed_attempt(sender, events_db, dead["webhook_id"]), "an attempt to the dead endpoint")
    [row] = await events_db.run("SELECT last_error, last_response_status FROM webhook_deliveries WHERE webhook_id = $1",
                                dead["webhook_id"])
    assert row["last_response_status"] is None and "Connect" in row["last_error"]
    await sender.close()

    made = await register(events_client, events_keys, receiver.url, types=["member.enrolled"])
    await enroll()
    wrong = Deliverer(events_db, SecretBox("another key of at least thirty-two characters"), schedule=FAST)
    await until(failed_attempt(wrong, events_db, made["webhook_id"], "%REWARDS_SECRET_KEY%"),
                "a delivery refused for the key")
    await wrong.close()
    assert receiver.received == []


async def test_deleting_a_webhook_deletes_its_deliveries(
    events_client: Any, events_keys: dict[str, str], events_db: Any, enroll: Any
) -> None:
    admin = auth(events_keys["admin"])
    made = await register(events_client, events_keys, "https://nowhere.example.com/hooks")
    await enroll()
    sender = deliverer(events_client, events_db)
    await sender.tick()
    await sender.drain()  # the name does not resolve: the attempt failed, and is a delivery to retry
    await sender.close()
    assert await events_db.run("SELECT 1 FROM webhook_deliveries WHERE webhook_id = $1", made["webhook_id"])
    deleted = await events_client.delete(f"/v1/webhooks/{made['webhook_id']}", headers=admin)
    assert deleted.status_code == 200 and deleted.json() == {"webhook_id": made["webhook_id"], "status": "deleted"}
    assert not await events_db.run("SELECT 1 FROM webhook_deliveries WHERE webhook_id = $1", made["webhook_id"])
    for method, path in (("DELETE", f"/v1/webhooks/{made['webhook_id']}"),
                         ("GET", f"/v1/webhooks/{made['webhook_id']}/deliveries")):
        answer = await events_client.request(method, path, headers=admin)
        assert answer.status_code == 404 and answer.json()["code"] == "not_found"


# --- the one job runner -------------------------------------------------------------------------------


def counting(runs: list[str], name: str) -> Job:
    async def run() -> str | None:
        runs.append(name)
        return None

    return Job("count", 0.05, run)


async def test_one_runner_at_a_time_and_another_takes_over_when_the_first_dies(events_url: str) -> None:
    runs: list[str] = []
    first, second = Runner(events_url, [counting(runs, "first")]), Runner(events_url, [counting(runs, "second")])
    stop_first, stop_second = asyncio.Event(), asyncio.Event()
    tasks = [asyncio.create_task(first.run(stop_first))]
    try:
        await asyncio.wait_for(first.holding.wait(), 10)
        tasks.append(asyncio.create_task(second.run(stop_second)))
        await asyncio.sleep(1.0)
        assert not second.holding.is_set() and "second" not in runs and "first" in runs
        # the first runner's session dies (its process killed, its host gone): the lock goes with it
        killer = await asyncpg.connect(events_url)
        try:
            killed = await killer.fetchval(
                """SELECT count(pg_terminate_backend(l.pid)) FROM pg_locks l
                   WHERE l.locktype = 'advisory' AND l.objid = $1 AND l.granted""", JOBS_LOCK)
        finally:
            await killer.close()
        assert killed == 1
        await asyncio.wait_for(second.holding.wait(), 10)
        await until(lambda: asyncio.sleep(0, result="second" in runs), "the second runner's jobs")
        # the first notices at its next heartbeat and stops its jobs
        await until(lambda: asyncio.sleep(0, result=not first.holding.is_set()), "the first runner stopping",
                    seconds=15)
        mark = len(runs)
        await asyncio.sleep(0.5)
        assert "first" not in runs[mark:]
    finally:
        stop_first.set()
        stop_second.set()
        await asyncio.gather(*tasks)


def jobs_command(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from rewards.cli import main; main()", "jobs", "run", *args],
                          env={**os.environ, "DATABASE_URL": url, "REWARDS_NO_PLUGINS": "1"}, capture_output=True,
                          text=True, timeout=120, cwd=REPO)


async def test_rewards_jobs_run_once_delivers_and_expires_then_exits_and_waits_for_no_one(
    events_client: Any, events_keys: dict[str, str], events_db: Any, events_engine: Any, events_url: str,
    enroll: Any, receiver: Receiver
) -> None:
    from datetime import UTC, datetime

    made = await register(events_client, events_keys, receiver.url, types=["reward.expired"])
    receiver.secret = made["secret"]
    member = await enroll()
    old = purchase_in(member, 30_000, occurred_at=datetime.now(UTC) - timedelta(days=120))
    code = (await events_engine.submit(PostPurchase.of(old, TESTS, history=True))).answer.rewards_issued[0].code
    done = await asyncio.to_thread(jobs_command, events_url, "--once")
    assert done.returncode == 0, done.stdout + done.stderr
    [expired] = [r for r in receiver.accepted() if r.event["data"]["code"] == code]
    assert expired.verified and expired.event["member_id"] == member
    assert (await events_db.run("SELECT status FROM rewards WHERE code = $1", code))[0]["status"] == "expired"

    holder = await asyncpg.connect(events_url)
    try:
        assert await holder.fetchval("SELECT pg_try_advisory_lock($1)", JOBS_LOCK)
        busy = await asyncio.to_thread(jobs_command, events_url, "--once")
    finally:
        await holder.close()
    assert busy.returncode == 3 and "another runner holds the jobs lock" in busy.stderr
