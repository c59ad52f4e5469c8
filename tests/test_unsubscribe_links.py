"""Unsubscribe links (`/u/{token}`): the page, its button, RFC 8058 one-click, refused tokens."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import time
import uuid
from typing import Any

import httpx
import pytest
from itsdangerous import URLSafeSerializer

from rewards.unsubscribe_links import LINK_SALT, UnsubscribeLinks
from rewards.config import secret_key
from tests.conftest import auth

PROBLEM = "application/problem+json"
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
FORM = {"content-type": "application/x-www-form-urlencoded"}
ONE_CLICK = "List-Unsubscribe=One-Click"  # RFC 8058's body, written out here, not imported


def email() -> str:
    return f"reader.{uuid.uuid4().hex[:10]}@example.com"


@pytest.fixture
def links(app: Any, client: Any) -> UnsubscribeLinks:
    """The running app's links (made at start-up, with the key it uses)."""
    return app.state.links


@pytest.fixture
def key(app: Any, client: Any) -> str:
    return secret_key(app.state.settings)


async def subscribe(client: Any, keys: dict[str, str], address: str, channel: str = "email", **extra: Any) -> int:
    response = await client.post("/v1/subscriptions", json={"channel": channel, "address": address,
                                                            "source": "online", **extra},
                                 headers=auth(keys["guest_services"]))
    assert response.status_code == 201, response.text
    return response.json()["subscription_id"]


async def consent(db: Any, subscription_id: int) -> list[tuple[str, str, str | None]]:
    rows = await db.run("SELECT kind, source, detail FROM subscription_events WHERE subscription_id = $1 ORDER BY id",
                        subscription_id)
    return [(r["kind"], r["source"], r["detail"]) for r in rows]


async def status(db: Any, subscription_id: int) -> str:
    return (await db.run("SELECT status FROM subscriptions WHERE id = $1", subscription_id))[0]["status"]


def path_of(url: str) -> str:
    return httpx.URL(url).path


def form_token_of(page: str) -> str:
    found = re.findall(r'<input type="hidden" name="form_token" value="([^"]+)">', page)
    assert len(found) == 1, page
    return html.unescape(found[0])


def assert_page_headers(response: Any) -> None:
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-store"
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy and "form-action 'self'" in policy
    assert "script-src" not in policy and "unsafe-inline" not in policy  # default-src 'none' forbids every script
    assert "set-cookie" not in response.headers


# --- the link --------------------------------------------------------------------------------


async def test_the_link_names_only_the_subscription_and_is_built_on_the_public_url(client, keys, links, app):
    sid = await subscribe(client, keys, email())
    url = links.unsubscribe_url(sid)
    assert url.startswith(app.state.settings.public_url + "/u/")
    token = url.rsplit("/", 1)[1]
    payload = token.split(".")[0]
    assert json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))) == sid
    assert links.subscription_of(token) == sid
    assert links.unsubscribe_url(sid) == url  # the same link every time: nothing in it expires


async def test_email_headers_carry_the_link_and_rfc_8058_one_click(client, keys, links):
    sid = await subscribe(client, keys, email())
    headers = links.email_headers(sid)
    assert headers == {"List-Unsubscribe": f"<{links.unsubscribe_url(sid)}>", "List-Unsubscribe-Post": ONE_CLICK}


# --- the page --------------------------------------------------------------------------------


async def test_the_page_shows_one_button_and_changes_nothing(client, keys, links, db):
    address = email()
    sid = await subscribe(client, keys, address)
    response = await client.get(path_of(links.unsubscribe_url(sid)), headers=BROWSER)
    assert response.status_code == 200, response.text
    assert_page_headers(response)
    page = response.text
    assert page.count("<form") == 1 and page.count("<button") == 1 and 'method="post"' in page
    assert re.search(r"<h1>Unsubscribe from Westique emails</h1>", page)
    assert '<html lang="en">' in page and "<title>" in page
    assert address in page
    assert "<script" not in page and not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert await status(db, sid) == "active"
    assert await consent(db, sid) == [("subscribed", "online", None)]


async def test_the_pages_inline_style_is_the_one_the_policy_allows(client, keys, links):
    response = await client.get(path_of(links.unsubscribe_url(await subscribe(client, keys, email()))), headers=BROWSER)
    [style] = re.findall(r"<style>(.*?)</style>", response.text, re.S)
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in response.headers["content-security-policy"]


async def test_the_pages_button_unsubscribes_and_records_the_link(client, keys, links, db):
    address = email()
    sid = await subscribe(client, keys, address)
    url = path_of(links.unsubscribe_url(sid))
    form_token = form_token_of((await client.get(url, headers=BROWSER)).text)
    response = await client.post(url, data={"form_token": form_token},
                                 headers={**BROWSER, "Sec-Fetch-Site": "same-origin"})
    assert response.status_code == 200, response.text
    assert_page_headers(response)
    assert "<h1>You are unsubscribed</h1>" in response.text and address in response.text
    assert await status(db, sid) == "unsubscribed"
    assert await consent(db, sid) == [("subscribed", "online", None), ("unsubscribed", "link", "page")]
    # the page again says so, with no button
    again = await client.get(url, headers=BROWSER)
    assert "<h1>You are unsubscribed</h1>" in again.text and "<button" not in again.text


