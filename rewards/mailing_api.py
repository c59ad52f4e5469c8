"""HTTP handlers of the mailing list and Guest Connect (texts); the choices are in rewards.mailing."""

from __future__ import annotations

from litestar import Response, post
from litestar.datastructures import State
from litestar.params import JSONBody

from rewards import errors, mailing
from rewards.access import scoped
from rewards.controllers import answer
from rewards.schemas import (
    OfferIn,
    OfferOut,
    SmsInboundIn,
    SmsInboundOut,
    SubscriptionIn,
    SubscriptionOut,
    UnsubscribedOut,
    UnsubscribeIn,
)


@scoped("guest_services", errors=[errors.NotFound, errors.MemberNotActive], replays=True)
@post("/v1/subscriptions", tags=["mailing list"], summary="Subscribe an address")
async def subscribe(data: JSONBody[SubscriptionIn], state: State) -> Response[SubscriptionOut]:
    """Opt an address in: 201 when an opt-in is recorded (new, or a renewal of an unsubscribed
    address, same id), 200 with the same id when it is already subscribed."""
    created, out = await mailing.subscribe(state.db, data)
    return answer(created, out)


@scoped("guest_services")
@post("/v1/subscriptions/unsubscribe", status_code=200, tags=["mailing list"], summary="Unsubscribe an address")
async def unsubscribe(data: JSONBody[UnsubscribeIn], state: State) -> UnsubscribedOut:
    """Unsubscribe by link. Any well-formed address answers `unsubscribed`, known or not."""
    await mailing.unsubscribe(state.db, data)
    return UnsubscribedOut()


@scoped("checkout")
@post("/v1/sms/inbound", status_code=200, tags=["mailing list"], summary="Receive a guest's text")
async def sms_inbound(data: JSONBody[SmsInboundIn], state: State) -> SmsInboundOut:
    """A guest's text: STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT stop texts; START, UNSTOP
    restart them; anything else is ignored. `reply` is the text to send back, if any."""
    return await mailing.sms_inbound(state.db, data)


@scoped("admin", errors=[errors.IdempotencyConflict], replays=True)
@post("/v1/offers", tags=["mailing list"], summary="Make an offer")
async def make_offer(data: JSONBody[OfferIn], state: State) -> Response[OfferOut]:
    """Make an offer and send it to every active subscription of its channel. The code is the
    idempotency key: the same offer again answers 200; another value or channel, 409."""
    created, out = await mailing.make_offer(state.db, data)
    return answer(created, out)


ROUTES = [subscribe, unsubscribe, sms_inbound, make_offer]
