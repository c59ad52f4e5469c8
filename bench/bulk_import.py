"""Target 3: `rewards import purchases FILE`, against COPY of the same file into a bare table.

    .venv/bin/python bench/bulk_import.py [--purchases 1000000] [--members 100000]

Sets up its own database (members only), writes a JSON-lines file of realistic purchases
(exactly the API's body, one per line; not timed), then times, in the same run: COPY of
the file's lines into a bare jsonb table (the least PostgreSQL can do with them), the
import, and the import run again (it must import nothing). Prints purchases/s, the ratio
to COPY, and the import's peak memory.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import msgspec

from common import VENV_BIN, Scratch, say, seed_members, table


def write_file(path: Path, purchases: int, members: int, seed: int = 11) -> None:
    from rewards.demo import _basket

    rng = random.Random(seed)
    start = datetime.now(UTC) - timedelta(days=300)
    encode = msgspec.json.Encoder().encode
    with path.open("wb") as f:
        for n in range(purchases):
            member_id = 1 + int(rng.random() * members)
            when = start + timedelta(seconds=int(rng.random() * 299 * 86400))
            basket = _basket(rng, f"imp-{seed}-{n}", member_id, when, member_id % 10 < 3, [])
            f.write(encode(basket) + b"\n")


async def copy_baseline(url: str, path: Path) -> float:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TABLE copy_baseline (body jsonb)")
        started = time.perf_counter()
        await conn.copy_to_table("copy_baseline", source=str(path), columns=["body"], format="text")
        return time.perf_counter() - started
    finally:
        await conn.execute("DROP TABLE IF EXISTS copy_baseline")
        await conn.close()


def run_import(url: str, path: Path) -> tuple[float, dict[str, str]]:
    started = time.perf_counter()
    # the file spans 300 days: older than REWARDS_MAX_BACKDATE, so imported as history
    out = subprocess.run([str(VENV_BIN / "rewards"), "import", "purchases", "--history", str(path)],
                         env={**os.environ, "DATABASE_URL": url, "REWARDS_NO_PLUGINS": "1", "NO_COLOR": "1"},
                         check=True, capture_output=True, text=True).stdout
    elapsed = time.perf_counter() - started
    found = dict(re.findall(r"^([a-z][^:]*): (.*)$", out, re.M))
    return elapsed, found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--purchases", type=int, default=1_000_000)
    parser.add_argument("--members", type=int, default=100_000)
    args = parser.parse_args()

    scratch = Scratch("bench_import")
    asyncio.run(scratch.create())
    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        path = Path(tmp) / "purchases.jsonl"
        try:
            asyncio.run(seed_members(scratch.url, args.members))
            say(f"writing {args.purchases:,} purchases to {path}")
            write_file(path, args.purchases, args.members)
            size = path.stat().st_size
            say("baseline: COPY into a bare jsonb table")
            copy_seconds = asyncio.run(copy_baseline(scratch.url, path))
            say("rewards import purchases FILE")
            first_seconds, first = run_import(scratch.url, path)
            say("rewards import purchases FILE, again")
            again_seconds, again = run_import(scratch.url, path)
        finally:
            asyncio.run(scratch.drop())

    copy_rate = args.purchases / copy_seconds
    rate = args.purchases / first_seconds
    rows = [("what", "seconds", "purchases/s", "ratio", "notes"),
            (f"COPY {args.purchases:,} lines ({size / 2**20:.0f} MiB) into a bare jsonb table", f"{copy_seconds:.1f}",
             f"{copy_rate:,.0f}", "1.00", ""),
            ("rewards import purchases FILE (whole command)", f"{first_seconds:.1f}", f"{rate:,.0f}",
             f"{rate / copy_rate:.2f}", f"imported {first.get('imported')}, rejected {first.get('rejected')}, "
                                        f"{first.get('time', '').split('; ')[-1]}"),
            ("the same file again", f"{again_seconds:.1f}", "", "",
             f"imported {again.get('imported')}, already imported "
             f"{again.get('already imported (same purchase_id and body)')}")]
    print(table(rows))
    met = rate >= 20_000 and first.get("imported") == str(args.purchases) and again.get("imported") == "0"
    print(f"target (>= 20,000 purchases/s, nothing imported twice): {'MET' if met else 'NOT MET'} at {rate:,.0f}/s")
    sys.exit(0 if met else 1)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main()
