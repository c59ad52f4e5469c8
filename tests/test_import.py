"""`rewards import purchases`: the posting engine's decisions, idempotent by purchase_id, refusals
with reasons in line order, history older than a live posting may be; and the big demo's COPY
writer holding to what the engine's own statement writes."""

from __future__ import annotations

import asyncio
import csv
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest

from rewards.bulk_demo import copy_plan, run_bulk_demo
from rewards.db import Database
from rewards.engine import Limits, PostPurchase, apply
from rewards.engine.posting import write_plan
from rewards.importer import IMPORTER, CsvHeaderError, import_purchases, split_by_member
from rewards.schemas import PurchaseIn
from rewards.verify import find_problems
from tests.conftest import auth, post_purchase, purchase, unique
from tests.databases import scratch_database
from tests.test_cli import rewards


def basket(member_id: int, n: int, *, purchase_id: str | None = None, **overrides: Any) -> dict[str, Any]:
    """A varied purchase: merchandise, sometimes a gift card, tax, card or debit, amounts that cross rewards."""
    amount = 4000 + (n * 7919) % 26000
    lines = [{"sku": f"APP-{n % 7}", "category": "apparel", "quantity": 1, "amount_cents": amount}]
    if n % 4 == 0:
        lines.append({"sku": "GIFTCARD", "category": "gift_card", "quantity": 1, "amount_cents": 2500})
    tax = amount * 8 // 100
    lines.append({"sku": "TAX", "category": "tax", "quantity": 1, "amount_cents": tax})
    total = sum(line["amount_cents"] for line in lines)
    method = "westique_credit_card" if n % 3 == 0 else "debit_card"
    body = purchase(member_id, 0, purchase_id=purchase_id or unique(f"imp{n}"),
                    occurred_at=datetime.now(UTC) - timedelta(days=5) + timedelta(minutes=n),
                    lines=lines, tenders=[{"method": method, "amount_cents": total}])
    body.update(overrides)
    return body


def write_lines(path: Path, bodies: list[Any]) -> Path:
    with path.open("w") as f:
        for body in bodies:
            f.write((body if isinstance(body, str) else json.dumps(body)) + "\n")
    return path


async def entries(db: Database, member_id: int) -> list[tuple[str, int]]:
    rows = await db.run("SELECT kind, point_cents FROM ledger WHERE member_id = $1 ORDER BY id", member_id)
    return [(r["kind"], r["point_cents"]) for r in rows]


async def member_state(db: Database, member_id: int) -> tuple[int, int]:
    row = (await db.run("SELECT point_cents, rewards_issued FROM members WHERE id = $1", member_id))[0]
    return row["point_cents"], row["rewards_issued"]


async def test_import_gives_the_same_points_rewards_and_entries_as_the_api(
        db, client, keys, make_member, tmp_path):
    imported_member, api_member = await make_member(), await make_member()
    bodies = [basket(imported_member, n) for n in range(12)]
    summary = await import_purchases(db, write_lines(tmp_path / "p.jsonl", bodies))
    assert (summary.lines, summary.imported, summary.rejected) == (12, 12, 0)

    for n in range(12):
        posted = await client.post("/v1/purchases", json=basket(api_member, n), headers=auth(keys["checkout"]))
        assert posted.status_code == 201, posted.text

    assert await member_state(db, imported_member) == await member_state(db, api_member)
    assert await entries(db, imported_member) == await entries(db, api_member)
    assert summary.rewards_issued == (await member_state(db, api_member))[1] > 0
    stored = "SELECT qualifying_cents, card_cents, point_cents, bonus_point_cents, balance_after FROM purchases " \
             "WHERE member_id = $1 ORDER BY occurred_at"
    assert [tuple(r) for r in await db.run(stored, imported_member)] == \
           [tuple(r) for r in await db.run(stored, api_member)]


