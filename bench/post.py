"""Target 1 (and 5): posting purchases through HTTP, against pgbench on the shared baseline.

    .venv/bin/python bench/post.py [--workers 1,2] [--seconds 20] [--connections 32]

Sets up its own database (100,000 members), runs `rewards serve --workers N` for each N,
loads it with wrk (one thread, unique purchase ids), checks every ledger invariant after
the load, runs the pgbench baseline before and after, and prints purchases/s, p99 and the
ratio to the baseline's mean.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from datetime import UTC, datetime, timedelta

import asyncpg

from common import (
    BENCH, Scratch, free_port, make_key, pgbench_baseline, rewards_serve, say, seed_members, table, wrk,
)


async def ledger_problems(url: str) -> list[str]:
    from rewards.verify import find_problems

    conn = await asyncpg.connect(url)
    try:
        return await find_problems(conn, recompute=False)
    finally:
        await conn.close()


async def posted(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval("SELECT count(*) FROM purchases")
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts to measure")
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--pool-size", type=int, default=None, help="REWARDS_POOL_SIZE (default: the service's)")
    args = parser.parse_args()
    workers = [int(w) for w in args.workers.split(",")]

    say(f"baseline: pgbench -c {args.connections} for {args.seconds}s")
    baselines = [pgbench_baseline(clients=args.connections, seconds=args.seconds)]
    rows = []
    scratch = Scratch("bench_post")
    asyncio.run(scratch.create())
    try:
        asyncio.run(seed_members(scratch.url, args.members))
        token = asyncio.run(make_key(scratch.url, ["checkout"]))
        occurred = (datetime.now(UTC) - timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
        results = {}
        for n in workers:
            port = free_port()
            pool = args.pool_size or max(4, -(-args.connections // n))
            with rewards_serve(scratch.url, port, n, pool) as base:
                env = {"BENCH_TOKEN": token, "BENCH_MEMBERS": str(args.members), "BENCH_OCCURRED_AT": occurred}
                wrk(base, BENCH / "post.lua", connections=args.connections, seconds=3,
                    env={**env, "BENCH_RUN": f"warm{n}-{time.time_ns()}"})
                say(f"service: rewards serve --workers {n}, wrk -c {args.connections} for {args.seconds}s")
                before = asyncio.run(posted(scratch.url))
                results[n] = wrk(base, BENCH / "post.lua", connections=args.connections, seconds=args.seconds,
                                 env={**env, "BENCH_RUN": f"run{n}-{time.time_ns()}"}, database=scratch.name)
                results[n].stored = asyncio.run(posted(scratch.url)) - before  # type: ignore[attr-defined]
        say(f"baseline again: pgbench -c {args.connections} for {args.seconds}s")
        baselines.append(pgbench_baseline(clients=args.connections, seconds=args.seconds))
        problems = asyncio.run(ledger_problems(scratch.url))
    finally:
        asyncio.run(scratch.drop())

    baseline = sum(baselines) / len(baselines)
    rows.append(("what", "per second", "ratio", "p50 ms", "p99 ms", "errors", "stored"))
    rows.append(("pgbench baseline (mean of " + " and ".join(f"{b:.0f}" for b in baselines) + ")",
                 f"{baseline:.0f}", "1.00", "", "", "0", ""))
    ok = not problems
    for n, r in results.items():
        ratio = r.rps / baseline
        rows.append((f"POST /v1/purchases, --workers {n}", f"{r.rps:.0f}", f"{ratio:.2f}", f"{r.p50_ms:.1f}",
                     f"{r.p99_ms:.1f}", str(r.errors), str(r.stored)))  # type: ignore[attr-defined]
        ok = ok and r.errors == 0 and r.stored >= r.requests  # type: ignore[attr-defined]
    print(table(rows))
    for n, r in results.items():
        print(f"--workers {n}: {r.cpu.per_request_us(r.rps)}")  # type: ignore[union-attr]
    print(f"ledger invariants after the load: {'all hold' if not problems else problems[:5]}")
    best = max(results.values(), key=lambda r: r.rps)
    target = best.rps / baseline >= 0.6 and best.p99_ms < 50 and ok
    print(f"target (>= 0.60x, p99 < 50 ms, zero errors): {'MET' if target else 'NOT MET'} "
          f"at {best.rps / baseline:.2f}x, p99 {best.p99_ms:.1f} ms")
    sys.exit(0 if target else 1)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main()
