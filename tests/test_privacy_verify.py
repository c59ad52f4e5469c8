"""`rewards verify` checks what erasure must leave behind; each tampering is rolled back."""

from __future__ import annotations

from typing import Any

import pytest

from rewards.verify import find_problems
from tests.conftest import auth
from tests.test_mailing import email, subscribe


class Broken(Exception):
    """Raised to roll back a deliberately broken state."""


@pytest.fixture
async def erased(client: Any, keys: dict[str, str], make_member: Any) -> dict[str, Any]:
    """An erased member with a request of theirs, and an erased subscriber's address."""
    member = await make_member()
    staff = auth(keys["guest_services"])
    filed = await client.post("/v1/privacy-requests", headers=staff, json={
        "type": "access", "member_id": member, "channel": "store",
        "verification": {"method": "in_person_id", "verified_at": "2026-01-05T17:00:00Z"}})
    assert filed.status_code == 201, filed.text
    done = await client.delete(f"/v1/members/{member}/personal-data?immediate=true&reason=consumer_confirmed",
                               headers=staff)
    assert done.status_code == 200, done.text
    address = email()
    await subscribe(client, keys, "email", address)
    gone = await client.request("DELETE", "/v1/subscriptions/personal-data", headers=staff,
                                json={"channel": "email", "address": address})
    assert gone.json()["subscriptions_erased"] == 1
    return {"member": member, "request_id": filed.json()["request_id"], "address": address}


@pytest.mark.parametrize(("tampering", "what"), [
    ("UPDATE privacy_requests SET details = 'Ann Lee asked' WHERE id = {request_id}",
     "an erased member's privacy requests keep no personal data"),
    ("UPDATE member_erasures SET erased_at = NULL WHERE member_id = {member}",
     "a member's erasure record agrees with the member"),
    # past the trigger (disabled in this transaction only): an erased address made active again
    ("""ALTER TABLE subscriptions DISABLE TRIGGER subscriptions_opt_outs_hold;
        INSERT INTO subscriptions (channel, address, status, source) VALUES ('email', '{address}', 'active', 'store')""",
     "an erased address kept opted out is active nowhere"),
])
async def test_verify_names_what_an_erasure_must_not_leave(db, erased, tampering, what):
    async with db.connection() as conn:
        assert [p for p in await find_problems(conn, recompute=False) if p.startswith(what)] == []
        with pytest.raises(Broken):
            async with conn.transaction():
                await conn.execute(tampering.format(**erased))
                found = [p for p in await find_problems(conn, recompute=False) if p.startswith(what)]
                assert len(found) == 1, found
                raise Broken