async def test_running_the_same_file_again_imports_nothing_twice(db, make_member, tmp_path):
    member_id = await make_member()
    path = write_lines(tmp_path / "again.jsonl", [basket(member_id, n) for n in range(8)])
    first = await import_purchases(db, path, batch_size=3)
    before = (await member_state(db, member_id), await entries(db, member_id))
    second = await import_purchases(db, path, batch_size=3)
    assert (first.imported, first.already_imported) == (8, 0)
    assert (second.imported, second.already_imported, second.rejected) == (0, 8, 0)
    assert (await member_state(db, member_id), await entries(db, member_id)) == before


async def test_running_a_file_again_locks_no_member(db, database_url, make_member, tmp_path):
    """A re-run is all replays: it waits for no member a checkout is posting for meanwhile."""
    member_id = await make_member()
    path = write_lines(tmp_path / "locked.jsonl", [basket(member_id, n) for n in range(4)])
    assert (await import_purchases(db, path)).imported == 4
    checkout = await asyncpg.connect(database_url)
    try:
        async with checkout.transaction():
            await checkout.execute("SELECT 1 FROM members WHERE id = $1 FOR UPDATE", member_id)
            # a guard against hanging on the lock, not a measure of speed
            again = await asyncio.wait_for(import_purchases(db, path), timeout=60)
    finally:
        await checkout.close()
    assert (again.imported, again.already_imported) == (0, 4)


async def test_a_line_repeated_within_the_file_counts_once(db, make_member, tmp_path):
    member_id = await make_member()
    body = basket(member_id, 1)
    summary = await import_purchases(db, write_lines(tmp_path / "dup.jsonl", [body, basket(member_id, 2), body]))
    assert (summary.imported, summary.already_imported) == (2, 1)
    assert len([e for e in await entries(db, member_id) if e[0] == "earn"]) == 2


async def test_an_imported_purchase_posted_through_the_api_is_a_replay(db, client, keys, make_member, tmp_path):
    member_id = await make_member()
    body = basket(member_id, 3, purchase_id=unique("imp-then-api"))
    await import_purchases(db, write_lines(tmp_path / "one.jsonl", [body]))
    before = await entries(db, member_id)
    replay = await client.post("/v1/purchases", json=body, headers=auth(keys["checkout"]))
    assert replay.status_code == 200, replay.text
    assert replay.json()["point_cents_earned"] == sum(p for k, p in before if k in ("earn", "card_bonus"))
    assert await entries(db, member_id) == before
    other = await client.post("/v1/purchases", json={**body, "store_id": "S999"}, headers=auth(keys["checkout"]))
    assert other.status_code == 409 and other.json()["code"] == "idempotency_conflict"


async def test_a_purchase_posted_through_the_api_then_imported_is_not_counted_again(
        db, client, keys, make_member, tmp_path):
    member_id = await make_member()
    body = basket(member_id, 5)
    assert (await client.post("/v1/purchases", json=body, headers=auth(keys["checkout"]))).status_code == 201
    before = await entries(db, member_id)
    summary = await import_purchases(db, write_lines(tmp_path / "api-first.jsonl", [body]))
    assert (summary.imported, summary.already_imported) == (0, 1)
    assert await entries(db, member_id) == before


