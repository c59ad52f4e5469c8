"""Hand-built programs for the report tests, in a database of their own.

The reports count everyone in a period, so a report test cannot share its database with
tests that enroll members and post purchases at the same time. These fixtures make one
private database per pytest session (same server, schema from sql/ as in production),
with its own app and client, and empty it before each report test: every figure a test
asserts comes from the members, purchases and subscriptions that test made by hand.
Business times are set in the past (2025) through the real code paths: purchases, returns,
cancellations and erasures through the posting engine, each posted as if at its business
time (the engine's clock set to it); only enrollment and subscription times are back-dated
in SQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from rewards.auth import create_key
from rewards.db import Database
from rewards.privacy.erasure import erase_now
from rewards.schemas import PurchaseIn, ReturnIn
from rewards.engine import Cancel, Engine, Limits, PostPurchase, PostReturn, unwrap
from rewards.rulebook import Rulebook
from tests.conftest import TESTS, auth, client_on, enrollment, purchase, unique
from tests.databases import scratch_database

# emptied before each report test; CASCADE takes any table that refers to these
TABLES = ("ledger", "rewards", "purchase_returns", "purchases", "consents", "offer_deliveries", "offers",
          "subscription_events", "subscriptions", "api_keys", "members", "opt_out_hashes", "privacy_requests",
          "member_erasures")


@pytest.fixture(scope="session")
async def report_database_url(database_url: str) -> AsyncIterator[str]:
    async with scratch_database(database_url, "rewards_reports") as url:
        yield url


@pytest.fixture(scope="session")
async def report_client(report_database_url: str) -> AsyncIterator[AsyncTestClient]:
    async with client_on(report_database_url) as client:
        yield client


def at(text: str) -> datetime:
    """An aware time from '2025-02-01' or '2025-02-01T10:00:00+00:00' (UTC when no zone)."""
    return datetime.fromisoformat(text if "T" in text else text + "T12:00:00+00:00")


@pytest.fixture(scope="session")
async def report_db(report_database_url: str) -> AsyncIterator[Database]:
    """The private database from the tests' own event loop (the app's pool lives in the client's)."""
    database = Database(report_database_url, pool_size=4)
    yield database
    await database.close()


