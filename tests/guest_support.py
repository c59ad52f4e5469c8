"""Helpers of the guest-page tests: a sign-in link, a session's cookie, a page's CSRF token."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from litestar.testing import AsyncTestClient

from tests.conftest import auth

CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')
BROWSER = {"accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


async def sign_in_link(client: AsyncTestClient, token: str, member_id: int, channel: str = "email") -> str:
    """A new sign-in link for the member, asked for with `token` (guest services or the web shop)."""
    made = await client.post(f"/v1/members/{member_id}/sign-in-links", json={"channel": channel}, headers=auth(token))
    assert made.status_code == 201, made.text
    url: str = made.json()["url"]
    return url


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


async def follow(client: AsyncTestClient, url: str) -> Any:
    """Follow a sign-in link as a browser does, without following the redirect or keeping the cookie."""
    answer = await client.get(path_of(url), headers=BROWSER, follow_redirects=False)
    client.cookies.clear()  # the session-wide client carries no one's session from test to test
    return answer


def session_cookie(answer: Any) -> dict[str, str]:
    """The Cookie header that carries the session a sign-in answer started."""
    name, _, rest = answer.headers["set-cookie"].partition("=")
    return {"cookie": f"{name}={rest.split(';', 1)[0]}"}


async def signed_in(client: AsyncTestClient, token: str, member_id: int) -> dict[str, str]:
    """Headers of a browser signed in to the member's page: its session cookie, asking for HTML."""
    answer = await follow(client, await sign_in_link(client, token, member_id))
    assert answer.status_code == 303, answer.text
    return {**BROWSER, **session_cookie(answer)}


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)
