"""Target 2: reading a balance, against a bare Litestar JSON endpoint in the same run.

    .venv/bin/python bench/balance.py [--workers 2] [--seconds 15] [--connections 32]

Sets up its own database with `rewards demo` (members with purchases and rewards), then
loads, with wrk (one thread), `GET /v1/members/{id}/balance` on `rewards serve --workers N`
and `GET /bare/{id}` on bench/bare_app.py served by uvicorn exactly the same way (no
database, no guard, no middleware), and prints requests/s, p99 and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys

from common import BENCH, ROOT, VENV_BIN, Scratch, free_port, make_key, rewards_serve, say, service, table, wrk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--purchases", type=int, default=300_000)
    args = parser.parse_args()

    scratch = Scratch("bench_balance")
    asyncio.run(scratch.create())
    try:
        say(f"rewards demo --members {args.members} --purchases {args.purchases}")
        built = subprocess.run([str(VENV_BIN / "rewards"), "demo", "--members", str(args.members), "--purchases",
                                str(args.purchases)], env={**os.environ, "DATABASE_URL": scratch.url},
                               capture_output=True, text=True)
        if built.returncode:
            raise SystemExit(f"rewards demo failed:\n{built.stderr[-3000:]}")
        # the jobs catch up first (the demo's year leaves its expired rewards to put on the record):
        # what is measured is a program whose jobs keep up, not the backlog of a bulk load
        say("rewards jobs run --once")
        caught_up = subprocess.run([str(VENV_BIN / "rewards"), "jobs", "run", "--once"],
                                   env={**os.environ, "DATABASE_URL": scratch.url}, capture_output=True, text=True)
        if caught_up.returncode:
            raise SystemExit(f"rewards jobs run --once failed:\n{caught_up.stderr[-3000:]}")
        token = asyncio.run(make_key(scratch.url, ["checkout"]))
        env = {"BENCH_MEMBERS": str(args.members)}
        results = {}
        port = free_port()
        bare = [str(VENV_BIN / "uvicorn"), "--factory", "bench.bare_app:create_app", "--port", str(port),
                "--workers", str(args.workers), "--loop", "uvloop", "--http", "httptools", "--no-access-log",
                "--app-dir", str(ROOT)]
        for round_ in (1, 2):
            with service(bare, port) as base:
                wrk(base, BENCH / "get.lua", connections=args.connections, seconds=3,
                    env={**env, "BENCH_PATH": "/bare/{id}"})
                say(f"bare Litestar endpoint, --workers {args.workers}, round {round_}")
                results[f"bare{round_}"] = wrk(base, BENCH / "get.lua", connections=args.connections,
                                               seconds=args.seconds, env={**env, "BENCH_PATH": "/bare/{id}"})
            if round_ == 2:
                break
            sport = free_port()
            with rewards_serve(scratch.url, sport, args.workers, max(4, -(-args.connections // args.workers))) as base:
                benv = {**env, "BENCH_TOKEN": token, "BENCH_PATH": "/v1/members/{id}/balance"}
                wrk(base, BENCH / "get.lua", connections=args.connections, seconds=3, env=benv)
                say(f"GET /v1/members/{{id}}/balance, rewards serve --workers {args.workers}")
                results["balance"] = wrk(base, BENCH / "get.lua", connections=args.connections, seconds=args.seconds,
                                         env=benv, database=scratch.name)
    finally:
        asyncio.run(scratch.drop())

    bare_rps = (results["bare1"].rps + results["bare2"].rps) / 2
    b = results["balance"]
    rows = [("what", "requests/s", "ratio", "p50 ms", "p99 ms", "errors"),
            (f"bare Litestar JSON endpoint (mean of {results['bare1'].rps:.0f} and {results['bare2'].rps:.0f})",
             f"{bare_rps:.0f}", "1.00", f"{results['bare1'].p50_ms:.1f}", f"{results['bare1'].p99_ms:.1f}",
             str(results["bare1"].errors + results["bare2"].errors)),
            (f"GET /v1/members/{{id}}/balance, --workers {args.workers}", f"{b.rps:.0f}", f"{b.rps / bare_rps:.2f}",
             f"{b.p50_ms:.1f}", f"{b.p99_ms:.1f}", str(b.errors))]
    print(table(rows))
    for name in ("bare1", "balance"):
        print(f"{name}: {results[name].cpu.per_request_us(results[name].rps)}")  # type: ignore[union-attr]
    met = b.rps / bare_rps >= 0.4 and b.errors == 0
    print(f"target (>= 0.40x, zero errors): {'MET' if met else 'NOT MET'} at {b.rps / bare_rps:.2f}x")
    sys.exit(0 if met else 1)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main()
