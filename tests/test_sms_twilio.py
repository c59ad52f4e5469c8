"""Texts as Twilio posts them: signed form bodies in, TwiML out.

Each request is signed here as Twilio signs it, by the `twilio` package's own
RequestValidator, over the public URL the service is configured with.
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient
from twilio.request_validator import RequestValidator

from rewards.app import create_app
from rewards.config import load_settings
from tests.conftest import auth

AUTH_TOKEN = "12345678901234567890123456789012"  # the shape of a Twilio auth token: 32 hex digits
PUBLIC_URL = "https://rewards.westique.example"
PATH = "/v1/sms/inbound/twilio"
OUR_NUMBER = "+14155550000"


@pytest.fixture(scope="module")
async def carrier(app: Any) -> Any:
    """The app as deployed behind a proxy at PUBLIC_URL, with the Twilio account's token."""
    settings = msgspec.structs.replace(load_settings(), twilio_auth_token=AUTH_TOKEN, public_url=PUBLIC_URL)
    async with AsyncTestClient(app=create_app(settings)) as test_client:
        yield test_client


def phone() -> str:
    return f"+1628{uuid.uuid4().int % 10**7:07d}"


def message(sender: str, body: str, **extra: str) -> dict[str, str]:
    """The fields of an incoming SMS as Twilio posts them."""
    sid = "SM" + uuid.uuid4().hex
    return {"ToCountry": "US", "ToState": "CA", "SmsMessageSid": sid, "NumMedia": "0", "ToCity": "SAN FRANCISCO",
            "FromZip": "94105", "SmsSid": sid, "FromState": "CA", "SmsStatus": "received", "FromCity": "SAN FRANCISCO",
            "Body": body, "FromCountry": "US", "To": OUR_NUMBER, "ToZip": "94105", "NumSegments": "1",
            "MessageSid": sid, "AccountSid": "AC" + "0" * 32, "From": sender, "ApiVersion": "2010-04-01", **extra}


def signature(params: dict[str, str], *, url: str = PUBLIC_URL + PATH, token: str = AUTH_TOKEN) -> str:
    return RequestValidator(token).compute_signature(url, params)


async def send(client: Any, params: dict[str, str], *, sign: dict[str, str] | None = None, path: str = PATH,
               **signing: Any) -> Any:
    """POST `params` form-encoded, signed over `sign` (default: the same params)."""
    headers = {"X-Twilio-Signature": signature(params if sign is None else sign, **signing)}
    return await client.post(path, data=params, headers=headers)


