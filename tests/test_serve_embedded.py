"""The quick start, for real, and the embedded PostgreSQL's life: `rewards serve` with nothing
configured starts it, serves an enrollment, a purchase and a balance, and stops it when it
stops (SIGINT or SIGTERM), unless another `rewards` process still uses it; `rewards db
status` and `rewards db stop`; nothing is left running."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psutil
import pytest

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postmasters(pgdata: Path) -> list[int]:
    """Pids of PostgreSQL servers running on `pgdata` (their command line names it)."""
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        cmdline = process.info["cmdline"] or []
        if process.info["name"] == "postgres" and str(pgdata) in cmdline:
            found.append(process.pid)
    return found


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """A folder outside pytest's own: pytest narrows `pytest-of-<user>` to 0700 at each session's
    start, and a server run as another user (pgserver's, under root) must reach its data folder."""
    folder = Path(tempfile.mkdtemp(prefix="rewards-embedded-test-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def unconfigured_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """No DATABASE_URL, a data folder of the test's own, no XDG_RUNTIME_DIR (as on a server)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "XDG_RUNTIME_DIR", "PROMETHEUS_MULTIPROC_DIR")}
    env["REWARDS_DATA_DIR"] = str(tmp_path / "data")
    yield env
    pgdata = (tmp_path / "data" / "pg").resolve()
    left = postmasters(pgdata)
    # whatever a failed test left, stopped with the command under test (and never a server of another folder)
    if left:
        rewards(env, "db", "stop", "--force")
    assert not left, f"a PostgreSQL server was left running on {pgdata}: {left}"


def rewards(env: dict[str, str], *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(BIN / "rewards"), *args], env=env, capture_output=True, text=True, timeout=120)
    assert not check or done.returncode == 0, f"rewards {' '.join(args)}: {done.returncode}\n{done.stderr[-3000:]}"
    return done


def _wait_ready(base: str, process: subprocess.Popen[bytes], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read().decode() if process.stderr else "service exited"
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                return
        time.sleep(0.2)
    raise AssertionError("the service did not become ready")


@contextlib.contextmanager
def serving(env: dict[str, str], *extra: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`rewards serve` on a free port, ready; killed if the test leaves it running."""
    port = _free_port()
    service = subprocess.Popen([str(BIN / "rewards"), "serve", "--port", str(port), *extra], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        _wait_ready(f"http://127.0.0.1:{port}", service)
        yield f"http://127.0.0.1:{port}", service
    finally:
        if service.poll() is None:
            os.killpg(service.pid, signal.SIGKILL)
            service.wait(timeout=30)


def stop(service: subprocess.Popen[bytes], signum: int) -> str:
    """Send `signum`, wait for the exit; the service's stderr."""
    service.send_signal(signum)
    _, stderr = service.communicate(timeout=60)
    assert service.returncode == 0, (service.returncode, stderr.decode()[-2000:])
    return stderr.decode()


def test_serve_with_nothing_configured_serves_then_stops_its_database_on_sigint(unconfigured_env):
    pgdata = Path(unconfigured_env["REWARDS_DATA_DIR"]).resolve() / "pg"
    made = rewards(unconfigured_env, "keys", "create", "--scope", "checkout", "--scope", "guest_services", check=True)
    token = made.stdout.strip().splitlines()[-1]
    assert "Warning" not in made.stderr, made.stderr  # no RuntimeDirWarning without XDG_RUNTIME_DIR
    assert not postmasters(pgdata), "a one-shot command left the server it started running"
    with serving(unconfigured_env) as (base, service):
        headers = {"Authorization": f"Bearer {token}"}
        enrolled = httpx.post(f"{base}/v1/members", headers=headers, json={
            "name": "Quinn Park", "email": "quinn@example.com", "phone": "+15550001111",
            "birth_date": "1979-02-03", "state": "CA", "terms_version": "2023-10-30",
            "notice_version": "2023-10-30", "channel": "store"})
        assert enrolled.status_code == 201, enrolled.text
        member_id = enrolled.json()["member_id"]
        posted = httpx.post(f"{base}/v1/purchases", headers=headers, json={
            "purchase_id": "quickstart-1", "member_id": member_id, "store_id": "S001", "channel": "store",
            "occurred_at": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(), "currency": "USD",
            "lines": [{"sku": "A", "category": "home", "quantity": 1, "amount_cents": 1234}],
            "tenders": [{"method": "cash", "amount_cents": 1234}]})
        assert posted.status_code == 201, posted.text
        balance = httpx.get(f"{base}/v1/members/{member_id}/balance", headers=headers)
        assert balance.status_code == 200
        assert (balance.json()["points"], balance.json()["point_cents"]) == (12, 1234)
        assert len(postmasters(pgdata)) == 1
        stderr = stop(service, signal.SIGINT)
    assert "stopped the embedded PostgreSQL" in stderr
    assert "Warning" not in stderr, stderr
    assert not postmasters(pgdata)
    assert not (pgdata / "postmaster.pid").exists()
    assert (pgdata / "PG_VERSION").exists()  # the data stays for the next start


def test_the_database_outlives_a_serve_while_another_rewards_process_uses_it(unconfigured_env):
    pgdata = Path(unconfigured_env["REWARDS_DATA_DIR"]).resolve() / "pg"
    with serving(unconfigured_env, "--workers", "2") as (first_base, first), \
            serving(unconfigured_env) as (second_base, second):
        status = rewards(unconfigured_env, "db", "status")
        assert status.returncode == 0 and "embedded PostgreSQL: running" in status.stdout, status.stdout
        assert f"pid {first.pid} " in status.stdout and f"pid {second.pid} " in status.stdout, status.stdout
        refused = rewards(unconfigured_env, "db", "stop")
        assert refused.returncode == 1 and "--force" in refused.stderr, refused
        assert httpx.get(f"{second_base}/ready").status_code == 200

        stop(first, signal.SIGTERM)
        assert len(postmasters(pgdata)) == 1, "the second service still uses the server"
        assert httpx.get(f"{second_base}/ready").status_code == 200
        status = rewards(unconfigured_env, "db", "status")
        assert f"pid {first.pid} " not in status.stdout and f"pid {second.pid} " in status.stdout, status.stdout

        stderr = stop(second, signal.SIGINT)
        assert "stopped the embedded PostgreSQL" in stderr
    assert not postmasters(pgdata)
    status = rewards(unconfigured_env, "db", "status")
    assert status.returncode == 3 and "not running" in status.stdout and "no rewards process" in status.stdout


def test_db_stop_force_stops_a_database_in_use_and_a_killed_user_holds_nothing(unconfigured_env):
    pgdata = Path(unconfigured_env["REWARDS_DATA_DIR"]).resolve() / "pg"
    not_running = rewards(unconfigured_env, "db", "stop")
    assert not_running.returncode == 0 and "is not running" in not_running.stdout

    with serving(unconfigured_env) as (base, service):
        forced = rewards(unconfigured_env, "db", "stop", "--force")
        assert forced.returncode == 0 and "stopped the embedded PostgreSQL" in forced.stdout, forced
        assert not postmasters(pgdata)
        assert httpx.get(f"{base}/ready", timeout=10).status_code == 503
        stop(service, signal.SIGTERM)

    # a user killed outright (no exit hooks) leaves its lease behind, but the kernel freed its lock
    with serving(unconfigured_env) as (_base, service):
        os.killpg(service.pid, signal.SIGKILL)
        service.wait(timeout=30)
    assert len(postmasters(pgdata)) == 1
    status = rewards(unconfigured_env, "db", "status")
    assert status.returncode == 0 and "no rewards process" in status.stdout, status.stdout
    stopped = rewards(unconfigured_env, "db", "stop")
    assert stopped.returncode == 0 and "stopped" in stopped.stdout, stopped
    assert not postmasters(pgdata)


def test_make_clean_stops_the_embedded_databases_before_deleting_the_venv(unconfigured_env, tmp_path):
    """`make clean` in a checkout whose .venv is a stand-in (a link to this one's `rewards`)."""
    checkout = tmp_path / "checkout"
    (checkout / "venv" / "bin").mkdir(parents=True)
    (checkout / "venv" / "bin" / "rewards").symlink_to(BIN / "rewards")
    tests_env = {**unconfigured_env, "REWARDS_DATA_DIR": str(checkout / ".pytest-pg")}
    with serving(tests_env) as (_, tests_service), serving(unconfigured_env) as (_, service):
        running = [postmasters((Path(env["REWARDS_DATA_DIR"]) / "pg").resolve()) for env in (tests_env, unconfigured_env)]
        assert all(len(found) == 1 for found in running), running
        cleaned = subprocess.run(["make", "-f", str(Path(__file__).resolve().parent.parent / "Makefile"),
                                  "-C", str(checkout), "clean", "VENV=venv"],
                                 env=unconfigured_env, capture_output=True, text=True, timeout=120)
        assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
        for env in (tests_env, unconfigured_env):
            assert not postmasters((Path(env["REWARDS_DATA_DIR"]) / "pg").resolve()), cleaned.stdout
        assert not (checkout / "venv").exists() and not (checkout / ".pytest-pg").exists()
        for process in (tests_service, service):
            stop(process, signal.SIGTERM)


def test_db_stop_stops_the_server_even_when_its_user_can_no_longer_reach_the_folder(unconfigured_env, tmp_path):
    """Run as root, the server runs as pgserver's own user, which must traverse the folders above
    its data; pgserver opens them at start. Narrowed again later (pytest does it to its own
    temporary folders), pg_ctl cannot stop it: the postmaster is then asked directly."""
    pgdata = Path(unconfigured_env["REWARDS_DATA_DIR"]).resolve() / "pg"
    with serving(unconfigured_env) as (_, service):
        if os.geteuid() == 0:
            tmp_path.chmod(0o700)
        stopped = rewards(unconfigured_env, "db", "stop", "--force")
        assert stopped.returncode == 0 and "stopped" in stopped.stdout, stopped
        assert not postmasters(pgdata)
        stop(service, signal.SIGTERM)
