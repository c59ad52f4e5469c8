"""End to end: a guest's page, served by `rewards serve`, in Debian's Chromium driven by Playwright.

A guest opens the sign-in link, sees their points and their rewards with barcodes that a
scanner reads back to the reward's code, switches texts off, downloads their data and cancels;
their hostile name is shown as text; the same link a second time is refused. On every page
axe-core (from the npm registry, installed by .ci/run into tests/browser/node_modules and
injected into the page) finds no serious or critical violation, the browser reports no
Content-Security-Policy violation, and screenshots at 360 px (a phone, 3 device pixels to the
CSS pixel) and 1280 px are kept in tests/artifacts/guest/ (not committed) for a person to look
at. Playwright launches /usr/bin/chromium by `executable_path`: no browser is downloaded.
Under CI a missing browser, Playwright, axe-core or barcode reader fails; elsewhere it skips.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from rewards.cards import new_card_number
from rewards.engine.posting import new_reward_code
from rewards.pages.barcodes import code128_svg
from tests.conftest import IN_CI, auth, purchase
from tests.reliability.harness import Service, running
from tests.test_report_html_chromium import chromium

ROOT = Path(__file__).resolve().parent.parent
AXE = ROOT / "tests" / "browser" / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = ROOT / "tests" / "artifacts" / "guest"
KEY = "a key for the guest page tests only, 0123456789"
HOSTILE = "<script>alert('owned')</script>"
PHONE = {"width": 360, "height": 780}
DESKTOP = {"width": 1280, "height": 900}


def needed(what: str) -> None:
    message = f"{what} is not installed (.ci/run installs it)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def browser_path() -> str:
    return chromium()


@pytest.fixture
def axe_source() -> str:
    if not AXE.exists():
        needed("axe-core (npm ci --prefix tests/browser)")
    return AXE.read_text()


@pytest.fixture
def playwright_api() -> Any:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        needed("playwright (pip install -e '.[test]')")
    return async_playwright


@pytest.fixture
def read_barcodes() -> Any:
    try:
        import zxingcpp
        from PIL import Image
    except ImportError:
        needed("zxing-cpp and pillow (pip install -e '.[test]')")

    def read(png: bytes) -> list[tuple[str, str]]:
        return [(r.format.name, r.text) for r in zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))]

    return read


@pytest.fixture
async def served(database_url: str) -> AsyncIterator[Service]:
    service = Service(database_url, env={"REWARDS_SECRET_KEY": KEY})
    with running(service):
        await service.wait_up()
        yield service


@pytest.fixture
async def chromium_browser(browser_path: str, playwright_api: Any) -> AsyncIterator[Any]:
    async with playwright_api() as playwright:
        browser = await playwright.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            await browser.close()


async def a_guest_with_rewards(served: Service, keys: dict[str, str]) -> dict[str, Any]:
    """Enrolled with a hostile name, subscribed to email and texts, with two $10 rewards and 24.68 points."""
    tag = uuid.uuid4().int % 10**7
    body = {"name": f"{HOSTILE} Lee", "email": f"ann.{tag}@example.com", "phone": f"+1555{tag:07d}",
            "birth_date": "1990-04-01", "state": "CA", "terms_version": "2023-10-30",
            "notice_version": "2023-10-30", "channel": "online"}
    staff, till = auth(keys["guest_services"]), auth(keys["checkout"])
    async with httpx.AsyncClient(base_url=served.base_url, timeout=30) as http:
        enrolled = await http.post("/v1/members", json=body, headers=staff)
        assert enrolled.status_code == 201, enrolled.text
        member = enrolled.json()["member_id"]
        for channel, address in (("email", body["email"]), ("sms", body["phone"])):
            made = await http.post("/v1/subscriptions", headers=staff, json={
                "channel": channel, "address": address, "source": "online", "member_id": member})
            assert made.status_code == 201, made.text
        bought = await http.post("/v1/purchases", headers=till, json=purchase(
            member, 31_234, method="westique_credit_card", store_id="S012"))
        assert bought.status_code == 201, bought.text
        link = await http.post(f"/v1/members/{member}/sign-in-links", json={}, headers=staff)
        assert link.status_code == 201, link.text
    return {"member": member, "card": enrolled.json()["card_number"], "link": link.json()["url"],
            "rewards": [r["code"] for r in bought.json()["rewards_issued"]], "body": body}


class Checked:
    """What the browser reported while the test browsed: policy violations, dialogs, script errors."""

    def __init__(self, page: Any) -> None:
        self.console: list[str] = []
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        page.on("console", lambda message: self.console.append(message.text))
        page.on("dialog", lambda dialog: self.dialogs.append(dialog.message))
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def clean(self) -> None:
        assert not [m for m in self.console if "Content Security Policy" in m or "Refused" in m], self.console
        assert not self.dialogs, f"a script ran: {self.dialogs}"
        assert not self.errors, self.errors


async def accessible(page: Any, axe_source: str) -> None:
    """axe-core finds no serious or critical violation on the page (WCAG 2.1 A and AA rules, best practices)."""
    await page.evaluate(axe_source)  # run by the DevTools protocol: the page's policy forbids scripts of its own
    found = await page.evaluate("""async () => {
        const results = await axe.run(document, {resultTypes: ['violations']});
        return results.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                             nodes: v.nodes.map(n => n.html).slice(0, 3)}));
    }""")
    serious = [v for v in found if v["impact"] in ("serious", "critical")]
    assert not serious, f"{page.url}: " + json.dumps(serious, indent=1)


async def shots(page: Any, name: str) -> None:
    """The page at 360 px and at 1280 px, whole, kept for a person to look at."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for size in (PHONE, DESKTOP):
        await page.set_viewport_size(size)
        await page.screenshot(path=str(ARTIFACTS / f"{name}-{size['width']}.png"), full_page=True)
    await page.set_viewport_size(PHONE)


