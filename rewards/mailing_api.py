"""HTTP handlers of the mailing list and Guest Connect (texts); the choices are in rewards.mailing."""

from __future__ import annotations

from litestar import Response, post
from litestar.datastructures import State
from litestar.params import JSONBody

from rewards import mailing
from rewards.controllers import answer, scoped
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


@post("/v1/subscriptions", **scoped("guest_services"), tags=["mailing list"])
async def subscribe(data: JSONBody[SubscriptionIn], state: State) -> Response[SubscriptionOut]:
    """Opt an address in: 201 when an opt-in is recorded (new, or a renewal of an unsubscribed
    address, same id), 200 with the same id when it is already subscribed."""
    created, out = await mailing.subscribe(state.db, data)
    return answer(created, out)


@post("/v1/subscriptions/unsubscribe", **scoped("guest_services"), status_code=200, tags=["mailing list"])
async def unsubscribe(data: JSONBody[UnsubscribeIn], state: State) -> UnsubscribedOut:
    """Unsubscribe by link. Any well-formed address answers `unsubscribed`, known or not."""
    await mailing.unsubscribe(state.db, data)
    return UnsubscribedOut()


@post("/v1/sms/inbound", **scoped("checkout"), status_code=200, tags=["mailing list"])
async def sms_inbound(data: JSONBody[SmsInboundIn], state: State) -> SmsInboundOut:
    """A guest's text: STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT stop texts; START, UNSTOP
    restart them; anything else is ignored. `reply` is the text to send back, if any."""
    return await mailing.sms_inbound(state.db, data)


@post("/v1/offers", **scoped("admin"), tags=["mailing list"])
async def make_offer(data: JSONBody[OfferIn], state: State) -> Response[OfferOut]:
    """Make an offer and send it to every active subscription of its channel. The code is the
    idempotency key: the same offer again answers 200; another value or channel, 409."""
    created, out = await mailing.make_offer(state.db, data)
    return answer(created, out)


ROUTES = [subscribe, unsubscribe, sms_inbound, make_offer]
