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
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
SHARED_BASELINE = ROOT / "bench" / "baseline"  # the program's posting baseline: setup.sql, purchase.pgbench
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
            from rewards.migrations import migrate

            await migrate(self.url)
        return self.url

    async def drop(self) -> None:
        admin = await asyncpg.connect(with_database(SERVER, "postgres"))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        finally:
            await admin.close()


async def seed_members(url: str, count: int) -> None:
    """`count` active members with ids 1..count, written directly (enrollment is not what is measured):
    member g has the phone +1 555 and g in seven digits (so at most ten million), normalized as
    enrollment keeps it (`phone_normalized`, `email_normalized`)."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            """INSERT INTO members (id, name, email, phone, email_normalized, phone_normalized, state, birth_date)
               SELECT g, 'Bench Member', 'bench' || g || '@example.com', '+1555' || lpad(g::text, 7, '0'),
                      'bench' || g || '@example.com', '+1555' || lpad(g::text, 7, '0'), 'CA', date '1980-01-01'
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


# the process group of each running service, by base URL (they start in sessions of their own)
SERVICE_GROUPS: dict[str, int] = {}


def _cpu_by_process() -> dict[int, tuple[int, str, float]]:
    """pid -> (process group, command line, CPU seconds used so far), from /proc."""
    found = {}
    tick = os.sysconf("SC_CLK_TCK")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        found[int(pid)] = (int(fields[2]), cmdline, (int(fields[11]) + int(fields[12])) / tick)
    return found


class CpuSplit:
    """CPU a load costs the service's processes, the database's backends and the load generator.

    On a shared machine the throughput moves with the neighbours; CPU per request moves less,
    and says where each request's cost lies. Sampled from /proc in the middle of the run (from
    one second in to one second before its end), since backends and wrk are gone after it."""

    def __init__(self, seconds: float, service_group: int | None, database: str | None, tool: str) -> None:
        self.window = max(seconds - 2, 1)
        self.service_group, self.database, self.tool = service_group, database, tool
        self.service = self.database_backends = self.load_generator = 0.0  # cores, over the window
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sums(self) -> tuple[float, float, float]:
        service = backends = tool = 0.0
        for group, cmdline, seconds in _cpu_by_process().values():
            if group == self.service_group:
                service += seconds
            elif self.database and cmdline.startswith("postgres:") and f" {self.database} " in cmdline:
                backends += seconds
            elif os.path.basename(cmdline.split(" ", 1)[0]) == self.tool:
                tool += seconds
        return service, backends, tool

    def _sample(self) -> None:
        time.sleep(1)
        start = self._sums()
        time.sleep(self.window)
        end = self._sums()
        self.service, self.database_backends, self.load_generator = ((b - a) / self.window for a, b in zip(start, end))

    def __enter__(self) -> CpuSplit:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._thread.join()

    def per_request_us(self, per_second: float) -> str:
        service, backends, tool = (1e6 * x / max(per_second, 1) for x in
                                   (self.service, self.database_backends, self.load_generator))
        return (f"service {service:.0f} + database {backends:.0f} + {self.tool} {tool:.0f} us CPU per request "
                f"(cores busy: {self.service:.2f} + {self.database_backends:.2f} + {self.load_generator:.2f})")


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
        SERVICE_GROUPS[base] = proc.pid
        yield base
    finally:
        SERVICE_GROUPS.pop(base, None)
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
        self.cpu: CpuSplit | None = None

    def _latency(self, pct: str) -> float:
        match = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", self.text, re.M)
        if not match:
            return float("nan")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def wrk(base: str, script: Path | None, *, connections: int, seconds: int, path: str = "/",
        env: dict[str, str] | None = None, threads: int = 1, database: str | None = None) -> WrkResult:
    """wrk with one thread (it must not steal the service's CPU), latency distribution on; the
    result's `cpu` is what the load cost the service at `base`, `database`'s backends and wrk."""
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: apt-get install -y wrk")
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "5s"]
    if script:
        argv += ["-s", str(script)]
    with CpuSplit(seconds, SERVICE_GROUPS.get(base), database, "wrk") as cpu:
        out = subprocess.run(argv + [base + path], env={**os.environ, **(env or {})}, capture_output=True, text=True,
                             check=True)
    result = WrkResult(out.stdout)
    result.cpu = cpu
    return result


def pgbench_baseline(*, clients: int, seconds: int) -> float:
    """The baseline (bench/baseline): tps of the least a posting can do in PostgreSQL."""
    scratch = Scratch("bench_baseline")
    asyncio.run(scratch.create(migrated=False))
    env = pg_env(scratch.url)
    try:
        subprocess.run(["psql", "-q", "-X", "-v", "ON_ERROR_STOP=1", "-d", scratch.name,
                        "-f", str(SHARED_BASELINE / "setup.sql")], env={**env, "PGOPTIONS": "-c client_min_messages=warning"},
                       check=True, capture_output=True)
        with CpuSplit(seconds, None, scratch.name, "pgbench") as cpu:
            out = subprocess.run(["pgbench", "-n", "-f", str(SHARED_BASELINE / "purchase.pgbench"), "-c",
                                  str(clients), "-j", "2", "-T", str(seconds), scratch.name],
                                 env=env, check=True, capture_output=True, text=True).stdout
        tps = float(re.search(r"tps = ([\d.]+)", out).group(1))  # type: ignore[union-attr]
        say(f"pgbench at {tps:.0f} tps: {cpu.per_request_us(tps)}")
        failed = re.search(r"number of failed transactions: (\d+)", out)
        if failed and int(failed.group(1)):
            raise RuntimeError("pgbench baseline had failed transactions:\n" + out)
        return tps
    finally:
        asyncio.run(scratch.drop())


def table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)
