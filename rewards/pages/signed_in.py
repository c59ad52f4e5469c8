"""The guest's session on their pages: its cookie, the guard of every `/me` page, and CSRF.

- **The cookie** holds the session's random token (the database keeps its hash,
  rewards.sign_in): HttpOnly (no script reads it), SameSite=Lax (another site's forms and
  frames do not carry it), Path=/, no Max-Age (it goes when the browser closes; the server ends
  the session after 30 idle minutes anyway). Behind https (`REWARDS_PUBLIC_URL`) it is Secure and
  named with the `__Host-` prefix, which browsers accept only from a secure origin, for the
  whole host, so no sibling subdomain can plant one.
- **The guard** (`signed_in`) finds the live session of the cookie on every request (one
  statement, which also keeps it alive) and leaves it in `request.state.guest_session`, which
  `rewards.auth.actor_of` names as the actor of whatever the page changes. No session: 401
  `sign_in_required`, shown as a page that says how to get a link.
- **CSRF**: every form carries `csrf_token`, an HMAC of the session's token under the service's
  secret key (synchronizer tokens without storage: only the holder of the cookie's session can
  have it), and is accepted only from a page of this site (`rewards.pages.from_this_site`,
  Fetch Metadata). SameSite=Lax already keeps the cookie off cross-site posts; the token is the
  second lock.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie
from litestar.handlers import BaseRouteHandler

from rewards import errors, sign_in
from rewards.pages import from_this_site
from rewards.sign_in import GuestSession

MAX_COOKIE_LENGTH = 100  # ours are 43 characters


class SessionCookies:
    """The session cookie's name and attributes, and the CSRF tokens of its sessions."""

    def __init__(self, key: str, public_url: str) -> None:
        self.secure = public_url.startswith("https://")
        self.name = "__Host-westique_session" if self.secure else "westique_session"
        self.public_url = public_url
        self._key = hashlib.sha256(b"rewards.guest-csrf:" + key.encode()).digest()

    def cookie(self, token: str) -> Cookie:
        return Cookie(key=self.name, value=token, path="/", httponly=True, secure=self.secure, samesite="lax")

    def cleared(self) -> Cookie:
        """The cookie, emptied and expired: what signing out and cancelling answer with."""
        return Cookie(key=self.name, value="", path="/", httponly=True, secure=self.secure, samesite="lax",
                      max_age=0, expires=0)

    def csrf_token(self, session: GuestSession) -> str:
        return hmac.new(self._key, session.token.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, session: GuestSession, token: object) -> bool:
        return isinstance(token, str) and hmac.compare_digest(token, self.csrf_token(session))


async def signed_in(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """A guard: the request comes with the cookie of a live session."""
    cookies: SessionCookies = connection.app.state.session_cookies
    token = connection.cookies.get(cookies.name)
    session = None
    if token and len(token) <= MAX_COOKIE_LENGTH:
        session = await sign_in.session_of(connection.app.state.db, token)
    if session is None:
        raise errors.SignInRequired("you are not signed in, or your session ended: it lasts 30 minutes without use. "
                                    "Open the latest sign-in link Westique sent you, or ask at any register for a "
                                    "new one")
    connection.state.guest_session = session


def session(request: Request[Any, Any, Any]) -> GuestSession:
    """The signed-in guest's session (the guard put it there)."""
    found: GuestSession = request.state.guest_session
    return found


async def posted_form(request: Request[Any, Any, Any]) -> dict[str, str]:
    """A form posted by the guest's own page: its text fields, once its CSRF token and its origin
    are checked; otherwise 403 `forbidden`, and nothing changes."""
    cookies: SessionCookies = request.app.state.session_cookies
    form = await request.form()
    fields = {name: value for name, value in form.items() if isinstance(value, str)}
    if not (from_this_site(request, cookies.public_url) and cookies.csrf_ok(session(request), fields.get("csrf_token"))):
        raise errors.Forbidden("this form has expired or did not come from your Westique page; open the page again "
                               "and try once more")
    return fields
