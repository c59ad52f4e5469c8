"""Proof that an integrator can build on the OpenAPI document: openapi-python-client (a
well-known generator, in the test extra) generates a Python client from the document the
service serves, and an enrollment, a purchase and a balance run through that client against
`rewards serve` on a local port, its errors arriving as the documented Problem."""

from __future__ import annotations

import asyncio
import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from rewards.auth import create_key
from tests.reliability.harness import Service, running

PACKAGE = "westique_generated_client"


@pytest.fixture(scope="module")
def served(database_url: str) -> Iterator[Service]:
    service = Service(database_url)
    with running(service):
        asyncio.run(service.wait_up())
        yield service


@pytest.fixture(scope="module")
def generated(served: Service, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The client package, generated from the served /schema/openapi.json and imported."""
    folder = tmp_path_factory.mktemp("client")
    document = folder / "openapi.json"
    document.write_bytes(httpx.get(f"{served.base_url}/schema/openapi.json", timeout=30).content)
    bin_dir = str(Path(sys.executable).parent)  # the generator formats its output with ruff, from the same venv
    made = subprocess.run(
        [str(Path(bin_dir) / "openapi-python-client"), "generate", "--path", str(document), "--meta", "none",
         "--output-path", str(folder / PACKAGE)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
    )
    assert made.returncode == 0, made.stdout + made.stderr
    assert "Warning" not in made.stdout + made.stderr, made.stdout + made.stderr  # nothing of the document skipped
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(folder))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


async def test_a_generated_client_enrolls_posts_a_purchase_and_reads_the_balance(
    generated: Any, served: Service, db: Any
) -> None:
    enroll_member = importlib.import_module(f"{PACKAGE}.api.members.enroll_member")
    get_balance = importlib.import_module(f"{PACKAGE}.api.members.get_balance")
    post_purchase = importlib.import_module(f"{PACKAGE}.api.purchases.post_purchase")
    models = importlib.import_module(f"{PACKAGE}.models")

    token = await create_key(db, ["checkout", "guest_services"], label="generated client")
    client = generated.AuthenticatedClient(base_url=served.base_url, token=token)
    enrollment = models.EnrollmentIn(
        name="Robin Vale", email=f"robin.{os.getpid()}.{datetime.now().timestamp()}@example.com",
        phone=f"+1555{int(datetime.now().timestamp() * 1000) % 10**7:07d}", birth_date=date(1985, 5, 6),
        state=models.EnrollmentInState.CA, terms_version="2023-10-30", notice_version="2023-10-30",
        channel=models.EnrollmentInChannel.STORE)

    enrolled = await asyncio.to_thread(enroll_member.sync_detailed, client=client, body=enrollment)
    assert enrolled.status_code == 201, enrolled.content
    member_id = enrolled.parsed.member_id

    purchase = models.PurchaseIn(
        purchase_id=f"generated-{member_id}", member_id=member_id,
        occurred_at=datetime.now(UTC) - timedelta(minutes=1), store_id="S012",
        channel=models.PurchaseInChannel.STORE,
        lines=[models.LineIn(sku="JKT-221", category="apparel", quantity=1, amount_cents=31234)],
        tenders=[models.TenderIn(method=models.TenderInMethod.WESTIQUE_CREDIT_CARD, amount_cents=31234)])
    posted = await asyncio.to_thread(post_purchase.sync_detailed, client=client, body=purchase)
    assert posted.status_code == 201, posted.content
    assert isinstance(posted.parsed, models.PurchaseOut)
    assert (posted.parsed.point_cents_earned, len(posted.parsed.rewards_issued)) == (62468, 2)
    replayed = await asyncio.to_thread(post_purchase.sync_detailed, client=client, body=purchase)
    assert replayed.status_code == 200 and replayed.parsed.to_dict() == posted.parsed.to_dict()

    balance = await asyncio.to_thread(get_balance.sync, member_id=member_id, client=client)
    assert isinstance(balance, models.BalanceOut), balance
    assert (balance.points, balance.point_cents, len(balance.rewards)) == (24, 2468, 2)

    # errors arrive as the documented Problem, with their code and field
    again = await asyncio.to_thread(enroll_member.sync, client=client, body=enrollment)
    assert isinstance(again, models.Problem) and (again.status, again.code) == (409, "duplicate_member"), again
    missing = await asyncio.to_thread(get_balance.sync, member_id=member_id + 10_000, client=client)
    assert isinstance(missing, models.Problem) and missing.code == "not_found", missing
    stranger = generated.AuthenticatedClient(base_url=served.base_url, token="wr_unknown", prefix="bearer")
    refused = await asyncio.to_thread(get_balance.sync, member_id=member_id, client=stranger)
    assert isinstance(refused, models.Problem) and refused.code == "unauthorized", refused
