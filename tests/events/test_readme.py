"""The README's sender works as written: run against `rewards serve`, its loop emails the guest
about a reward just issued and one about to expire (the service's own job writes that notice)."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from rewards.auth import create_key
from rewards.db import Database
from tests.conftest import enrollment, purchase
from tests.databases import scratch_database
from tests.reliability.harness import Service, bearer, running

README = Path(__file__).resolve().parents[2] / "README.md"


class Caught(Exception):
    """Ends the README's loop at its first wait."""


def readme_sender() -> str:
    section = README.read_text().split("## Events and webhooks", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found, "the README shows no sender"
    return found.group(1)


async def test_the_readme_sender_emails_about_a_new_and_an_expiring_reward(database_url: str) -> None:
    async with scratch_database(database_url, "readme") as url:
        db = Database(url, pool_size=2)
        try:
            staff = await create_key(db, ["guest_services", "checkout"])
            sender_key = await create_key(db, ["integrations", "guest_services"])
        finally:
            await db.close()
        # the expiry job every second, and its notice 85 days ahead: the reward posted six days back has one
        service = Service(url, env={"REWARDS_EXPIRY_INTERVAL": "4s", "REWARDS_EXPIRY_NOTICE": "85d"})
        with running(service):
            await service.wait_up()
            async with httpx.AsyncClient(base_url=service.base_url, timeout=30) as http:
                body = enrollment(email="ann.readme@example.com")
                member = (await http.post("/v1/members", json=body, headers=bearer(staff))).json()["member_id"]
                # a reward now, and (backdated as far as a live posting may be) one that expires in 84 days
                for days in (0, 6):
                    bought = purchase(member, 30_000, occurred_at=datetime.now(UTC) - timedelta(days=days, minutes=1))
                    assert (await http.post("/v1/purchases", json=bought, headers=bearer(staff))).status_code == 201
            await until_noticed(url)
            sent: list[tuple[str, str, str]] = []

            def send_email(to: str, event: dict[str, Any]) -> None:
                sent.append((to, event["type"], event["data"]["code"]))

            def sleep(_: float) -> None:
                raise Caught

            names = {"httpx": httpx, "BASE": service.base_url, "KEY": bearer(sender_key), "send_email": send_email,
                     "time": type("time", (), {"sleep": staticmethod(sleep)})}
            try:
                await asyncio.to_thread(exec, readme_sender(), names)
            except Caught:
                pass
    assert [(to, kind) for to, kind, _ in sent] == [("ann.readme@example.com", "reward.issued")] * 2 + [
        ("ann.readme@example.com", "reward.expiring")]
    fresh, backdated, expiring = (code for _, _, code in sent)
    assert expiring == backdated != fresh


async def until_noticed(url: str, seconds: float = 60) -> None:
    """Until the service's expiry job has written a reward.expiring event."""
    db = Database(url, pool_size=1)
    try:
        for _ in range(int(seconds * 10)):
            if await db.run("SELECT 1 FROM events WHERE type = 'reward.expiring'"):
                return
            await asyncio.sleep(0.1)
        raise AssertionError("the expiry job wrote no reward.expiring event")
    finally:
        await db.close()
