"""End to end: the unsubscribe page, served by `rewards serve`, in headless Chromium.

The browser enforces the page's Content-Security-Policy, so the screenshot shows whether the
inline stylesheet the policy allows by its hash was applied (the header in its colour, the
button in the accent colour), and the DOM it built holds the heading, the address and the
one button. Under CI the browser is installed by .ci/run; its absence fails the test.
"""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from rewards.unsubscribe_links import UnsubscribeLinks
from tests.conftest import auth
from tests.reliability.harness import Service, running
from tests.test_report_html_chromium import FLAGS, chromium, count_pixels, png_pixels

KEY = "a key for this test only, 0123456789abcdef"
ACCENT = bytes((0x7A, 0x1F, 0x2B))  # page.css's --accent
WIDTH, HEIGHT = 390, 700  # a phone's width


@pytest.fixture
def browser() -> str:
    return chromium()


@pytest.fixture
def served(database_url: str) -> Any:
    service = Service(database_url, env={"REWARDS_SECRET_KEY": KEY})
    with running(service):
        yield service


def browse(browser: str, url: str, profile: Path, *mode: str) -> subprocess.CompletedProcess[bytes]:
    done = subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", f"--window-size={WIDTH},{HEIGHT}",
                           "--enable-logging=stderr", *mode, url], capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    return done


async def test_the_unsubscribe_page_renders_styled_under_its_policy(browser: str, served: Service,
                                                                    keys: dict[str, str], tmp_path: Path) -> None:
    await served.wait_up()
    address = f"<b>reader</b>.{uuid.uuid4().hex[:6]}@example.com"
    async with httpx.AsyncClient(base_url=served.base_url, timeout=30) as http:
        made = await http.post("/v1/subscriptions", headers=auth(keys["guest_services"]),
                               json={"channel": "email", "address": address, "source": "online"})
        assert made.status_code == 201, made.text
    link = UnsubscribeLinks(KEY, served.base_url).unsubscribe_url(made.json()["subscription_id"])

    done = browse(browser, link, tmp_path / "profile-dom", "--dump-dom")
    dom = done.stdout.decode()
    assert "<h1>Unsubscribe from Westique emails</h1>" in dom
    assert dom.count("<button") == 1 and "&lt;b&gt;reader&lt;/b&gt;" in dom and "<b>reader" not in dom
    assert "Content Security Policy" not in done.stderr.decode(errors="replace")

    shot = tmp_path / "page.png"
    browse(browser, link, tmp_path / "profile-shot", f"--screenshot={shot}")
    width, _, bpp, rows = png_pixels(shot.read_bytes())
    assert width == WIDTH
    accent = ACCENT + (b"\xff" if bpp == 4 else b"")
    painted = sum(count_pixels(row, accent, bpp) for row in rows)
    # the header bar (390 x ~48 px) and the button: thousands of pixels, none if the style were blocked
    assert painted > 15_000, painted
