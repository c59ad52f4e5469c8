"""Secrets and personal data: tokens stored only as hashes, no personal data in the logs,
and an erased member leaves no trace in any table."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import uuid
from typing import Any

import httpx
from litestar.testing import AsyncTestClient

from rewards.auth import GUEST, create_key
from tests.conftest import auth, enrollment, purchase
from tests.reliability.harness import REPO, Service, running


async def tables(db: Any) -> list[str]:
    rows = await db.run("""SELECT table_name FROM information_schema.tables
                           WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1""")
    return [r["table_name"] for r in rows]


async def where_found(db: Any, needle: str) -> dict[str, int]:
    """Every table with a row whose text, in any column (jsonb and arrays included), holds `needle`."""
    found = {}
    for table in await tables(db):
        n = (await db.run(f'SELECT count(*) AS n FROM "{table}" t '
                          "WHERE strpos(lower(row_to_json(t)::text), lower($1)) > 0", needle))[0]["n"]
        if n:
            found[table] = n
    return found


def personal_data() -> dict[str, str]:
    tag = uuid.uuid4().hex[:10]
    digits = uuid.uuid4().int % 10**7
    return {"name": f"Quillon Vantrecht {tag}", "email": f"quillon.{tag}@example.org", "phone": f"+1555{digits:07d}",
            "birth_date": "1931-02-27", "external_id": f"EXT-{tag}"}


async def test_tokens_are_stored_only_as_their_sha256(database_url: str, db: Any, member: int) -> None:
    made = subprocess.run([sys.executable, "-c", "from rewards.cli import main; main()", "keys", "create",
                           "--scope", "checkout", "--scope", "admin", "--label", "register 7"],
                          env={**os.environ, "DATABASE_URL": database_url}, capture_output=True, text=True,
                          timeout=120, cwd=REPO)
    assert made.returncode == 0, made.stderr
    tokens = [made.stdout.strip().splitlines()[-1], await create_key(db, [GUEST], member_id=member)]
    for token in tokens:
        assert len(token) > 40
        assert await where_found(db, token) == {}, "a token is stored in the clear"
        assert await where_found(db, token[3:20]) == {}, "a piece of a token is stored"
        rows = await db.run("SELECT token_hash FROM api_keys WHERE token_hash = $1", hashlib.sha256(token.encode()).digest())
        assert len(rows) == 1
    [column] = await db.run("""SELECT data_type FROM information_schema.columns
                               WHERE table_name = 'api_keys' AND column_name = 'token_hash'""")
    assert column["data_type"] == "bytea"


async def test_personal_data_never_reaches_the_logs(database_url: str, keys: dict[str, str]) -> None:
    pii = personal_data()
    service = Service(database_url, access_log=True)
    with running(service):
        await service.wait_up()
        async with httpx.AsyncClient(base_url=service.base_url, timeout=30) as http:
            staff = auth(keys["all"])
            body = enrollment(**pii)
            enrolled = await http.post("/v1/members", json=body, headers=staff)
            assert enrolled.status_code == 201, enrolled.text
            member = enrolled.json()["member_id"]
            # refusals too: they must not echo the person into the logs either
            assert (await http.post("/v1/members", json=body, headers=staff)).status_code == 409
            young = {**body, "birth_date": "2020-01-01", "email": "x" + pii["email"]}
            assert (await http.post("/v1/members", json=young, headers=staff)).status_code == 422
            bad_email = {**body, "email": pii["email"].replace("@", " at ")}
            assert (await http.post("/v1/members", json=bad_email, headers=staff)).status_code == 422
            assert (await http.post("/v1/members", json=body, headers={})).status_code == 401
            assert (await http.get(f"/v1/members/{member}", headers=staff)).status_code == 200
            posted = await http.post("/v1/purchases", json=purchase(member, 12_345), headers=staff)
            assert posted.status_code == 201, posted.text
            for channel, address in (("email", pii["email"]), ("sms", pii["phone"])):
                subscribed = await http.post("/v1/subscriptions", headers=staff, json={
                    "channel": channel, "address": address, "source": "store", "member_id": member})
                assert subscribed.status_code in (200, 201), subscribed.text
            stop = await http.post("/v1/sms/inbound", json={"from": pii["phone"], "body": "STOP"}, headers=staff)
            assert stop.status_code == 200, stop.text
            unsubscribed = await http.post("/v1/subscriptions/unsubscribe", headers=staff,
                                           json={"channel": "email", "address": pii["email"]})
            assert unsubscribed.status_code == 200, unsubscribed.text
            assert (await http.delete(f"/v1/members/{member}/personal-data?immediate=true&reason=consumer_confirmed", headers=staff)).status_code == 200
        await asyncio.sleep(0.2)
        log = service.log()
    assert "POST /v1/members" in log and "/personal-data" in log, "the access log was not captured:\n" + log
    for what, value in pii.items():
        assert value.lower() not in log.lower(), f"the {what} appears in the logs"
    assert pii["phone"].lstrip("+") not in log and pii["email"].split("@")[0] not in log


async def test_an_erased_member_leaves_no_trace_in_any_table(
    client: AsyncTestClient, keys: dict[str, str], db: Any
) -> None:
    pii = personal_data()
    staff = auth(keys["all"])
    enrolled = await client.post("/v1/members", json=enrollment(**pii), headers=staff)
    assert enrolled.status_code == 201, enrolled.text
    member = enrolled.json()["member_id"]
    for channel, address in (("email", pii["email"]), ("sms", pii["phone"])):
        subscribed = await client.post("/v1/subscriptions", headers=staff, json={
            "channel": channel, "address": address, "source": "online", "member_id": member})
        assert subscribed.status_code in (200, 201), subscribed.text
    # and a subscription under the same email made without the member id (a register sign-up)
    loose = await client.post("/v1/subscriptions", headers=staff,
                              json={"channel": "email", "address": pii["email"].upper(), "source": "store"})
    assert loose.status_code in (200, 201, 409), loose.text
    assert (await client.post("/v1/sms/inbound", json={"from": pii["phone"], "body": "stop "},
                              headers=staff)).status_code == 200
    assert (await client.post("/v1/purchases", json=purchase(member, 45_000), headers=staff)).status_code == 201
    # sign-in links sent to the email and the phone: their events name the address
    for channel in ("email", "sms"):
        link = await client.post(f"/v1/members/{member}/sign-in-links", json={"channel": channel}, headers=staff)
        assert link.status_code == 201, link.text
    for value in pii.values():
        assert await where_found(db, value), f"{value} was never stored: the scan proves nothing"

    erased = await client.delete(f"/v1/members/{member}/personal-data?immediate=true&reason=consumer_confirmed", headers=staff)
    assert erased.status_code == 200, erased.text
    for what, value in pii.items():
        assert await where_found(db, value) == {}, f"the erased member's {what} is still in {await where_found(db, value)}"
    assert await where_found(db, pii["phone"].lstrip("+")) == {}
    # the anonymous ledger stays, so past reports still reproduce
    assert (await db.run("SELECT count(*) AS n FROM ledger WHERE member_id = $1", member))[0]["n"] >= 3
    profile = (await client.get(f"/v1/members/{member}", headers=staff)).json()
    assert [profile[k] for k in ("name", "email", "phone", "birth_date", "external_id")] == [None] * 5
