"""Webhooks: events delivered per second, and posting with a webhook registered.

    .venv/bin/python bench/webhooks.py [--events 20000] [--workers 2] [--seconds 20] [--connections 32]

1. Delivery: writes `--events` events into its own database in one transaction, registers one
   webhook to a local receiver (aiohttp, answering 204 without checking signatures, so it costs
   the service's side little), runs `rewards jobs run --once` and prints the events delivered per
   second from the receiver's first delivery to its last.
2. Posting with a webhook: the posting benchmark (bench/post.py's load: wrk and post.lua against
   `rewards serve --workers N`, the pgbench baseline before and after), with the webhook
   registered, so the service's jobs deliver every posting's events while it posts. Prints
   purchases/s, its ratio to the baseline, p99, how many of the events written during the load the
   receiver had when it stopped, and the retries pending or failed then.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta

import asyncpg

from common import (
    BENCH, VENV_BIN, Scratch, WrkResult, free_port, make_key, pgbench_baseline, rewards_serve, say, seed_members,
    service, table, wrk,
)

RECEIVER_ARG = "--receiver-port"


def receive(port: int) -> None:
    """The receiver: 204 to every POST; GET /stats answers the count and the first and last arrival."""
    from aiohttp import web

    seen = {"count": 0, "first": None, "last": None}

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        now = time.time()
        seen["count"] += 1
        seen["first"] = seen["first"] or now
        seen["last"] = now
        return web.Response(status=204)

    async def stats(_: web.Request) -> web.Response:
        return web.json_response(seen)

    app = web.Application()
    app.add_routes([web.post("/hooks", hook), web.get("/stats", stats)])
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def stats(base: str) -> dict[str, float]:
    with urllib.request.urlopen(base + "/stats", timeout=5) as answer:
        return json.loads(answer.read())


async def write_events(url: str, count: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            """INSERT INTO events (type, member_id, occurred_at, data)
               SELECT 'purchase.posted', 1 + g % 1000, now(), jsonb_build_object(
                   'purchase_id', 'bench-' || g, 'store_id', 'S001', 'channel', 'store', 'qualifying_cents', 1234,
                   'point_cents_earned', 1234, 'bonus_point_cents', 0, 'rewards_issued', '[]'::jsonb,
                   'rewards_redeemed', '[]'::jsonb, 'balance_point_cents', 1234)
               FROM generate_series(1, $1) g""", count)
    finally:
        await conn.close()


async def register(base: str, token: str, receiver: str) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        made = await http.post("/v1/webhooks", json={"url": receiver + "/hooks", "description": "bench"},
                               headers={"Authorization": f"Bearer {token}"})
        made.raise_for_status()


async def backlog_of(url: str, received: int) -> str:
    """Events written against events received, and the retries recorded (only failed attempts are)."""
    conn = await asyncpg.connect(url)
    try:
        written = await conn.fetchval("SELECT count(*) FROM events")
        retries = {r["status"]: r["n"] for r in await conn.fetch(
            "SELECT status, count(*) AS n FROM webhook_deliveries GROUP BY status")}
    finally:
        await conn.close()
    return f"{received} of {written} events received when the load stopped; retries: {retries or 'none'}"


def delivery_rate(args: argparse.Namespace, env: dict[str, str], receiver_cmd: list[str]) -> tuple[float, int]:
    scratch = Scratch("bench_webhooks")
    asyncio.run(scratch.create())
    try:
        rport = free_port()
        with service([*receiver_cmd, str(rport)], rport, ready="/stats") as receiver:
            port = free_port()
            with rewards_serve(scratch.url, port, 1, 4) as base:  # for the API's webhook registration
                token = asyncio.run(make_key(scratch.url, ["admin"]))
                asyncio.run(register(base, token, receiver))
            asyncio.run(write_events(scratch.url, args.events))
            say(f"rewards jobs run --once: {args.events} events to one webhook")
            subprocess.run([str(VENV_BIN / "rewards"), "jobs", "run", "--once"], check=True, capture_output=True,
                           env={**os.environ, **env, "DATABASE_URL": scratch.url})
            seen = stats(receiver)
        spread = (seen["last"] or 0) - (seen["first"] or 0)
        return (seen["count"] / spread if spread > 0 else float("nan")), int(seen["count"])
    finally:
        asyncio.run(scratch.drop())


def posting_with_webhook(args: argparse.Namespace, env: dict[str, str], receiver_cmd: list[str]
                         ) -> tuple[float, WrkResult, str]:
    say(f"baseline: pgbench -c {args.connections} for {args.seconds}s")
    baselines = [pgbench_baseline(clients=args.connections, seconds=args.seconds)]
    scratch = Scratch("bench_post_webhook")
    asyncio.run(scratch.create())
    try:
        asyncio.run(seed_members(scratch.url, args.members))
        checkout = asyncio.run(make_key(scratch.url, ["checkout"]))
        admin = asyncio.run(make_key(scratch.url, ["admin"]))
        occurred = (datetime.now(UTC) - timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
        rport = free_port()
        with service([*receiver_cmd, str(rport)], rport, ready="/stats") as receiver:
            port = free_port()
            pool = max(4, -(-args.connections // args.workers))
            os.environ.update(env)
            with rewards_serve(scratch.url, port, args.workers, pool) as base:
                asyncio.run(register(base, admin, receiver))
                load = {"BENCH_TOKEN": checkout, "BENCH_MEMBERS": str(args.members), "BENCH_OCCURRED_AT": occurred}
                wrk(base, BENCH / "post.lua", connections=args.connections, seconds=3,
                    env={**load, "BENCH_RUN": f"warm-{time.time_ns()}"})
                say(f"rewards serve --workers {args.workers} with one webhook, wrk -c {args.connections} "
                    f"for {args.seconds}s")
                result = wrk(base, BENCH / "post.lua", connections=args.connections, seconds=args.seconds,
                             env={**load, "BENCH_RUN": f"run-{time.time_ns()}"}, database=scratch.name)
                backlog = asyncio.run(backlog_of(scratch.url, int(stats(receiver)["count"])))
        say(f"baseline again: pgbench -c {args.connections} for {args.seconds}s")
        baselines.append(pgbench_baseline(clients=args.connections, seconds=args.seconds))
    finally:
        asyncio.run(scratch.drop())
    return sum(baselines) / len(baselines), result, backlog


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000, help="events to deliver in part 1")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=16, help="REWARDS_WEBHOOK_CONCURRENCY")
    parser.add_argument("--skip-posting", action="store_true", help="part 1 alone")
    args = parser.parse_args()
    # one key for the registration, the service and the jobs: they must all open the webhook's secret
    env = {"REWARDS_SECRET_KEY": os.environ.get("REWARDS_SECRET_KEY") or "bench-" + "k" * 40,
           "REWARDS_WEBHOOK_CONCURRENCY": str(args.concurrency)}
    os.environ.update(env)
    receiver_cmd = [sys.executable, os.path.abspath(__file__), RECEIVER_ARG]

    rate, delivered = delivery_rate(args, env, receiver_cmd)
    rows = [("what", "per second", "ratio", "p99 ms", "errors", "note"),
            (f"deliveries to a local receiver (concurrency {args.concurrency})", f"{rate:.0f}", "", "", "",
             f"{delivered} of {args.events} delivered")]
    if not args.skip_posting:
        baseline, result, backlog = posting_with_webhook(args, env, receiver_cmd)
        rows.append(("pgbench baseline (mean)", f"{baseline:.0f}", "1.00", "", "0", ""))
        rows.append((f"POST /v1/purchases, --workers {args.workers}, one webhook", f"{result.rps:.0f}",
                     f"{result.rps / baseline:.2f}", f"{result.p99_ms:.1f}", str(result.errors),
                     backlog))
    print(table(rows))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == RECEIVER_ARG:
        receive(int(sys.argv[2]))
    else:
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        main()
