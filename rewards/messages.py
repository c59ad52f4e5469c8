"""The messages this service asks the retailer's sender to send, as `offer.delivery` events carry
them: pure, no I/O (the unsubscribe link is signed by `rewards.unsubscribe_links`).

An email carries its subject, its text ending with the unsubscribe link, `unsubscribe_url`, and
the `List-Unsubscribe` / `List-Unsubscribe-Post` headers of RFC 2369 and RFC 8058, so a sender
that copies them makes the mailbox's own "Unsubscribe" button work. A text names the program and
says how to stop, as carriers require of every message.
"""

from __future__ import annotations

from typing import Any

from rewards.pages.words import money
from rewards.texting import PROGRAM
from rewards.unsubscribe_links import UnsubscribeLinks

BRAND = "Westique"


def offer_text(channel: str, code: str, value_cents: int, unsubscribe_url: str | None = None) -> str:
    if channel == "sms":
        return (f"{PROGRAM}: {money(value_cents)} off your next {BRAND} purchase with code {code}. "
                "Reply STOP to stop, HELP for help.")
    return (f"Here is {money(value_cents)} off your next purchase at {BRAND}: show or enter the code {code} at "
            f"checkout, in a store or online.\n\n"
            f"You receive this email because you joined the {BRAND} mailing list. To stop receiving offers, "
            f"unsubscribe: {unsubscribe_url}")


def offer_subject(code: str, value_cents: int) -> str:
    return f"Your {BRAND} offer: {money(value_cents)} off with code {code}"


def offer_delivery(code: str, value_cents: int, channel: str, subscription_id: int, address: str,
                   links: UnsubscribeLinks) -> dict[str, Any]:
    """The data of the `offer.delivery` event of one message: everything the sender needs."""
    data: dict[str, Any] = {"subscription_id": subscription_id, "channel": channel, "address": address,
                            "offer_code": code, "value_cents": value_cents}
    if channel == "email":
        url = links.unsubscribe_url(subscription_id)
        data.update(subject=offer_subject(code, value_cents), text=offer_text(channel, code, value_cents, url),
                    unsubscribe_url=url, headers=links.email_headers(subscription_id))
    else:
        data["text"] = offer_text(channel, code, value_cents)
    return data
