"""HTTP handlers for the guest's own access: sign-in links to the page, and the access export."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.params import JSONBody

from rewards import errors, export, sign_in
from rewards.access import scoped
from rewards.auth import GUEST
from rewards.controllers import MemberPath
from rewards.schemas import SignInLinkIn, SignInLinkOut

# personal data: no cache along the way keeps a copy
NO_STORE = {"Cache-Control": "no-store"}


@scoped("guest_services", "web_shop", errors=[errors.NotFound, errors.MemberNotActive])
@post("/v1/members/{member_id:str}/sign-in-links", status_code=201, tags=["members"],
      summary="Send a member a one-time link to their page")
async def create_sign_in_link(member_id: MemberPath, data: JSONBody[SignInLinkIn], state: State,
                              request: Request[Any, Any, Any]) -> Response[SignInLinkOut]:
    """A link that signs the member in to their page (`/me`) once, within 15 minutes. The
    `sign_in_link.created` event carries it, with the member's email or phone (`channel`), to
    the retailer's sender; the answer carries it too, for the web shop to redirect its signed-in
    customer. Only the hash of its token is kept. A member may be sent 5 links an hour (429
    `rate_limited` after that, with `retry_after`); a cancelled member is `member_not_active`."""
    link = await sign_in.create_link(state.db, member_id, data.channel, key_id=request.state.principal.key_id,
                                     public_url=state.settings.public_url)
    return Response(link, status_code=201, headers=NO_STORE)


@scoped("guest_services", GUEST, errors=[errors.NotFound])
@get("/v1/members/{member_id:str}/export", tags=["members"], summary="Export everything held about a member")
async def export_member(member_id: MemberPath, state: State) -> Response[export.MemberExport]:
    """The member's data, as JSON (the right to know): profile, consents with the terms and
    notice versions and their published texts, purchases with their lines, returns, ledger
    entries, rewards, subscriptions with their consent events and offers, events, sign-ins,
    and the categories, sources and purposes of the program's disclosures."""
    return Response(await export.export(state.db, member_id), headers=NO_STORE)


ROUTES = [create_sign_in_link, export_member]