async def test_refused_lines_go_to_the_rejected_file_with_their_reasons(db, client, keys, make_member, tmp_path):
    member_id, cancelled = await make_member(), await make_member()
    assert (await client.post(f"/v1/members/{cancelled}/cancel", headers=auth(keys["guest_services"]))).is_success
    taken = basket(member_id, 1)
    good = basket(member_id, 2)
    lines = [
        good,                                                                 # 1 imported
        "{not json",                                                          # 2 malformed
        {**basket(member_id, 3), "colour": "red"},                            # 3 unknown field
        {**basket(member_id, 4), "tenders": [{"method": "cash", "amount_cents": 1}]},  # 4 does not balance
        basket(2**40, 5),                                                     # 5 no such member
        basket(cancelled, 6),                                                 # 6 cancelled member
        {**basket(member_id, 7), "currency": "EUR"},                          # 7 currency
        taken,                                                                # 8 imported
        {**taken, "store_id": "S777"},                                        # 9 same id, other body
        {**basket(member_id, 10), "tenders": [{"method": "reward", "amount_cents": 100, "reward_code": "WRNOPE"}],
         "lines": [{"sku": "A", "category": "apparel", "quantity": 1, "amount_cents": 100}]},  # 10 unknown reward
        "",                                                                   # blank: skipped
    ]
    rejected = tmp_path / "why.jsonl"
    summary = await import_purchases(db, write_lines(tmp_path / "mixed.jsonl", lines), rejected_path=rejected)
    assert (summary.lines, summary.imported, summary.rejected) == (10, 2, 8)
    found = {r["line"]: r for r in map(json.loads, rejected.read_text().splitlines())}
    assert {n: r["code"] for n, r in found.items()} == {
        2: "malformed_request", 3: "validation_error", 4: "tenders_do_not_balance", 5: "not_found",
        6: "member_not_active", 7: "unsupported_currency", 9: "idempotency_conflict", 10: "reward_not_redeemable",
    }
    assert "colour" in found[3]["reason"]
    assert found[9]["purchase_id"] == taken["purchase_id"]
    assert json.loads(found[4]["input"])["purchase_id"] == lines[3]["purchase_id"]
    assert len([e for e in await entries(db, member_id) if e[0] == "earn"]) == 2
    assert (await member_state(db, cancelled))[0] == 0


async def test_import_redeems_a_reward_once_like_the_api(db, client, keys, make_member, tmp_path):
    member_id = await make_member()
    issued = await client.post("/v1/purchases", json=purchase(member_id, 30000), headers=auth(keys["checkout"]))
    code = issued.json()["rewards_issued"][0]["code"]
    spend = [{"sku": "A", "category": "apparel", "quantity": 1, "amount_cents": 5000}]
    tenders = [{"method": "reward", "amount_cents": 1000, "reward_code": code},
               {"method": "cash", "amount_cents": 4000}]
    first = purchase(member_id, 0, lines=spend, tenders=tenders)
    second = purchase(member_id, 0, lines=spend, tenders=tenders)
    rejected = tmp_path / "r.jsonl"
    summary = await import_purchases(db, write_lines(tmp_path / "redeem.jsonl", [first, second]),
                                     rejected_path=rejected)
    assert (summary.imported, summary.rejected) == (1, 1)
    assert json.loads(rejected.read_text())["code"] == "reward_not_redeemable"
    reward = await client.get(f"/v1/rewards/{code}", headers=auth(keys["checkout"]))
    assert reward.json()["status"] == "redeemed"
    assert ("reward_redeemed", 0) in await entries(db, member_id)
    # only the 40.00 paid in cash earned
    assert (await member_state(db, member_id))[0] == 4000


async def test_concurrent_postings_through_group_commit_stay_sound(db, engine, make_member):
    """Forty postings at once for a few members: batched, each answered, the ledger sound."""
    members = [await make_member() for _ in range(4)]
    bodies = [msgspec.convert(basket(members[n % 4], n), PurchaseIn, strict=False) for n in range(40)]
    bodies.append(bodies[0])  # a duplicate in flight at the same time
    results = await asyncio.gather(*(post_purchase(engine, b) for b in bodies))
    assert sum(created for created, _ in results) == 40
    assert results[0][1] == results[-1][1]
    for member_id in members:
        earned = sum(out.point_cents_earned for created, out in results if created and out.member_id == member_id)
        balance, issued = await member_state(db, member_id)
        assert balance + issued * 30000 == earned
    async with db.connection() as conn:
        assert await find_problems(conn, recompute=False) == []


async def members_in_two_partitions(make_member: Any, count: int = 2) -> tuple[list[int], list[int]]:
    """`count` members whose batches go to connection 0 of 2, and `count` to connection 1."""
    even: list[int] = []
    odd: list[int] = []
    while len(even) < count or len(odd) < count:
        member_id = await make_member()
        (even if member_id % 2 == 0 else odd).append(member_id)
    return even[:count], odd[:count]


