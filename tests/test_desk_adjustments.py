"""Adjustments at the desk (POST /v1/members/{id}/adjustments) and in bulk (rewards import adjustments)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from rewards.auth import GUEST, create_key
from rewards.importer import import_adjustments
from rewards.verify import find_problems
from tests.conftest import auth, unique
from tests.desk_support import enrolled, events_of, key_id_of

REPO = Path(__file__).resolve().parent.parent


def adjustment(point_cents: int, reason: str = "goodwill", **overrides: Any) -> dict[str, Any]:
    return {"adjustment_id": unique("adj"), "point_cents": point_cents, "reason": reason,
            "note": "late delivery", **overrides}


async def adjust(client: AsyncTestClient, token: str, member_id: int, body: dict[str, Any]) -> Any:
    return await client.post(f"/v1/members/{member_id}/adjustments", json=body, headers=auth(token))


async def test_a_positive_adjustment_issues_the_rewards_the_balance_allows(
        client: AsyncTestClient, keys: dict[str, str], db: Any) -> None:
    member = (await enrolled(client, keys))["member_id"]
    answer = await adjust(client, keys["guest_services"], member, adjustment(65_000))
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert (body["point_cents"], body["balance"]) == (65_000, {"points": 50, "point_cents": 5_000})
    assert len(body["rewards_issued"]) == 2 and all(r["value_cents"] == 1000 for r in body["rewards_issued"])
    balance = (await client.get(f"/v1/members/{member}/balance", headers=auth(keys["checkout"]))).json()
    assert sorted(r["code"] for r in balance["rewards"]) == sorted(r["code"] for r in body["rewards_issued"])
    [event] = await events_of(db, member, "points.adjusted")
    assert (event["point_cents"], event["reason"], event["balance_point_cents"]) == (65_000, "goodwill", 5_000)


async def test_a_negative_adjustment_may_leave_the_balance_below_zero(client: AsyncTestClient,
                                                                      keys: dict[str, str]) -> None:
    member = (await enrolled(client, keys))["member_id"]
    answer = await adjust(client, keys["guest_services"], member, adjustment(-12_345, "correction"))
    assert answer.status_code == 201, answer.text
    assert answer.json()["balance"] == {"points": -124, "point_cents": -12_345}
    assert answer.json()["rewards_issued"] == []


async def test_the_ledger_entry_has_the_reason_the_note_and_who_made_it_staff_see_them_a_guest_does_not(
        client: AsyncTestClient, keys: dict[str, str], db: Any) -> None:
    member = (await enrolled(client, keys))["member_id"]
    body = adjustment(2_500, "correction", note="points missed on a receipt")
    assert (await adjust(client, keys["guest_services"], member, body)).status_code == 201
    staff = (await client.get(f"/v1/members/{member}/activity", headers=auth(keys["guest_services"]))).json()
    [entry] = staff["entries"]
    desk = await key_id_of(db, keys["guest_services"])
    assert (entry["kind"], entry["point_cents"], entry["adjustment_id"], entry["reason"], entry["note"]) == (
        "adjustment", 2_500, body["adjustment_id"], "correction", "points missed on a receipt")
    assert entry["actor"] == {"key_id": desk}
    guest = await create_key(db, [GUEST], member_id=member)
    theirs = (await client.get(f"/v1/members/{member}/activity", headers=auth(guest))).json()["entries"]
    assert (theirs[0]["reason"], theirs[0]["note"], theirs[0]["actor"]) == ("correction", None, None)


async def test_a_replay_answers_the_first_answer_and_another_body_is_a_conflict(
        client: AsyncTestClient, keys: dict[str, str], db: Any) -> None:
    member = (await enrolled(client, keys))["member_id"]
    body = adjustment(31_000)
    first = await adjust(client, keys["guest_services"], member, body)
    again = await adjust(client, keys["guest_services"], member, body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.content == first.content
    for other in ({**body, "point_cents": 31_001}, {**body, "note": "another note"}):
        clash = await adjust(client, keys["guest_services"], member, other)
        assert clash.status_code == 409 and clash.json()["code"] == "idempotency_conflict", clash.text
    someone_else = (await enrolled(client, keys))["member_id"]
    clash = await adjust(client, keys["guest_services"], someone_else, body)
    assert clash.status_code == 409 and clash.json()["code"] == "idempotency_conflict"
    rows = await db.run("SELECT count(*) AS n FROM ledger WHERE member_id = $1 AND kind = 'adjustment'", member)
    assert rows[0]["n"] == 1


async def test_limits_by_scope(client: AsyncTestClient, keys: dict[str, str], db: Any) -> None:
    member = (await enrolled(client, keys))["member_id"]
    for too_much in (300_001, -300_001):
        refused = await adjust(client, keys["guest_services"], member, adjustment(too_much))
        assert refused.status_code == 403 and refused.json()["code"] == "forbidden", refused.text
    assert (await adjust(client, keys["guest_services"], member, adjustment(300_000))).status_code == 201
    assert (await adjust(client, keys["admin"], member, adjustment(-2_000_000))).status_code == 201
    refused = await adjust(client, keys["admin"], member, adjustment(100_000_001))
    assert refused.status_code == 403
    zero = await adjust(client, keys["admin"], member, adjustment(0))
    assert zero.status_code == 422 and zero.json()["field"] == "point_cents"
    for bad in ({"reason": "because"}, {"note": "x" * 501}, {"point_cents": "100"}):
        answer = await adjust(client, keys["admin"], member, {**adjustment(100), **bad})
        assert answer.status_code == 422, bad
    assert not await db.run("SELECT 1 FROM ledger WHERE member_id = $1 AND point_cents IN (0, 100, 300001, "
                            "100000001)", member)


async def test_a_cancelled_member_is_not_active_and_a_merged_one_names_its_target(
        client: AsyncTestClient, keys: dict[str, str]) -> None:
    cancelled = (await enrolled(client, keys))["member_id"]
    await client.post(f"/v1/members/{cancelled}/cancel", headers=auth(keys["guest_services"]))
    refused = await adjust(client, keys["guest_services"], cancelled, adjustment(100))
    assert refused.status_code == 409 and refused.json()["code"] == "member_not_active"
    duplicate, target = (await enrolled(client, keys))["member_id"], (await enrolled(client, keys))["member_id"]
    await client.post(f"/v1/members/{target}/merge", json={"from_member_id": duplicate},
                      headers=auth(keys["guest_services"]))
    refused = await adjust(client, keys["guest_services"], duplicate, adjustment(100))
    assert refused.status_code == 409
    assert (refused.json()["code"], refused.json()["merged_into"]) == ("member_merged", target)
    unknown = await adjust(client, keys["guest_services"], 2**40, adjustment(100))
    assert unknown.status_code == 404


# --- rewards import adjustments --------------------------------------------------------------------


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


async def test_import_adjusts_by_member_id_or_external_id_refuses_in_line_order_and_reruns_change_nothing(
        client: AsyncTestClient, keys: dict[str, str], db: Any, tmp_path: Path) -> None:
    external = unique("OLD")
    by_external = (await enrolled(client, keys, external_id=external))["member_id"]
    by_id = (await enrolled(client, keys))["member_id"]
    cancelled = (await enrolled(client, keys))["member_id"]
    await client.post(f"/v1/members/{cancelled}/cancel", headers=auth(keys["guest_services"]))
    opening = [
        {"adjustment_id": unique("open"), "external_id": external, "point_cents": 45_000, "reason": "migration",
         "note": "balance in the old program"},
        {"adjustment_id": unique("open"), "member_id": by_id, "point_cents": 1_234, "reason": "migration"},
        {"adjustment_id": unique("open"), "external_id": unique("NOBODY"), "point_cents": 100, "reason": "migration"},
        {"adjustment_id": unique("open"), "member_id": cancelled, "point_cents": 100, "reason": "migration"},
        {"adjustment_id": unique("open"), "member_id": by_id, "external_id": external, "point_cents": 1,
         "reason": "migration"},
        {"adjustment_id": unique("open"), "member_id": by_id, "point_cents": 0, "reason": "migration"},
    ]
    path = write(tmp_path / "opening.jsonl", [json.dumps(x) for x in opening] + ["{not json"])
    rejected = tmp_path / "opening.rejected.jsonl"
    summary = await import_adjustments(db, path, rejected_path=rejected, batch_size=2)
    assert (summary.lines, summary.imported, summary.rejected) == (7, 2, 5)
    assert summary.point_cents_adjusted == 46_234 and summary.rewards_issued == 1
    refused = [json.loads(line) for line in rejected.read_text().splitlines()]
    assert [(r["line"], r["code"]) for r in refused] == [
        (3, "not_found"), (4, "member_not_active"), (5, "validation_error"), (6, "validation_error"),
        (7, "malformed_request")]
    assert refused[0]["adjustment_id"] == opening[2]["adjustment_id"]
    balance = (await client.get(f"/v1/members/{by_external}/balance", headers=auth(keys["checkout"]))).json()
    assert balance["point_cents"] == 15_000 and len(balance["rewards"]) == 1

    again = await import_adjustments(db, write(tmp_path / "again.jsonl", [json.dumps(x) for x in opening[:2]]))
    assert (again.imported, again.already_imported, again.rejected) == (0, 2, 0)
    changed = await import_adjustments(db, write(tmp_path / "changed.jsonl", [json.dumps(
        {**opening[1], "point_cents": 999})]), rejected_path=tmp_path / "changed.rejected.jsonl")
    assert changed.rejected == 1 and changed.reasons == {"idempotency_conflict": 1}
    entries = await db.run("SELECT actor_system FROM ledger WHERE member_id = $1 AND kind = 'adjustment'", by_id)
    assert [e["actor_system"] for e in entries] == ["import"]


async def test_import_adjustments_from_csv_on_the_command_line_with_its_exit_statuses(
        client: AsyncTestClient, keys: dict[str, str], db: Any, database_url: str, tmp_path: Path) -> None:
    external = unique("OLD")
    member = (await enrolled(client, keys, external_id=external))["member_id"]
    first, second = unique("csv"), unique("csv")
    good = write(tmp_path / "good.csv", ["adjustment_id,external_id,point_cents,reason,note",
                                         f'{first},{external},700,migration,"opening balance, store 12"',
                                         f"{second},{external},-200,correction,"])
    env = {**os.environ, "DATABASE_URL": database_url}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", "from rewards.cli import main; main()", "import", "adjustments",
                               *args], env=env, capture_output=True, text=True, timeout=120, cwd=REPO)

    done = run(str(good))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "imported: 2" in done.stdout and "points adjusted: 5.00" in done.stdout
    assert run(str(good)).returncode == 0  # a re-run: already imported
    bad = write(tmp_path / "bad.csv", ["adjustment_id,member_id,point_cents,reason", f"{unique('csv')},{member},5,oops"])
    refused = run(str(bad))
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert "rejected: 1" in refused.stdout
    wrong = write(tmp_path / "wrong.csv", ["adjustment_id,points,reason"])
    assert run(str(wrong)).returncode == 1
    notes = await db.run("SELECT a.note FROM adjustments a WHERE a.ext_id = $1", first)
    assert notes[0]["note"] == "opening balance, store 12"
    balance = (await client.get(f"/v1/members/{member}/balance", headers=auth(keys["checkout"]))).json()
    assert balance["point_cents"] == 500


async def test_verify_is_clean_after_adjustments(db: Any) -> None:
    async with db.connection() as conn:
        assert await find_problems(conn) == []


@pytest.mark.parametrize("amount", [1, -1])
async def test_an_adjustment_never_issues_a_reward_below_the_threshold(client: AsyncTestClient,
                                                                       keys: dict[str, str], amount: int) -> None:
    member = (await enrolled(client, keys))["member_id"]
    answer = await adjust(client, keys["guest_services"], member, adjustment(29_999 + amount))
    assert len(answer.json()["rewards_issued"]) == (1 if amount == 1 else 0)