@dataclass
class Program:
    """A program written by hand into the private database, through the service's own paths."""

    client: AsyncTestClient
    db: Database
    keys: dict[str, str]
    url: str

    async def member(self, enrolled: str) -> int:
        response = await self.client.post("/v1/members", json=enrollment(), headers=auth(self.keys["guest_services"]))
        assert response.status_code == 201, response.text
        member_id = response.json()["member_id"]
        await self.db.run("UPDATE members SET enrolled_at = $2 WHERE id = $1", member_id, at(enrolled))
        await self.db.run("UPDATE consents SET accepted_at = $2 WHERE member_id = $1", member_id, at(enrolled))
        return member_id

    async def buy(self, member_id: int, amount_cents: int, when: str, *, method: str = "cash",
                  rewards: tuple[str, ...] = (), offers: tuple[tuple[str, int], ...] = (),
                  category: str = "apparel", units: int = 1) -> dict[str, Any]:
        """A purchase of `units` of one sku for `amount_cents`: each reward in `rewards` pays $10 of it,
        `method` the rest."""
        tenders = [{"method": "reward", "amount_cents": 1000, "reward_code": code} for code in rewards]
        rest = amount_cents - 1000 * len(rewards)
        if rest:
            tenders.append({"method": method, "amount_cents": rest})
        body = purchase(member_id, amount_cents, category=category, occurred_at=at(when), tenders=tenders,
                        offers=[{"code": c, "discount_cents": d} for c, d in offers],
                        lines=[{"sku": "SKU-1", "category": category, "quantity": units, "amount_cents": amount_cents}])
        return await self._post(PostPurchase.of(msgspec.convert(body, PurchaseIn), TESTS, as_of=at(when)))

    async def give_back(self, purchase_id: str, amount_cents: int, when: str, *, units: int = 1) -> dict[str, Any]:
        """A return of `units` of the purchase (their points, whatever `amount_cents` refunds)."""
        body = {"return_id": unique("r"), "occurred_at": at(when).isoformat(),
                "lines": [{"sku": "SKU-1", "quantity": units, "amount_cents": amount_cents}]}
        return await self._post(PostReturn.of(purchase_id, msgspec.convert(body, ReturnIn), TESTS, as_of=at(when)))

    async def _post(self, command: Any) -> dict[str, Any]:
        """Post as if at the command's business time (`as_of`), so a reward of that day is unexpired."""
        created, out = unwrap((await self.engine.run([command]))[0])
        assert created
        return msgspec.to_builtins(out)

    @property
    def engine(self) -> Engine:
        return Engine(self.db, Rulebook(self.db), Limits())

    async def cancel(self, member_id: int, when: str) -> None:
        unwrap((await self.engine.run([Cancel(member_id, TESTS, at(when))]))[0])

    async def erase(self, member_id: int, when: str) -> None:
        await erase_now(self.engine, member_id, TESTS, "consumer_confirmed", as_of=at(when))

    async def subscription(self, channel: str, address: str, member_id: int | None,
                           events: tuple[tuple[str, str], ...]) -> int:
        """A subscription with its consent record: events as (kind, when), the first an opt-in."""
        last_kind, last_when = events[-1]
        first_when = events[0][1]
        opted_in = [w for k, w in events if k != "unsubscribed"][-1]
        subscription_id = await self.db.run(
            """INSERT INTO subscriptions (channel, address, member_id, status, source, subscribed_at, unsubscribed_at)
               VALUES ($1, $2, $3, $4, 'store', $5, $6) RETURNING id""",
            channel, address, member_id, "unsubscribed" if last_kind == "unsubscribed" else "active",
            at(opted_in), at(last_when) if last_kind == "unsubscribed" else None,
        )
        sid = subscription_id[0]["id"]
        for kind, when in events:
            await self.db.run(
                "INSERT INTO subscription_events (subscription_id, kind, source, occurred_at) VALUES ($1, $2, $3, $4)",
                sid, kind, "store" if kind != "unsubscribed" else "link", at(when),
            )
        assert first_when <= last_when
        return sid

    async def offer(self, code: str, value_cents: int, channel: str, created: str) -> int:
        rows = await self.db.run(
            "INSERT INTO offers (code, value_cents, channel, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
            code, value_cents, channel, at(created),
        )
        return rows[0]["id"]

    async def deliver(self, offer_id: int, subscription_id: int, sent: str) -> None:
        await self.db.run("INSERT INTO offer_deliveries (offer_id, subscription_id, sent_at) VALUES ($1, $2, $3)",
                          offer_id, subscription_id, at(sent))

    async def report(self, program: str = "rewards", start: str = "2025-01-01", end: str = "2025-12-31",
                     token: str | None = None, **params: Any) -> Any:
        query = {"program": program, "from": start, "to": end, **{k: str(v) for k, v in params.items()}}
        return await self.client.get("/v1/reports/incentive-value", params=query,
                                     headers=auth(token or self.keys["compliance"]))

    async def figures(self, program: str = "rewards", start: str = "2025-01-01", end: str = "2025-12-31",
                      **params: Any) -> dict[str, Any]:
        response = await self.report(program, start, end, **params)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
async def program(report_client: AsyncTestClient, report_db: Database, report_database_url: str) -> Program:
    db = report_db
    await db.run(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")
    # the disclosures are append-only: a test that stored others leaves the install's defaults stored again
    await db.run("""INSERT INTO program_disclosures (version, body)
                    SELECT max(version) + 1, (SELECT body FROM program_disclosures WHERE version = 1)
                    FROM program_disclosures
                    HAVING (SELECT body FROM program_disclosures ORDER BY version DESC LIMIT 1)
                           <> (SELECT body FROM program_disclosures WHERE version = 1)""")
    keys = {scope: await create_key(db, [scope]) for scope in ("checkout", "guest_services", "compliance", "admin")}
    return Program(client=report_client, db=db, keys=keys, url=report_database_url)


People = dict[str, int]  # members by their role in a hand-built program


@pytest.fixture
async def four_members(program: Program) -> People:
    """The issue's example built in the test's empty database: its members by role."""
    return await build_four_members(program)


async def build_four_members(p: Program) -> People:
    """The issue's example, in 2025: one pays $600 by card and redeems two rewards, one pays $300
    cash and redeems one, one pays $150, one buys nothing. 5 rewards issued, 3 redeemed. All four
    enrolled before 2025 and stay: each counts one member-year in 2025."""
    a, b, c, d = [await p.member("2024-12-01") for _ in range(4)]
    first = await p.buy(a, 60000, "2025-02-01", method="westique_credit_card")
    codes_a = [r["code"] for r in first["rewards_issued"]]
    assert len(codes_a) == 4
    await p.buy(a, 2000, "2025-02-10", rewards=tuple(codes_a[:2]))
    second = await p.buy(b, 30000, "2025-03-01")
    (code_b,) = [r["code"] for r in second["rewards_issued"]]
    await p.buy(b, 1000, "2025-03-05", rewards=(code_b,))
    await p.buy(c, 15000, "2025-04-01")
    return {"card": a, "cash": b, "small": c, "none": d}

