"""What every benchmark shares: a database of its own, the service as a subprocess, wrk, pgbench.

Every figure is a ratio against a baseline taken in the same run, because this machine
is shared and its absolute speed drifts from minute to minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
SHARED_BASELINE = ROOT.parent / "shared" / "bench"
VENV_BIN = Path(sys.executable).parent
# the machine's PostgreSQL; by default over its Unix socket, as the baseline's README runs pgbench
SOCKET_DIR = "/var/run/postgresql"
SERVER = os.environ.get("BENCH_DATABASE_URL") or (
    f"postgresql://postgres@/postgres?host={SOCKET_DIR}" if os.path.exists(f"{SOCKET_DIR}/.s.PGSQL.5432")
    else "postgresql://postgres@127.0.0.1:5432/postgres")


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def with_database(url: str, name: str) -> str:
    base, _, query = url.partition("?")
    return base.rsplit("/", 1)[0] + "/" + name + ("?" + query if query else "")


def pg_env(url: str) -> dict[str, str]:
    """libpq environment for pgbench/psql from a postgresql:// URL."""
    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query))
    env = dict(os.environ)
    env.update({"PGHOST": query.get("host") or parts.hostname or "127.0.0.1", "PGPORT": str(parts.port or 5432),
                "PGUSER": parts.username or "postgres"})
    if parts.password:
        env["PGPASSWORD"] = parts.password
    return env



class Scratch:
    """A database created for one benchmark run and dropped afterwards."""

    def __init__(self, prefix: str) -> None:
        self.name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.url = with_database(SERVER, self.name)

    async def create(self, *, migrated: bool = True) -> str:
        admin = await asyncpg.connect(with_database(SERVER, "postgres"))
        try:
            await admin.execute(f'CREATE DATABASE "{self.name}"')
        finally:
            await admin.close()
        if migrated:
            from rewards.db import migrate

            conn = await asyncpg.connect(self.url)
            try:
                await migrate(conn)
            finally:
                await conn.close()
        return self.url

    async def drop(self) -> None:
        admin = await asyncpg.connect(with_database(SERVER, "postgres"))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        finally:
            await admin.close()


async def seed_members(url: str, count: int) -> None:
    """`count` active members with ids 1..count, written directly (enrollment is not what is measured)."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            """INSERT INTO members (id, name, email, phone, state, birth_date)
               SELECT g, 'Bench Member', 'bench' || g || '@example.com', '+1555' || lpad(g::text, 8, '0'), 'CA',
                      date '1980-01-01'
               FROM generate_series(1, $1) g""",
            count,
        )
        await conn.execute("SELECT setval(pg_get_serial_sequence('members', 'id'), $1)", count)
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def make_key(url: str, scopes: list[str]) -> str:
    from rewards.auth import create_key
    from rewards.db import Database

    db = Database(url, pool_size=1)
    try:
        return await create_key(db, scopes, label="bench")
    finally:
        await db.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def service(argv: list[str], port: int, env: dict[str, str] | None = None, ready: str = "/ready") -> Iterator[str]:
    """Run a server process until the block ends; yield its base URL once it answers `ready`."""
    log = tempfile.NamedTemporaryFile(prefix="bench-server-", suffix=".log", delete=False)
    proc = subprocess.Popen(argv, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(base + ready, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: see {log.name}\n" + Path(log.name).read_text()[-3000:])
            time.sleep(0.2)
        yield base
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def rewards_serve(url: str, port: int, workers: int, pool_size: int) -> contextlib.AbstractContextManager[str]:
    """The service exactly as production runs it: `rewards serve --workers N`."""
    env = {"DATABASE_URL": url, "REWARDS_POOL_SIZE": str(pool_size), "REWARDS_NO_PLUGINS": "1"}
    return service([str(VENV_BIN / "rewards"), "serve", "--port", str(port), "--workers", str(workers)], port, env)


class WrkResult:
    def __init__(self, text: str) -> None:
        self.text = text
        self.rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
        self.requests = int(re.search(r"(\d+) requests in", text).group(1))  # type: ignore[union-attr]
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
        socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
        self.errors = (int(non2xx.group(1)) if non2xx else 0) + (
            sum(int(x) for x in socket_errors.groups()) if socket_errors else 0)
        self.p50_ms = self._latency("50")
        self.p99_ms = self._latency("99")

    def _latency(self, pct: str) -> float:
        match = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", self.text, re.M)
        if not match:
            return float("nan")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def wrk(base: str, script: Path | None, *, connections: int, seconds: int, path: str = "/",
        env: dict[str, str] | None = None, threads: int = 1) -> WrkResult:
    """wrk with one thread (it must not steal the service's CPU), latency distribution on."""
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: apt-get install -y wrk")
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "5s"]
    if script:
        argv += ["-s", str(script)]
    out = subprocess.run(argv + [base + path], env={**os.environ, **(env or {})}, capture_output=True, text=True,
                         check=True)
    return WrkResult(out.stdout)


def pgbench_baseline(*, clients: int, seconds: int) -> float:
    """The shared baseline (../shared/bench): tps of the least a posting can do in PostgreSQL."""
    scratch = Scratch("bench_baseline")
    asyncio.run(scratch.create(migrated=False))
    env = pg_env(scratch.url)
    try:
        subprocess.run(["psql", "-q", "-X", "-v", "ON_ERROR_STOP=1", "-d", scratch.name,
                        "-f", str(SHARED_BASELINE / "setup.sql")], env={**env, "PGOPTIONS": "-c client_min_messages=warning"},
                       check=True, capture_output=True)
        out = subprocess.run(["pgbench", "-n", "-f", str(SHARED_BASELINE / "purchase.pgbench"), "-c", str(clients),
                              "-j", "2", "-T", str(seconds), scratch.name],
                             env=env, check=True, capture_output=True, text=True).stdout
        failed = re.search(r"number of failed transactions: (\d+)", out)
        if failed and int(failed.group(1)):
            raise RuntimeError("pgbench baseline had failed transactions:\n" + out)
        return float(re.search(r"tps = ([\d.]+)", out).group(1))  # type: ignore[union-attr]
    finally:
        asyncio.run(scratch.drop())


def table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)