async def test_split_import_gives_each_member_what_one_connection_gives(db, make_member, tmp_path):
    """Two connections at once, small batches and rounds: the same balances, rewards and entries."""
    (a, b), (c, d) = await members_in_two_partitions(make_member)
    (e, f), (g, h) = await members_in_two_partitions(make_member)
    bodies = {m: [basket(m, n) for n in range(9)] for m in (a, b, c, d)}
    interleaved = [bodies[m][n] for n in range(9) for m in (a, c, b, d)]
    split = await import_purchases(db, write_lines(tmp_path / "split.jsonl", interleaved), batch_size=3,
                                   connections=2)
    twins = dict(zip((a, b, c, d), (e, f, g, h), strict=True))
    alone = [{**body, "member_id": twins[body["member_id"]], "purchase_id": body["purchase_id"] + "-alone"}
             for body in interleaved]
    single = await import_purchases(db, write_lines(tmp_path / "alone.jsonl", alone), batch_size=3,
                                    connections=1)
    assert (split.imported, split.rejected, split.rewards_issued) == (36, 0, single.rewards_issued)
    assert single.imported == 36 and split.rewards_issued > 0
    for member_id, twin in twins.items():
        assert await member_state(db, member_id) == await member_state(db, twin)
        assert await entries(db, member_id) == await entries(db, twin)
    async with db.connection() as conn:
        assert await find_problems(conn, recompute=False) == []


def test_a_purchase_id_under_two_members_keeps_its_round_in_one_batch():
    def item(line_no: int, member_id: int, purchase_id: str) -> Any:
        p = msgspec.convert(basket(member_id, line_no, purchase_id=purchase_id), PurchaseIn, strict=False)
        return (line_no, b"", PostPurchase.of(p, IMPORTER))

    round_ = [item(1, 10, "x"), item(2, 11, "y"), item(3, 12, "z"), item(4, 10, "x")]
    assert [[i[0] for i in batch] for batch in split_by_member(round_, 2)] == [[1, 3, 4], [2]]
    assert split_by_member(round_ + [item(5, 13, "x")], 2) is None


async def test_a_purchase_id_repeated_under_another_member_is_imported_once(db, client, keys, make_member,
                                                                           tmp_path):
    """Within a round and across rounds, on two connections: the first line wins, as posted one by one."""
    (a, cancelled), (b, c) = await members_in_two_partitions(make_member)
    assert (await client.post(f"/v1/members/{cancelled}/cancel", headers=auth(keys["guest_services"]))).is_success
    x, y, z = unique("twice-x"), unique("twice-y"), unique("twice-z")
    first = basket(a, 1, purchase_id=x)
    lines = [  # rounds of four lines (two batches of two)
        first,                                # 1 created
        basket(b, 2, purchase_id=x),          # 2 conflict: same round, another member (one batch)
        basket(cancelled, 3, purchase_id=y),  # 3 member_not_active: refused, writes nothing
        basket(c, 4, purchase_id=y),          # 4 created: the first with y that is accepted
        basket(b, 5), basket(c, 6), basket(a, 7), basket(b, 8),
        basket(c, 9, purchase_id=x),          # 9 conflict with line 1, a round before (split round)
        basket(c, 10),
        basket(b, 11, purchase_id=z),         # 11 created
        basket(b, 12),
        first,                                # 13 replay of line 1 (split round)
        basket(a, 14, purchase_id=z),         # 14 conflict with line 11, on the other connection
        basket(a, 15), basket(c, 16),
    ]
    rejected = tmp_path / "twice.rejected.jsonl"
    summary = await import_purchases(db, write_lines(tmp_path / "twice.jsonl", lines), rejected_path=rejected,
                                     batch_size=2, connections=2)
    assert (summary.imported, summary.already_imported, summary.rejected) == (11, 1, 4)
    found = {r["line"]: r["code"] for r in map(json.loads, rejected.read_text().splitlines())}
    assert found == {2: "idempotency_conflict", 3: "member_not_active", 9: "idempotency_conflict",
                     14: "idempotency_conflict"}
    owners = await db.run("SELECT ext_id, member_id FROM purchases WHERE ext_id = ANY($1::text[])", [x, y, z])
    assert {r["ext_id"]: r["member_id"] for r in owners} == {x: a, y: c, z: b}
    assert await entries(db, cancelled) == []


