"""Finding a member by phone at the register, against the balance read in the same run.

    .venv/bin/python bench/lookup.py [--workers 2] [--seconds 15] [--connections 32] [--members 100000]

Seeds its own database with members (bench/common.py `seed_members`: each with a phone of its
own, normalized as enrollment keeps it), then loads `rewards serve --workers N` with wrk (one
thread, 32 connections): `GET /v1/members/{id}/balance` (bench/get.lua), then
`GET /v1/members?phone=…` with the numbers written as registers send them (bench/lookup.lua:
`5551234567`, `+15551234567`, `(555) 123-4567`), then the balance again; prints requests/s, p50,
p99 and the lookup's ratio to the mean of the two balance runs. Both answer from an index lookup
per member, grouped per round trip (`rewards.coalescing`), so the ratio says what the phone's
normalization and the lookup's statement cost on top of a read the service already serves well.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from common import BENCH, Scratch, free_port, make_key, rewards_serve, say, seed_members, table, wrk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--members", type=int, default=100_000)
    args = parser.parse_args()
    if not 1 <= args.members < 10_000_000:
        raise SystemExit("--members is 1 to 9,999,999 (one seven-digit phone each)")

    scratch = Scratch("bench_lookup")
    asyncio.run(scratch.create())
    try:
        say(f"seeding {args.members} members")
        asyncio.run(seed_members(scratch.url, args.members))
        token = asyncio.run(make_key(scratch.url, ["checkout"]))
        env = {"BENCH_MEMBERS": str(args.members), "BENCH_TOKEN": token}
        balance_env = {**env, "BENCH_PATH": "/v1/members/{id}/balance"}
        results = {}
        port = free_port()
        with rewards_serve(scratch.url, port, args.workers, max(4, -(-args.connections // args.workers))) as base:
            warm = min(3, args.seconds)
            wrk(base, BENCH / "get.lua", connections=args.connections, seconds=warm, env=balance_env)
            wrk(base, BENCH / "lookup.lua", connections=args.connections, seconds=warm, env=env)
            for name, script, script_env in (("balance1", "get.lua", balance_env), ("lookup", "lookup.lua", env),
                                             ("balance2", "get.lua", balance_env)):
                say(f"{name}: rewards serve --workers {args.workers}, {args.connections} connections")
                results[name] = wrk(base, BENCH / script, connections=args.connections, seconds=args.seconds,
                                    env=script_env, database=scratch.name)
    finally:
        asyncio.run(scratch.drop())

    balance_rps = (results["balance1"].rps + results["balance2"].rps) / 2
    b, lookup = results["balance1"], results["lookup"]
    rows = [("what", "requests/s", "ratio", "p50 ms", "p99 ms", "errors"),
            (f"GET /v1/members/{{id}}/balance (mean of {results['balance1'].rps:.0f} and "
             f"{results['balance2'].rps:.0f})", f"{balance_rps:.0f}", "1.00", f"{b.p50_ms:.1f}", f"{b.p99_ms:.1f}",
             str(results["balance1"].errors + results["balance2"].errors)),
            (f"GET /v1/members?phone=…, --workers {args.workers}", f"{lookup.rps:.0f}",
             f"{lookup.rps / balance_rps:.2f}", f"{lookup.p50_ms:.1f}", f"{lookup.p99_ms:.1f}", str(lookup.errors))]
    print(table(rows))
    for name in ("balance1", "lookup"):
        print(f"{name}: {results[name].cpu.per_request_us(results[name].rps)}")  # type: ignore[union-attr]
    errors = lookup.errors + results["balance1"].errors + results["balance2"].errors
    print(f"lookup / balance read: {lookup.rps / balance_rps:.2f}x; {errors} errors")
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main()
