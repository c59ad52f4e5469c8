"""The guest's own page, `/me`: points, card, rewards with their barcodes, activity, emails and
texts, their data, cancelling, signing out. Reached from a one-time sign-in link
(`/me/sign-in?token=…`, rewards.sign_in) and kept by a session cookie (rewards.pages.signed_in).

Server-rendered HTML with the one inline stylesheet and no script (rewards.pages: the CSP and
`Cache-Control: no-store` on every answer); every form carries its CSRF token; a session that
changes something (a subscription, the cancellation) is recorded as its actor. These pages are
for browsers, so they are left out of the API's OpenAPI document; docs/guest.md describes them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.params import Parameter
from litestar.response import Redirect, Template

from rewards import errors, export, sign_in
from rewards.auth import actor_of
from rewards.engine import Cancel, unwrap
from rewards.mailing import choose_on_page
from rewards.pages import HEADERS, page
from rewards.pages import words
from rewards.pages.barcodes import code128_svg
from rewards.pages.guest_data import activity, home, member, subscribed
from rewards.pages.signed_in import SessionCookies, posted_form, session, signed_in

ACTIVITY_PAGE_SIZE = 20
SOON_DAYS = 7  # a reward this close to its expiry is flagged
MAX_TOKEN_LENGTH = 200

GUEST_PAGE: dict[str, Any] = {"opt": {"page": True}, "include_in_schema": False}
SIGNED_IN: dict[str, Any] = {**GUEST_PAGE, "guards": [signed_in]}


def _cookies(state: State) -> SessionCookies:
    cookies: SessionCookies = state.session_cookies
    return cookies


def _zone(state: State) -> ZoneInfo:
    return ZoneInfo(state.settings.timezone)


def _page(request: Request[Any, Any, Any], template: str, here: str, **context: Any) -> Template:
    """A signed-in page: the menu marks `here`, and its forms get the session's CSRF token."""
    csrf = _cookies(request.app.state).csrf_token(session(request))
    return page(f"guest/{template}", {"here": here, "csrf_token": csrf, **context})


