"""HTTP handlers of the mailing list and Guest Connect (texts); the choices are in rewards.mailing."""

from __future__ import annotations

import re
from typing import Any

from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from litestar import Request, Response, post
from litestar.datastructures import State
from litestar.params import JSONBody
from twilio.request_validator import SIGNATURE_HEADER, RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from rewards import errors, mailing
from rewards.access import public, scoped
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
    """A guest's text, as a register reports it. A first word of STOP, STOPALL, UNSUBSCRIBE,
    CANCEL, END, QUIT, REVOKE or OPT OUT (any case, punctuation ignored) stops texts; HELP and
    INFO are answered; START and UNSTOP are `refused` here (restarting needs the carrier's
    signed webhook or a new opt-in); anything else is ignored. `reply` is the text to send
    back, if any."""
    return await mailing.sms_inbound(state.db, data, state.replies)


_MESSAGE_SID = re.compile(r"^[A-Za-z0-9]{1,64}$")


TWIML = ResponseSpec(str, generate_examples=False, media_type="text/xml",
                     description="TwiML: the text to send back, if any",
                     examples=[Example(summary="STOP", value='<?xml version="1.0" encoding="UTF-8"?><Response><Message>'
                                                             'Westique: you are unsubscribed and will receive no more '
                                                             'texts. Reply START to resubscribe.</Message></Response>')])


@public(errors=[errors.Forbidden, errors.ValidationFailed], ok=TWIML)
@post("/v1/sms/inbound/twilio", status_code=200, media_type="text/xml", tags=["mailing list"],
      summary="Texts as Twilio posts them")
async def twilio_inbound(request: Request[Any, Any, Any], state: State) -> Response[str]:
    """Twilio's incoming-message webhook: a form-encoded body (`From`, `To`, `Body`, `MessageSid`,
    …) signed in `X-Twilio-Signature` with the account's auth token over `REWARDS_PUBLIC_URL`
    and this path. A missing or wrong signature, or no `REWARDS_TWILIO_AUTH_TOKEN`, is 403
    `forbidden`. Answers TwiML: the confirmation of a stop word, the welcome back of START or
    UNSTOP, the program's HELP text; an empty `<Response/>` for any other text."""
    validator: RequestValidator | None = state.twilio
    if validator is None:
        raise errors.Forbidden("texts from Twilio are not accepted: REWARDS_TWILIO_AUTH_TOKEN is not set")
    form = await request.form()
    # Twilio signs the URL it was given, which is ours as the public sees it, not as a proxy forwards it
    signed_url = state.settings.public_url + request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if not validator.validate(signed_url, form, request.headers.get(SIGNATURE_HEADER, "")):
        raise errors.Forbidden(f"the {SIGNATURE_HEADER} header is missing or does not sign this request")
    sender = form.get("From")
    if not isinstance(sender, str):
        raise errors.ValidationFailed("From, the sender's number, is required", field="From")
    body = form.get("Body")
    sid = form.get("MessageSid")
    out = await mailing.text_received(
        state.db, sender, body if isinstance(body, str) else "", state.replies, may_restart=True,
        message_id=sid if isinstance(sid, str) and _MESSAGE_SID.match(sid) else None, sender_field="From",
    )
    twiml = MessagingResponse()
    if out.reply is not None:
        twiml.message(out.reply)
    return Response(twiml.to_xml(), media_type="text/xml")


@scoped("admin", errors=[errors.IdempotencyConflict], replays=True)
@post("/v1/offers", tags=["mailing list"], summary="Make an offer")
async def make_offer(data: JSONBody[OfferIn], state: State) -> Response[OfferOut]:
    """Make an offer and send it to every active subscription of its channel: an `offer.delivery`
    event per message, with its text, its address and (email) the unsubscribe link and headers,
    for the retailer's sender (the events feed or a webhook). The code is the idempotency key:
    the same offer again answers 200 and sends nothing more; another value or channel, 409."""
    created, out = await mailing.make_offer(state.db, data, state.links)
    return answer(created, out)


ROUTES = [subscribe, unsubscribe, sms_inbound, twilio_inbound, make_offer]