def replies(response: Any) -> list[str]:
    """The texts a TwiML answer sends back."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/xml")  # TwiML, as Twilio reads it
    root = ET.fromstring(response.content)
    assert root.tag == "Response"
    return [m.text or "" for m in root.findall("Message")]


async def subscribe(client: Any, keys: dict[str, str], number: str) -> int:
    response = await client.post("/v1/subscriptions", json={"channel": "sms", "address": number, "source": "store"},
                                 headers=auth(keys["guest_services"]))
    assert response.status_code == 201, response.text
    return response.json()["subscription_id"]


async def consent(db: Any, subscription_id: int) -> list[tuple[str, str, str | None]]:
    rows = await db.run("SELECT kind, source, detail FROM subscription_events WHERE subscription_id = $1 ORDER BY id",
                        subscription_id)
    return [(r["kind"], r["source"], r["detail"]) for r in rows]


async def status(db: Any, subscription_id: int) -> str:
    return (await db.run("SELECT status FROM subscriptions WHERE id = $1", subscription_id))[0]["status"]


async def counts(db: Any) -> tuple[int, int]:
    rows = await db.run("SELECT (SELECT count(*) FROM subscriptions) AS s, (SELECT count(*) FROM subscription_events) AS e")
    return rows[0]["s"], rows[0]["e"]


# --- keywords ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "keyword"), [("STOP", "STOP"), ("Stop.", "STOP"), ("STOP please", "STOP"),
                                               ("stop all", "STOP"), ("\uff33\uff34\uff2f\uff30", "STOP"),
                                               ("unsubscribe", "UNSUBSCRIBE"), ("Opt out", "OPTOUT")])
async def test_a_stop_word_stops_texts_and_is_confirmed_in_twiml(carrier, keys, db, body, keyword):
    number = phone()
    sid = await subscribe(carrier, keys, number)
    params = message(number, body)
    [reply] = replies(await send(carrier, params))
    assert "unsubscribed" in reply and "no more texts" in reply
    assert await status(db, sid) == "unsubscribed"
    assert await consent(db, sid) == [("subscribed", "store", None),
                                      ("unsubscribed", "sms", f"{keyword} {params['MessageSid']}")]


async def test_stop_from_an_unknown_number_is_confirmed_and_stores_nothing(carrier, db):
    before = await counts(db)
    [reply] = replies(await send(carrier, message(phone(), "STOP")))
    assert "unsubscribed" in reply
    assert await counts(db) == before


@pytest.mark.parametrize("body", ["START", "unstop", "Start!", "\uff53\uff54\uff41\uff52\uff54"])
async def test_start_after_stop_welcomes_back_and_renews(carrier, keys, db, body):
    number = phone()
    sid = await subscribe(carrier, keys, number)
    replies(await send(carrier, message(number, "STOP")))
    params = message(number, body)
    [reply] = replies(await send(carrier, params))
    assert "subscribed to texts again" in reply and "STOP" in reply
    assert await status(db, sid) == "active"
    word = "UNSTOP" if body == "unstop" else "START"
    assert (await consent(db, sid))[-1] == ("renewed", "sms", f"{word} {params['MessageSid']}")
    row = (await db.run("SELECT source, unsubscribed_at FROM subscriptions WHERE id = $1", sid))[0]
    assert (row["source"], row["unsubscribed_at"]) == ("sms", None)


async def test_start_on_an_active_subscription_records_nothing(carrier, keys, db):
    number = phone()
    sid = await subscribe(carrier, keys, number)
    [reply] = replies(await send(carrier, message(number, "START")))
    assert "subscribed" in reply
    assert len(await consent(db, sid)) == 1


async def test_start_from_an_unknown_number_subscribes_no_one(carrier, db):
    before = await counts(db)
    [reply] = replies(await send(carrier, message(phone(), "START")))
    assert "no text subscription" in reply and "HELP" in reply
    assert await counts(db) == before


@pytest.mark.parametrize("body", ["HELP", "help", "Info", "INFO please", "\uff28\uff25\uff2c\uff30"])
async def test_help_names_the_program_how_to_stop_and_guest_services(carrier, keys, db, body):
    number = phone()
    sid = await subscribe(carrier, keys, number)
    [reply] = replies(await send(carrier, message(number, body)))
    for needed in ("Westique Guest Connect", "Reply STOP", "1-800-555-0199", "guestservices@westique.example"):
        assert needed in reply, needed
    assert await status(db, sid) == "active" and len(await consent(db, sid)) == 1


@pytest.mark.parametrize("body", ["", "Thanks!", "yes", "STOPP", "please stop", "<Response/>"])
async def test_any_other_text_gets_an_empty_answer_and_changes_nothing(carrier, keys, db, body):
    number = phone()
    sid = await subscribe(carrier, keys, number)
    before = await counts(db)
    assert replies(await send(carrier, message(number, body))) == []
    assert await status(db, sid) == "active" and await counts(db) == before


async def test_a_reply_is_valid_xml_whatever_the_settings_say(app, db):
    """The HELP text carries settings into XML: TwiML escapes them."""
    settings = msgspec.structs.replace(load_settings(), twilio_auth_token=AUTH_TOKEN, public_url=PUBLIC_URL,
                                       guest_services_email="<desk> & co@westique.example")
    async with AsyncTestClient(app=create_app(settings)) as other:
        [reply] = replies(await send(other, message(phone(), "HELP")))
    assert "<desk> & co@westique.example" in reply


# --- signatures ----------------------------------------------------------------------------------


def assert_forbidden(response: Any) -> None:
    assert response.status_code == 403, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "forbidden"


async def test_unsigned_or_wrongly_signed_requests_are_forbidden_and_change_nothing(carrier, keys, db):
    number = phone()
    sid = await subscribe(carrier, keys, number)
    params = message(number, "STOP")
    before = await counts(db)
    assert_forbidden(await carrier.post(PATH, data=params))  # no signature
    assert_forbidden(await carrier.post(PATH, data=params, headers={"X-Twilio-Signature": ""}))
    assert_forbidden(await send(carrier, params, token="another account's token 00000000"))
    # signed over the address the request reached (as a proxy forwards it), not the public one
    assert_forbidden(await send(carrier, params, url="http://testserver.local" + PATH))
    assert_forbidden(await send(carrier, params, url=PUBLIC_URL.replace("https", "http") + PATH))
    # the body changed after signing: a START slipped in, a sender swapped
    assert_forbidden(await send(carrier, message(number, "START"), sign=params))
    assert_forbidden(await send(carrier, {**params, "From": phone()}, sign=params))
    assert_forbidden(await send(carrier, {**params, "Extra": "1"}, sign=params))
    assert await status(db, sid) == "active" and await counts(db) == before


async def test_without_an_auth_token_configured_every_request_is_forbidden(client, keys, db):
    """The session's app has no REWARDS_TWILIO_AUTH_TOKEN: signed or not, nothing gets in."""
    number = phone()
    sid = await subscribe(client, keys, number)
    params = message(number, "STOP")
    for token in (AUTH_TOKEN, ""):
        signed = RequestValidator(token).compute_signature("http://testserver.local" + PATH, params)
        assert_forbidden(await client.post(PATH, data=params, headers={"X-Twilio-Signature": signed}))
    assert_forbidden(await send(client, params))
    assert await status(db, sid) == "active"


async def test_signatures_with_the_default_port_or_a_query_string_are_accepted(carrier, keys, db):
    """Twilio signs the URL exactly as configured in the console, query string included; the
    validator also accepts the URL with the scheme's default port written out."""
    first, second = phone(), phone()
    a, b = await subscribe(carrier, keys, first), await subscribe(carrier, keys, second)
    replies(await send(carrier, message(first, "STOP"), url="https://rewards.westique.example:443" + PATH))
    replies(await send(carrier, message(second, "STOP"), path=PATH + "?store=S012",
                       url=PUBLIC_URL + PATH + "?store=S012"))
    assert (await status(db, a), await status(db, b)) == ("unsubscribed", "unsubscribed")


async def test_a_signed_request_without_a_sender_is_a_validation_error(carrier, db):
    before = await counts(db)
    for params in ({"Body": "STOP", "MessageSid": "SM1"}, {"From": "not a number", "Body": "STOP"}):
        response = await send(carrier, params)
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "validation_error" and response.json()["field"] == "From"
    assert await counts(db) == before


async def test_a_json_body_is_not_a_twilio_request(carrier, keys, db):
    number = phone()
    sid = await subscribe(carrier, keys, number)
    response = await carrier.post(PATH, json={"From": number, "Body": "STOP"},
                                  headers={"X-Twilio-Signature": signature({})})
    # a JSON body has no form fields: the signature over none of them holds, and no sender is given
    assert response.status_code == 422 and response.json()["field"] == "From"
    assert await status(db, sid) == "active"