async def test_a_hostile_address_is_shown_escaped(client, keys, links):
    address = f"<script>alert('{uuid.uuid4().hex[:6]}')</script>&\"x\"@evil.example"
    sid = await subscribe(client, keys, address)
    url = path_of(links.unsubscribe_url(sid))
    for response in (await client.get(url, headers=BROWSER),
                     await client.post(url, content=ONE_CLICK, headers={**BROWSER, **FORM})):
        assert response.status_code == 200, response.text
        assert "<script" not in response.text
        [shown] = re.findall(r'<span class="address">(.*?)</span>', response.text)
        assert not set(shown) & set("<>\"'") and html.unescape(shown) == address.lower()


# --- one click ---------------------------------------------------------------------------------


async def test_one_click_post_unsubscribes_without_cookie_or_form_token(client, keys, links, db):
    sid = await subscribe(client, keys, email())
    client.cookies.clear()
    # as a mailbox provider sends it: form-encoded, no cookie, no Accept, no browser headers
    response = await client.post(path_of(links.unsubscribe_url(sid)), content=ONE_CLICK, headers=FORM)
    assert response.status_code == 200, response.text  # never a redirect (RFC 8058)
    assert await status(db, sid) == "unsubscribed"
    assert await consent(db, sid) == [("subscribed", "online", None), ("unsubscribed", "link", "one-click")]
    again = await client.post(path_of(links.unsubscribe_url(sid)), content=ONE_CLICK, headers=FORM)
    assert again.status_code == 200
    assert len(await consent(db, sid)) == 2  # unsubscribing again records nothing


async def test_one_click_as_multipart_form_data_unsubscribes(client, keys, links, db):
    sid = await subscribe(client, keys, email())
    response = await client.post(path_of(links.unsubscribe_url(sid)), files={"List-Unsubscribe": (None, "One-Click")})
    assert response.status_code == 200, response.text
    assert await consent(db, sid) == [("subscribed", "online", None), ("unsubscribed", "link", "one-click")]


async def test_one_click_stops_only_the_links_subscription(client, keys, links, db):
    address = email()
    mine, other = await subscribe(client, keys, address), await subscribe(client, keys, email())
    texts = await subscribe(client, keys, f"+1415{uuid.uuid4().int % 10**7:07d}", "sms")
    await client.post(path_of(links.unsubscribe_url(mine)), content=ONE_CLICK, headers=FORM)
    assert (await status(db, mine), await status(db, other), await status(db, texts)) == \
        ("unsubscribed", "active", "active")


async def test_a_later_opt_in_renews_after_a_link_unsubscribed(client, keys, links, db):
    address = email()
    sid = await subscribe(client, keys, address)
    await client.post(path_of(links.unsubscribe_url(sid)), content=ONE_CLICK, headers=FORM)
    assert await subscribe(client, keys, address) == sid
    assert [kind for kind, _, _ in await consent(db, sid)] == ["subscribed", "unsubscribed", "renewed"]
    page = await client.get(path_of(links.unsubscribe_url(sid)), headers=BROWSER)
    assert "<button" in page.text  # the same link works for the renewed subscription


async def test_the_link_of_an_erased_subscriber_shows_nothing_to_unsubscribe(client, keys, links, db, member):
    address = email()
    sid = await subscribe(client, keys, address, member_id=member)
    erased = await client.delete(f"/v1/members/{member}/personal-data?immediate=true&reason=consumer_confirmed", headers=auth(keys["guest_services"]))
    assert erased.status_code == 200, erased.text
    before = await consent(db, sid)
    for response in (await client.get(path_of(links.unsubscribe_url(sid)), headers=BROWSER),
                     await client.post(path_of(links.unsubscribe_url(sid)), content=ONE_CLICK, headers=FORM)):
        assert response.status_code == 200, response.text
        assert "<h1>Nothing to unsubscribe</h1>" in response.text and address not in response.text
    assert await consent(db, sid) == before


# --- refused -----------------------------------------------------------------------------------


def tampered_tokens(links: UnsubscribeLinks, key: str, sid: int, other: int) -> dict[str, str]:
    token = links.token(sid)
    payload, signature = token.split(".")
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    return {
        "signature changed": f"{payload}.{flipped}",
        "another subscription's payload": f"{links.token(other).split('.')[0]}.{signature}",
        "signed with another key": URLSafeSerializer("another key " * 4, salt=LINK_SALT).dumps(sid),
        "a form token, not a link": links.form_token(sid),
        "no signature": payload,
        "cut short": token[:-5],
        "garbage": "not-a-token",
        "very long": token + "A" * 5000,
        "signed by us, not a subscription": URLSafeSerializer(key, salt=LINK_SALT,
                                                              signer_kwargs={"digest_method": hashlib.sha256}).dumps("1"),
        "signed by us, SHA-1": URLSafeSerializer(key, salt=LINK_SALT).dumps(sid),
    }


