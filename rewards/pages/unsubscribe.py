"""`/u/{token}`: the unsubscribe link of an email, no login needed.

GET shows a page with one button and changes nothing, so a mail scanner or a browser
fetching the link ahead of time unsubscribes no one. POST unsubscribes, answering 200 with
the page (never a redirect, which RFC 8058 forbids), in either of two ways:
- the page's own form: its signed form token (`rewards.unsubscribe_links`), from a page of
  this site (`rewards.pages.from_this_site`); a cookie-based CSRF token cannot serve here, as
  a guest following a link has no session;
- RFC 8058 one-click: the body `List-Unsubscribe=One-Click` (form-urlencoded or multipart),
  which mailbox providers POST without cookies or any other context, as the RFC requires.
  The signed link alone authorizes it, as it authorizes the page.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from litestar.datastructures import State
from litestar.params import Parameter
from litestar.response import Template

from rewards import errors, mailing
from rewards.access import public
from rewards.mailing import LinkedSubscription
from rewards.pages import PAGE, from_this_site, page
from rewards.unsubscribe_links import ONE_CLICK

_ONE_CLICK_NAME, _ONE_CLICK_VALUE = ONE_CLICK.split("=")
# unconstrained: a token that is not ours is answered by the page's own 404, not a 422
Token = Annotated[str, Parameter(description="the link's signed token")]


def _state(subscription: LinkedSubscription | None, *, done: bool = False) -> str:
    if subscription is None or subscription.address is None:
        return "gone"
    if subscription.status == "active":
        return "confirm"
    return "done" if done else "already"


PAGE_RESPONSE = ResponseSpec(str, generate_examples=False, media_type="text/html",
                             description="The page (HTML, no script): one button, or what was done",
                             examples=[Example(summary="the page", value="<!doctype html><html lang=\"en\">…"
                                                                        "<button type=\"submit\">Unsubscribe"
                                                                        "</button>…</html>")])


@public(errors=[errors.InvalidLink], ok=PAGE_RESPONSE)
@get("/u/{token:str}", **PAGE, tags=["mailing list"], summary="The unsubscribe page of an email's link")
async def unsubscribe_page(token: Token, state: State) -> Template:
    """A page with one button that unsubscribes the link's subscription; changes nothing itself.
    An invalid link is 404 `invalid_link` (a page for browsers, problem+json for others)."""
    subscription_id = state.links.subscription_of(token)
    subscription = await mailing.linked_subscription(state.db, subscription_id)
    return page("unsubscribe.html", {"state": _state(subscription), "subscription": subscription,
                                     "form_token": state.links.form_token(subscription_id)})


@public(errors=[errors.InvalidLink, errors.Forbidden], ok=PAGE_RESPONSE)
@post("/u/{token:str}", **PAGE, status_code=200, tags=["mailing list"], summary="Unsubscribe by an email's link")
async def unsubscribe_by_link(token: Token, request: Request[Any, Any, Any], state: State) -> Template:
    """Unsubscribe the link's subscription: the page's form (`form_token`), or RFC 8058 one-click
    (`List-Unsubscribe=One-Click`, form-encoded, no cookie). 200 with the page; unsubscribing
    again changes nothing. A form without a current token, or posted from another site, is 403
    `forbidden`; an invalid link 404 `invalid_link`."""
    subscription_id = state.links.subscription_of(token)
    form = await request.form()
    form_token = _text(form.get("form_token"))
    if form.get(_ONE_CLICK_NAME) == _ONE_CLICK_VALUE:
        how = "one-click"
    elif from_this_site(request, state.settings.public_url) and state.links.form_token_names(form_token,
                                                                                               subscription_id):
        how = "page"
    else:
        raise errors.Forbidden("this form has expired or did not come from the unsubscribe page; open the link "
                               "again and press its button")
    subscription = await mailing.unsubscribe_by_link(state.db, subscription_id, how)
    return page("unsubscribe.html", {"state": _state(subscription, done=True), "subscription": subscription,
                                     "form_token": ""})


def _text(value: object) -> str:
    """A form field's text; a file posted in its place is no text."""
    return value if isinstance(value, str) else ""


ROUTES = [unsubscribe_page, unsubscribe_by_link]
