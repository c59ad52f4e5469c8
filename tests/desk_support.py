"""What the desk's tests share: enrolling over HTTP, a member who owes points, events, the ledger."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from litestar.testing import AsyncTestClient

from tests.conftest import auth, enrollment, purchase, unique


def fresh_phone() -> str:
    """A fictional number no other test uses: (555) and seven random digits."""
    return f"555{uuid.uuid4().int % 10**7:07d}"


async def enroll(client: AsyncTestClient, keys: dict[str, str], *, headers: dict[str, str] | None = None,
                 **overrides: Any) -> Any:
    return await client.post("/v1/members", json=enrollment(**overrides),
                             headers={**auth(keys["guest_services"]), **(headers or {})})


async def enrolled(client: AsyncTestClient, keys: dict[str, str], **overrides: Any) -> dict[str, Any]:
    answer = await enroll(client, keys, **overrides)
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def buy(client: AsyncTestClient, keys: dict[str, str], member_id: int, amount_cents: int,
              **overrides: Any) -> dict[str, Any]:
    answer = await client.post("/v1/purchases", json=purchase(member_id, amount_cents, **overrides),
                               headers=auth(keys["checkout"]))
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def give_back(client: AsyncTestClient, keys: dict[str, str], purchase_id: str, sku: str = "SKU-1",
                    quantity: int = 1, amount_cents: int = 0) -> Any:
    return await client.post(f"/v1/purchases/{purchase_id}/returns", headers=auth(keys["checkout"]), json={
        "return_id": unique("r"), "occurred_at": datetime.now(UTC).isoformat(),
        "lines": [{"sku": sku, "quantity": quantity, "amount_cents": amount_cents}]})


async def owing(client: AsyncTestClient, keys: dict[str, str], member_id: int) -> int:
    """Make the member owe 300 points: a $300 purchase issues a reward, the reward is spent, the
    purchase comes back. Returns the balance in point-cents (-30,000)."""
    first = await buy(client, keys, member_id, 30_000)
    code = first["rewards_issued"][0]["code"]
    await buy(client, keys, member_id, 1000, tenders=[{"method": "reward", "amount_cents": 1000, "reward_code": code}])
    back = await give_back(client, keys, first["purchase_id"])
    assert back.status_code == 201, back.text
    balance: int = back.json()["balance"]["point_cents"]
    assert balance == -30_000
    return balance


async def events_of(db: Any, member_id: int, type_: str) -> list[dict[str, Any]]:
    rows = await db.run("SELECT data FROM events WHERE member_id = $1 AND type = $2 ORDER BY id", member_id, type_)
    return [r["data"] for r in rows]


async def entries_of(db: Any, member_id: int) -> list[dict[str, Any]]:
    rows = await db.run("""SELECT kind, point_cents, counterpart_member_id, actor_key_id, actor_system, reward_id
                           FROM ledger WHERE member_id = $1 ORDER BY id""", member_id)
    return [dict(r) for r in rows]


async def key_id_of(db: Any, token: str) -> int:
    rows = await db.run("SELECT id FROM api_keys WHERE token_hash = sha256($1::bytea)", token.encode())
    key_id: int = rows[0]["id"]
    return key_id