async def test_the_bulk_demos_copy_writes_the_rows_the_engines_statement_writes(db, engine, database_url,
                                                                                 make_member):
    """One plan written twice, into two members: by the engine's statement and by the big demo's binary
    COPY (asyncpg's own jsonb codec); every stored column is the same, odd characters included."""
    by_statement, by_copy = await make_member(), await make_member()
    conn = await asyncpg.connect(database_url)  # its own codecs: not given back to the shared pool
    try:
        await conn.reset_type_codec("jsonb", schema="pg_catalog")
        stored = {}
        when = (datetime.now(UTC) - timedelta(days=1)).isoformat()
        for member_id, write in ((by_statement, "statement"), (by_copy, "copy")):
            body = basket(member_id, 3, purchase_id="placeholder", occurred_at=when)
            purchase = msgspec.structs.replace(msgspec.convert(body, PurchaseIn, strict=False),
                                               purchase_id=unique(f"copy-{write}-odd\\id\t\"é\""))
            command = PostPurchase.of(purchase, IMPORTER)
            async with conn.transaction():
                (outcome,) = await apply(conn, [command], engine.rulebook, Limits(),
                                         writer=copy_plan if write == "copy" else write_plan)
            assert outcome.created and outcome.error is None
            row = await conn.fetchrow(
                "SELECT ext_id, body, fingerprint, occurred_at, rules_version, qualifying_cents, card_cents, "
                "point_cents, bonus_point_cents, balance_after, rewards_redeemed FROM purchases WHERE ext_id = $1",
                purchase.purchase_id)
            assert row["ext_id"] == purchase.purchase_id and bytes(row["fingerprint"]) == command.digest
            assert json.loads(row["body"]) == json.loads(command.body)
            stored[write] = [v for k, v in row.items() if k not in ("ext_id", "body", "fingerprint")]
            stored[write].append(await entries(db, member_id))
        assert stored["copy"] == stored["statement"]
    finally:
        await conn.close()


CSV_HEADER = ["purchase_id", "member_id", "occurred_at", "store_id", "channel", "currency", "sku", "category",
              "quantity", "amount_cents", "tender_method", "tender_amount_cents", "reward_code"]


def csv_rows(body: dict[str, Any]) -> list[list[Any]]:
    """A purchase as CSV rows: one a line, its tenders beside the first lines, the rest on rows of their own."""
    head = [body["purchase_id"], body["member_id"], body["occurred_at"], body["store_id"], body["channel"],
            body.get("currency", "")]
    rows = []
    for n in range(max(len(body["lines"]), len(body["tenders"]))):
        line = body["lines"][n] if n < len(body["lines"]) else None
        tender = body["tenders"][n] if n < len(body["tenders"]) else None
        rows.append((head if n == 0 else [body["purchase_id"]] + [""] * 5)
                    + ([line["sku"], line["category"], line["quantity"], line["amount_cents"]] if line else [""] * 4)
                    + ([tender["method"], tender["amount_cents"], tender.get("reward_code", "")] if tender
                       else [""] * 3))
    return rows


