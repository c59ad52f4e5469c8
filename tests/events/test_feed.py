"""The pull feed: following next_cursor gives every event exactly once, in commit order, also when
transactions commit in another order than the one their event ids were drawn in."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from rewards.engine import PostPurchase, apply
from tests.conftest import TESTS, auth, purchase_in
from tests.events.support import read_all


async def read_one_by_one(client: Any, token: str, after: str) -> tuple[list[dict[str, Any]], str]:
    return await read_all(client, token, after=after, limit=1)


async def new_event_ids(db: Any, above: int) -> list[int]:
    return [r["id"] for r in await db.run("SELECT id FROM events WHERE id > $1 ORDER BY id", above)]


async def highest_event_id(db: Any) -> int:
    return (await db.run("SELECT coalesce(max(id), 0) AS n FROM events"))[0]["n"]


async def test_a_transaction_that_commits_after_later_ones_is_served_after_them_and_never_skipped(
    events_client: Any, events_keys: dict[str, str], events_db: Any, events_engine: Any, enroll: Any
) -> None:
    token = events_keys["integrations"]
    held_member, *others = [await enroll() for _ in range(3)]
    _, start = await read_all(events_client, token)
    before = await highest_event_id(events_db)

    async with events_db.connection() as held:
        open_tx = held.transaction()
        await open_tx.start()
        # a posting whose events are written (their ids drawn) but not committed yet
        await apply(held, [PostPurchase.of(purchase_in(held_member, 2000), TESTS)], events_engine.rulebook,
                    events_engine.limits)
        held_ids = [r["id"] for r in await held.fetch(
            "SELECT id FROM events WHERE tx = pg_current_xact_id()::text::bigint ORDER BY id")]
        for member in others:  # later postings, committed first
            await events_engine.submit(PostPurchase.of(purchase_in(member, 3000), TESTS))

        first, cursor = await read_one_by_one(events_client, token, start)
        seen = [int(e["id"].removeprefix("evt_")) for e in first]
        assert seen and not set(held_ids) & set(seen), "an uncommitted event was served"
        # the hazard was real: an "ids after the last one seen" feed would now skip the held events
        assert max(seen) > max(held_ids)
        await open_tx.commit()

    rest, _ = await read_one_by_one(events_client, token, cursor)
    assert [int(e["id"].removeprefix("evt_")) for e in rest] == held_ids
    at_once, _ = await read_all(events_client, token, after=start)
    assert at_once == first + rest
    assert sorted(seen + held_ids) == await new_event_ids(events_db, before)


async def test_concurrent_postings_read_one_by_one_as_they_commit_equal_the_feed_read_at_once(
    events_client: Any, events_keys: dict[str, str], events_db: Any, events_engine: Any, enroll: Any
) -> None:
    token = events_keys["integrations"]
    members = [await enroll() for _ in range(6)]
    _, start = await read_all(events_client, token)
    before = await highest_event_id(events_db)
    rng = random.Random(14)
    posting = asyncio.Event()

    async def post_now(n: int) -> None:
        await events_engine.submit(PostPurchase.of(purchase_in(members[n % 3], rng.randrange(100, 40_000)), TESTS))

    async def post_slowly(n: int) -> None:
        # its ids are drawn now; it commits after a while, after postings that began later
        async with events_db.connection() as conn, conn.transaction():
            await apply(conn, [PostPurchase.of(purchase_in(members[3 + n % 3], 31_000), TESTS)],
                        events_engine.rulebook, events_engine.limits)
            await asyncio.sleep(rng.uniform(0.05, 0.4))

    async def reader() -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []
        cursor = start
        while True:
            done = not posting.is_set()  # read once more after the postings end
            answer = await events_client.get("/v1/events", params={"after": cursor, "limit": 1},
                                             headers=auth(token))
            page = answer.json()
            got += page["items"]
            cursor = page["next_cursor"]
            if done and not page["items"]:
                return got
            await asyncio.sleep(0 if page["items"] else 0.01)

    async def postings() -> None:
        try:
            await asyncio.gather(*(post_now(n) for n in range(30)), *(post_slowly(n) for n in range(6)))
        finally:
            posting.clear()

    posting.set()
    one_by_one, _ = await asyncio.gather(reader(), postings())
    at_once, _ = await read_all(events_client, token, after=start)
    ids = [int(e["id"].removeprefix("evt_")) for e in one_by_one]
    assert one_by_one == at_once
    assert len(ids) == len(set(ids)) and sorted(ids) == await new_event_ids(events_db, before)
    assert sum(e["type"] == "purchase.posted" for e in one_by_one) == 36
    assert ids != sorted(ids), "every posting committed in id order: the test forced nothing"


async def test_types_keep_only_the_events_asked_for_and_an_empty_page_keeps_its_place(
    events_client: Any, events_keys: dict[str, str], events_engine: Any, enroll: Any
) -> None:
    token = events_keys["integrations"]
    _, start = await read_all(events_client, token)
    member = await enroll()
    await events_engine.submit(PostPurchase.of(purchase_in(member, 31_000), TESTS))
    issued, end = await read_all(events_client, token, after=start, types="reward.issued,member.enrolled")
    assert [(e["type"], e["member_id"]) for e in issued] == [("member.enrolled", member), ("reward.issued", member)]
    # nothing new: an empty page, and its cursor later gives what came since
    empty = await events_client.get("/v1/events", params={"after": end}, headers=auth(token))
    assert empty.json()["items"] == []
    await events_engine.submit(PostPurchase.of(purchase_in(member, 500), TESTS))
    later, _ = await read_all(events_client, token, after=empty.json()["next_cursor"])
    assert [e["type"] for e in later] == ["purchase.posted"]


@pytest.mark.parametrize(("params", "field"), [
    ({"after": "bm90LWEtY3Vyc29y"}, "after"), ({"after": "f1.1.2.3"}, "after"),
    ({"types": "reward.issued,nope"}, "types"),
    ({"limit": "0"}, "limit"), ({"limit": "1001"}, "limit"),
])
async def test_a_feed_request_that_is_not_valid_is_a_422_naming_its_parameter(
    events_client: Any, events_keys: dict[str, str], params: dict[str, str], field: str
) -> None:
    answer = await events_client.get("/v1/events", params=params, headers=auth(events_keys["integrations"]))
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert (answer.json()["code"], answer.json()["field"]) == ("validation_error", field)