async def test_a_guest_signs_in_by_link_uses_the_page_and_cancels(
    served: Service, keys: dict[str, str], chromium_browser: Any, axe_source: str, read_barcodes: Any
) -> None:
    guest = await a_guest_with_rewards(served, keys)
    context = await chromium_browser.new_context(viewport=PHONE, device_scale_factor=3, accept_downloads=True)
    page = await context.new_page()
    checked = Checked(page)

    # the link signs in and lands on the page
    await page.goto(guest["link"])
    assert page.url == served.base_url + "/me"
    heading = page.get_by_role("heading", level=1)
    assert await heading.inner_text() == f"Hi, {HOSTILE}"  # the name, as text
    assert await page.locator("script").count() == 0
    assert await page.locator(".balance .figure").inner_text() == "24.68"
    assert "275.32 points to your next $10 reward" in await page.locator("label[for=progress]").inner_text()
    assert await page.locator("progress").get_attribute("value") == "2468"
    rewards = page.locator("li.reward")
    assert await rewards.count() == 2
    shown = [await rewards.nth(i).locator(".number").inner_text() for i in range(2)]
    assert sorted(shown) == sorted(guest["rewards"])
    assert "Expires in 90 days" in await rewards.first.inner_text()
    # the barcodes scan: each reward's reads back as its code, the card's as the card number
    for i in range(2):
        png = await rewards.nth(i).locator("svg.barcode").screenshot()
        assert read_barcodes(png) == [("Code128", shown[i])], f"reward {shown[i]} does not scan at 360 px"
    card = await page.locator(".member-card svg.barcode").screenshot()
    assert read_barcodes(card) == [("Code128", guest["card"])]
    await accessible(page, axe_source)
    await shots(page, "me")
    # printable: the menu and forms go, the barcodes stay
    await page.emulate_media(media="print")
    assert not await page.locator("nav.menu").is_visible() and await rewards.first.locator("svg").is_visible()
    await page.pdf(path=str(ARTIFACTS / "me-print.pdf"))
    await page.emulate_media(media="screen")

    # the activity, in words
    await page.get_by_role("link", name="Activity").click()
    assert "312.34 points for a purchase at store S012" in await page.locator("ol.activity").inner_text()
    await accessible(page, axe_source)
    await shots(page, "activity")

    # texts off
    await page.get_by_role("link", name="Emails & texts").click()
    texts = page.get_by_label("Texts")
    assert await texts.is_checked() and await page.get_by_label("Email").is_checked()
    await accessible(page, axe_source)
    await shots(page, "subscriptions")
    await texts.uncheck()
    await page.get_by_role("button", name="Save my choices").click()
    assert await page.get_by_role("status").inner_text() == "Your choices are saved."
    assert not await page.get_by_label("Texts").is_checked() and await page.get_by_label("Email").is_checked()

    # the data, downloaded
    await page.get_by_role("link", name="Your data").click()
    await accessible(page, axe_source)
    await shots(page, "data")
    async with page.expect_download() as waiting:
        await page.get_by_role("link", name="Download my data").click()
    download = await waiting.value
    assert download.suggested_filename == "westique-rewards-data.json"
    exported = json.loads(Path(await download.path()).read_text())
    assert exported["member"]["member_id"] == guest["member"] and exported["member"]["name"] == f"{HOSTILE} Lee"
    sms = [s for s in exported["subscriptions"] if s["channel"] == "sms"]
    assert [s["status"] for s in sms] == ["unsubscribed"]
    assert sms[0]["consent_events"][-1] | {"event_id": 0, "occurred_at": ""} == {
        "event_id": 0, "kind": "unsubscribed", "source": "online", "detail": "guest page", "occurred_at": ""}

    # cancel: asked first, then done
    await page.get_by_role("link", name="Cancel membership").click()
    assert "your 24.68 points are given up" in await page.locator("main").inner_text()
    await accessible(page, axe_source)
    await shots(page, "cancel")
    await page.get_by_role("button", name="Yes, cancel my membership").click()
    assert await page.get_by_role("heading", level=1).inner_text() == "Your membership is cancelled"
    await accessible(page, axe_source)
    await shots(page, "cancelled")
    assert not [c for c in await context.cookies() if c["name"] == "westique_session" and c["value"]]
    answer = await page.goto(served.base_url + "/me")
    assert answer is not None and answer.status == 401
    await accessible(page, axe_source)

    # the same link again: refused, and the page says so
    again = await page.goto(guest["link"])
    assert again is not None and again.status == 410
    assert "was used already" in await page.locator("main").inner_text()
    await accessible(page, axe_source)
    await shots(page, "link-used")
    checked.clean()
    await context.close()

    async with httpx.AsyncClient(base_url=served.base_url, timeout=30) as http:
        profile = await http.get(f"/v1/members/{guest['member']}", headers=auth(keys["guest_services"]))
    assert profile.json()["status"] == "cancelled"


async def test_barcodes_read_back_at_a_phones_width_and_on_a_desktop(chromium_browser: Any, read_barcodes: Any
                                                                     ) -> None:
    codes = [new_reward_code() for _ in range(6)] + [new_card_number() for _ in range(3)]
    html = "".join(f'<div class="box">{code128_svg(code, label=code)}</div>' for code in codes)
    style = ("body{margin:0;background:#faf8f5} .box{background:#fff;padding:8px;margin:0 20px 24px}"
             ".barcode{display:block;max-width:100%;height:auto;margin:0 auto}")
    for viewport, scale in ((PHONE, 3), (DESKTOP, 1)):
        context = await chromium_browser.new_context(viewport=viewport, device_scale_factor=scale)
        page = await context.new_page()
        await page.set_content(f"<!doctype html><style>{style}</style>{html}")
        boxes = page.locator("svg.barcode")
        for i, code in enumerate(codes):
            png = await boxes.nth(i).screenshot()
            assert read_barcodes(png) == [("Code128", code)], (viewport, code)
        await context.close()