def write_csv(path: Path, rows: list[list[Any]], header: list[str] = CSV_HEADER) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def split_tenders(member_id: int, n: int, **overrides: Any) -> dict[str, Any]:
    """A basket paid partly with the Westique card and partly in cash: two tenders."""
    body = basket(member_id, n, **overrides)
    total = sum(line["amount_cents"] for line in body["lines"])
    body["tenders"] = [{"method": "westique_credit_card", "amount_cents": total // 3},
                       {"method": "cash", "amount_cents": total - total // 3}]
    return body


async def test_csv_import_gives_what_the_same_purchases_as_json_lines_give(db, client, keys, make_member,
                                                                          tmp_path):
    by_csv, by_json = await make_member(), await make_member()
    bodies = [split_tenders(by_csv, n) if n % 2 else basket(by_csv, n) for n in range(10)]
    twins = [{**body, "member_id": by_json, "purchase_id": body["purchase_id"] + "-json"} for body in bodies]
    path = write_csv(tmp_path / "p.csv", [row for body in bodies for row in csv_rows(body)])
    from_csv = await import_purchases(db, path)
    from_json = await import_purchases(db, write_lines(tmp_path / "p.jsonl", twins))
    assert (from_csv.lines, from_csv.imported, from_csv.rejected) == (10, 10, 0)
    assert from_csv.rewards_issued == from_json.rewards_issued > 0
    assert await member_state(db, by_csv) == await member_state(db, by_json)
    assert await entries(db, by_csv) == await entries(db, by_json)
    # the stored request is the API's: posting the same purchase as JSON is a replay
    replay = await client.post("/v1/purchases", json=bodies[3], headers=auth(keys["checkout"]))
    assert replay.status_code == 200, replay.text
    again = await import_purchases(db, path)
    assert (again.imported, again.already_imported, again.rejected) == (0, 10, 0)


async def test_csv_rows_that_spell_no_valid_purchase_are_refused_with_their_first_row(
        db, client, keys, make_member, tmp_path):
    member_id = await make_member()
    issued = await client.post("/v1/purchases", json=purchase(member_id, 30000), headers=auth(keys["checkout"]))
    code = issued.json()["rewards_issued"][0]["code"]
    good = csv_rows(basket(member_id, 1))
    disagree = csv_rows(split_tenders(member_id, 2))
    disagree[1][1] = member_id + 1                                   # another member on its second row
    bad_quantity = csv_rows(basket(member_id, 3))
    bad_quantity[0][8] = "two"
    no_tender = [row[:10] + ["", "", ""] for row in csv_rows(basket(member_id, 4))]
    unbalanced = csv_rows(basket(member_id, 5))
    unbalanced[0][11] = 1
    redeem = csv_rows({**purchase(member_id, 5000), "tenders": [
        {"method": "reward", "amount_cents": 1000, "reward_code": code}, {"method": "cash", "amount_cents": 4000}]})
    rows = good + disagree + bad_quantity + [["short", "row"]] + no_tender + unbalanced + redeem
    rejected = tmp_path / "bad.rejected.jsonl"
    summary = await import_purchases(db, write_csv(tmp_path / "bad.csv", rows), rejected_path=rejected)
    first_rows, line = [], 2  # the header is line 1
    for group in (good, disagree, bad_quantity, [["short"]], no_tender, unbalanced, redeem):
        first_rows.append(line)
        line += len(group)
    found = {r["line"]: r for r in map(json.loads, rejected.read_text().splitlines())}
    assert {n: r["code"] for n, r in found.items()} == {
        first_rows[1]: "validation_error", first_rows[2]: "validation_error", first_rows[3]: "validation_error",
        first_rows[4]: "validation_error", first_rows[5]: "tenders_do_not_balance"}
    assert "disagree on member_id" in found[first_rows[1]]["reason"]
    assert "quantity" in found[first_rows[2]]["reason"]
    assert "columns where the header names" in found[first_rows[3]]["reason"]
    assert "tenders" in found[first_rows[4]]["reason"]
    assert found[first_rows[2]]["input"].splitlines()[0].startswith(str(bad_quantity[0][0]) + ",")
    assert (summary.lines, summary.imported, summary.rejected) == (7, 2, 5)
    reward = await client.get(f"/v1/rewards/{code}", headers=auth(keys["checkout"]))
    assert reward.json()["status"] == "redeemed"


async def test_csv_saved_by_a_spreadsheet_imports_the_same(db, make_member, tmp_path):
    """A byte-order mark, CRLF line ends, quoted cells, columns in another order, blank rows."""
    member_id = await make_member()
    bodies = [split_tenders(member_id, n) for n in range(3)]
    order = list(reversed(CSV_HEADER))
    path = tmp_path / "sheet.csv"
    with path.open("w", newline="", encoding="utf-8-sig") as f:
        writer = csv.writer(f, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
        writer.writerow(order)
        for body in bodies:
            for row in csv_rows(body):
                writer.writerow([row[CSV_HEADER.index(name)] for name in order])
            writer.writerow([""] * len(order))
    summary = await import_purchases(db, path)
    assert (summary.lines, summary.imported, summary.rejected) == (3, 3, 0)
    again = await import_purchases(db, write_lines(tmp_path / "sheet.jsonl", bodies))
    assert (again.imported, again.already_imported) == (0, 3)


async def test_a_csv_header_without_the_columns_a_purchase_needs_imports_nothing(db, database_url, make_member,
                                                                                tmp_path):
    member_id = await make_member()
    header = [name for name in CSV_HEADER if name != "tender_amount_cents"] + ["colour"]
    path = write_csv(tmp_path / "header.csv", [row[:11] + row[12:] + ["red"] for row in csv_rows(basket(member_id, 1))],
                     header=header)
    with pytest.raises(CsvHeaderError, match="unknown columns: colour; missing columns: tender_amount_cents"):
        await import_purchases(db, path)
    code, _, err = await rewards(database_url, "import", "purchases", str(path), tmp_path=tmp_path)
    assert code != 0 and "nothing was imported" in err
    assert await entries(db, member_id) == []


async def test_import_command_reads_csv_and_says_how_many_purchases(database_url, make_member, tmp_path):
    member_id = await make_member()
    rows = [row for n in range(3) for row in csv_rows(split_tenders(member_id, n))]
    path = write_csv(tmp_path / "purchases.txt", rows)
    code, out, err = await rewards(database_url, "import", "purchases", "--format", "csv", str(path),
                                   tmp_path=tmp_path)
    assert code == 0, err
    assert "purchases read: 3" in out and "imported: 3" in out and "rejected: 0" in out


async def test_import_command_prints_a_summary_and_writes_rejects(database_url, make_member, tmp_path):
    member_id = await make_member()
    path = write_lines(tmp_path / "cli.jsonl", [basket(member_id, n) for n in range(5)] + ["{oops"])
    code, out, err = await rewards(database_url, "import", "purchases", str(path), tmp_path=tmp_path)
    assert code == 3, err  # finished, with a purchase refused
    assert "imported: 5" in out and "rejected: 1" in out and "peak memory" in out
    assert json.loads((tmp_path / "cli.jsonl.rejected.jsonl").read_text())["line"] == 6
    code, out, _ = await rewards(database_url, "import", "purchases", str(path), tmp_path=tmp_path)
    assert code == 3 and "imported: 0" in out and "already imported (same purchase_id and body): 5" in out
    assert os.path.exists(path)



async def test_bulk_demo_builds_a_sound_program_and_restores_every_constraint(database_url):
    """The big demo sets foreign keys and indexes aside while loading: all must be back, and valid."""
    async with scratch_database(database_url, "rewards_bulk") as url:
        conn = await asyncpg.connect(url)
        try:
            schema = "SELECT conname, convalidated FROM pg_constraint WHERE conrelid::regclass::text = ANY ($1) " \
                     "UNION ALL SELECT indexname, true FROM pg_indexes WHERE tablename = ANY ($1) ORDER BY 1"
            tables = ["purchases", "rewards", "ledger", "consents"]
            before = [tuple(r) for r in await conn.fetch(schema, tables)]
            db = Database(url, pool_size=4)
            try:
                counts = await run_bulk_demo(db, members=300, purchases=3000, days=200, seed=5)
                assert counts["purchases"] == 3000 and counts["rewards_redeemed"] > 0 and counts["returns"] > 0
                assert [tuple(r) for r in await conn.fetch(schema, tables)] == before
                async with db.connection() as pooled:  # decodes jsonb, as verify expects
                    assert await find_problems(pooled) == []
                with pytest.raises(RuntimeError, match="empty program"):
                    await run_bulk_demo(db, members=10, purchases=10, days=10, seed=6)
            finally:
                await db.close()
        finally:
            await conn.close()