@get("/me/sign-in", **GUEST_PAGE)
async def sign_in_by_link(state: State, token: Annotated[str, Parameter(description="the link's token")] = ""
                          ) -> Redirect:
    """Follow a sign-in link: start a session and go to the page. A link used or expired: 410."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise errors.InvalidLink("this sign-in link is not complete; open it again from the email or text")
    started = await sign_in.start_session(state.db, token)
    return Redirect("/me", status_code=303, headers=HEADERS, cookies=[_cookies(state).cookie(started.token)])


@get("/me", **SIGNED_IN)
async def my_rewards(request: Request[Any, Any, Any], state: State) -> Template:
    """Points, the progress to the next reward, the card's barcode, and each open reward's."""
    found, open_rewards = await home(state.db, session(request).member_id)
    rules = await state.rulebook.current()
    zone, threshold = _zone(state), rules.reward_threshold_point_cents
    progress = words.progress(found.point_cents, threshold)
    return _page(
        request, "home.html", "home",
        first_name=words.first_name(found.name), points=words.points(found.point_cents),
        behind=found.point_cents < 0, to_next=words.points(threshold - progress), progress_value=progress,
        progress_max=threshold, percent=100 * progress // threshold, reward_value=words.money(rules.reward_value_cents),
        threshold_points=rules.reward_threshold_points,
        card_number=words.card_number(found.card_number or ""),
        card_barcode=code128_svg(found.card_number, label=f"Barcode of card number {found.card_number}")
        if found.card_number else "",
        rewards=[{
            "code": r.code, "value": words.money(r.value_cents),
            "expires": words.expires_in(r.expires_at, found.now, zone), "expires_on": words.day(r.expires_at, zone),
            "soon": words.days_until(r.expires_at, found.now, zone) <= SOON_DAYS,
            "barcode": code128_svg(r.code, label=f"Barcode of reward {r.code}"),
        } for r in open_rewards],
    )


@get("/me/activity", **SIGNED_IN)
async def my_activity(request: Request[Any, Any, Any], state: State,
                      before: Annotated[str, Parameter(description="the entry to start before")] = "") -> Template:
    """The ledger in words, newest first, ACTIVITY_PAGE_SIZE entries a page (`before`: an entry's id)."""
    start = int(before) if before.isdigit() and len(before) < 19 else None
    lines, more = await activity(state.db, session(request).member_id, before=start or 2**62,
                                 limit=ACTIVITY_PAGE_SIZE)
    zone = _zone(state)
    return _page(
        request, "activity.html", "activity",
        lines=[{"day": words.day(x.occurred_at, zone), "words": words.explain(x.entry),
                "amount": words.signed_points(x.entry.point_cents), "point_cents": x.entry.point_cents}
               for x in lines],
        newest=start is not None, older=lines[-1].entry_id if more else None,
    )


@get("/me/subscriptions", **SIGNED_IN)
async def my_subscriptions(request: Request[Any, Any, Any], state: State,
                           saved: Annotated[str, Parameter(description="1: just saved")] = "") -> Template:
    """Email and texts, on or off."""
    found = await member(state.db, session(request).member_id)
    return _page(request, "subscriptions.html", "subscriptions", saved=saved == "1", email=found.email,
                 phone=words.phone(found.phone), on=await subscribed(state.db, found.email, found.phone))


@post("/me/subscriptions", **SIGNED_IN)
async def change_subscriptions(request: Request[Any, Any, Any], state: State) -> Redirect:
    """Turn email and texts on or off as the form's boxes say; the session is recorded as who did."""
    form = await posted_form(request)
    guest = session(request)
    found = await member(state.db, guest.member_id)
    now = await subscribed(state.db, found.email, found.phone)
    channels: tuple[tuple[Literal["email", "sms"], str | None], ...] = (("email", found.email), ("sms", found.phone))
    for channel, address in channels:
        wanted = form.get(channel) == "on"
        if address and wanted != now[channel]:
            await choose_on_page(state.db, guest.member_id, channel, address, wanted, session_id=guest.id)
    return Redirect("/me/subscriptions?saved=1", status_code=303, headers=HEADERS)


@get("/me/data", **SIGNED_IN)
async def my_data(request: Request[Any, Any, Any], state: State) -> Template:
    """What the download holds, and the button."""
    return _page(request, "data.html", "data", guest_services_phone=state.settings.guest_services_phone,
                 guest_services_email=state.settings.guest_services_email)


@get("/me/data/export.json", **SIGNED_IN)
async def download_my_data(request: Request[Any, Any, Any], state: State) -> Response[bytes]:
    """The access export (as `GET /v1/members/{id}/export`), as a file to keep."""
    body = msgspec.json.encode(await export.export(state.db, session(request).member_id))
    return Response(body, media_type="application/json", headers={
        **HEADERS, "Content-Disposition": 'attachment; filename="westique-rewards-data.json"'})


@get("/me/cancel", **SIGNED_IN)
async def confirm_cancel(request: Request[Any, Any, Any], state: State) -> Template:
    """What cancelling would give up, and the button that does it."""
    found, open_rewards = await home(state.db, session(request).member_id)
    return _page(request, "cancel.html", "cancel", forfeit=found.point_cents > 0, points=words.points(found.point_cents),
                 reward_count=len(open_rewards), reward_total=words.money(sum(r.value_cents for r in open_rewards)))


@post("/me/cancel", status_code=200, **SIGNED_IN)
async def cancel_membership(request: Request[Any, Any, Any], state: State) -> Template:
    """Cancel through the engine, the session as the actor; the cancellation ends the session."""
    await posted_form(request)
    _, out = unwrap(await state.engine.submit(Cancel(session(request).member_id, actor_of(request))))
    answer = page("guest/cancelled.html", {"forfeited": words.points(out.point_cents_forfeited)
                                           if out.point_cents_forfeited else "", "voided": len(out.rewards_voided)})
    answer.cookies.append(_cookies(state).cleared())
    return answer


@post("/me/sign-out", status_code=200, **SIGNED_IN)
async def sign_out(request: Request[Any, Any, Any], state: State) -> Template:
    """End the session and forget its cookie."""
    await posted_form(request)
    await sign_in.end_session(state.db, session(request).id)
    answer = page("guest/signed_out.html", {})
    answer.cookies.append(_cookies(state).cleared())
    return answer


ROUTES = [sign_in_by_link, my_rewards, my_activity, my_subscriptions, change_subscriptions, my_data,
          download_my_data, confirm_cancel, cancel_membership, sign_out]