async def test_a_tampered_token_is_refused_and_changes_nothing(client, keys, links, key, db):
    sid, other = await subscribe(client, keys, email()), await subscribe(client, keys, email())
    for what, token in tampered_tokens(links, key, sid, other).items():
        for method, body in (("GET", None), ("POST", ONE_CLICK)):
            response = await client.request(method, f"/u/{token}", content=body, headers=FORM)
            assert response.status_code == 404, (what, method, response.text)
            assert response.headers["content-type"].startswith(PROBLEM), what
            assert response.json()["code"] == "invalid_link"
            shown = await client.request(method, f"/u/{token}", content=body, headers={**BROWSER, **FORM})
            assert shown.status_code == 404, (what, method)
            assert_page_headers(shown)
            assert "<h1>This link is not valid</h1>" in shown.text and "invalid_link" in shown.text
    assert (await status(db, sid), await status(db, other)) == ("active", "active")
    assert len(await consent(db, sid)) == 1 and len(await consent(db, other)) == 1


async def test_a_link_depends_on_the_key_alone_not_on_the_public_url(client, keys, key):
    """Moving the service to another address keeps every link sent so far (once redirected there)."""
    sid = await subscribe(client, keys, email())
    moved = UnsubscribeLinks(key, "https://elsewhere.example")
    assert moved.unsubscribe_url(sid).startswith("https://elsewhere.example/u/")
    assert (await client.get(path_of(moved.unsubscribe_url(sid)), headers=BROWSER)).status_code == 200


def expired_form_token(links: UnsubscribeLinks, sid: int, monkeypatch: pytest.MonkeyPatch) -> str:
    real = time.time
    with monkeypatch.context() as patched:
        patched.setattr(time, "time", lambda: real() - 2 * 24 * 3600)
        return links.form_token(sid)


async def test_a_form_post_without_a_current_token_of_its_page_is_refused(client, keys, links, db, monkeypatch):
    sid, other = await subscribe(client, keys, email()), await subscribe(client, keys, email())
    url = path_of(links.unsubscribe_url(sid))
    good = form_token_of((await client.get(url, headers=BROWSER)).text)
    same_site = {**BROWSER, "Sec-Fetch-Site": "same-origin"}
    refused = [
        ({}, same_site),
        ({"form_token": ""}, same_site),
        ({"form_token": "forged"}, same_site),
        ({"form_token": links.form_token(other)}, same_site),
        ({"form_token": links.token(sid)}, same_site),
        ({"form_token": expired_form_token(links, sid, monkeypatch)}, same_site),
        ({"form_token": good}, {**BROWSER, "Sec-Fetch-Site": "cross-site"}),
        ({"form_token": good}, {**BROWSER, "Sec-Fetch-Site": "same-site"}),
        ({"form_token": good}, {**BROWSER, "Origin": "https://evil.example"}),
        ({"List-Unsubscribe": "Two-Clicks"}, same_site),
    ]
    for body, headers in refused:
        response = await client.post(url, data=body, headers=headers)
        assert response.status_code == 403, (body, headers, response.text)
        assert "<h1>" in response.text and "Open the page again" in response.text
    api = await client.post(url, data={"form_token": "forged"})
    assert api.status_code == 403 and api.json()["code"] == "forbidden"
    assert await status(db, sid) == "active" and len(await consent(db, sid)) == 1
    # the page's own token, from the page, still works afterwards
    accepted = await client.post(url, data={"form_token": good}, headers=same_site)
    assert accepted.status_code == 200 and await status(db, sid) == "unsubscribed"


async def test_a_file_posted_as_the_form_token_is_refused(client, keys, links, db):
    sid = await subscribe(client, keys, email())
    response = await client.post(path_of(links.unsubscribe_url(sid)), files={"form_token": ("t.txt", b"x", "text/plain")})
    assert response.status_code == 403, response.text
    assert await status(db, sid) == "active"


async def test_the_page_refuses_other_methods(client, keys, links):
    url = path_of(links.unsubscribe_url(await subscribe(client, keys, email())))
    for method in ("PUT", "DELETE", "PATCH"):
        response = await client.request(method, url)
        assert response.status_code == 405, (method, response.text)


async def test_links_are_not_made_for_other_services_tokens(client, keys):
    """The API's bearer tokens are no links."""
    response = await client.get(f"/u/{keys['admin']}")
    assert response.status_code == 404 and response.json()["code"] == "invalid_link"
