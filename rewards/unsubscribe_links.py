"""Unsubscribe links: `REWARDS_PUBLIC_URL/u/{token}`, one per subscription, valid for good.

The token is the subscription's id signed with the service's secret key by `itsdangerous`
(HMAC-SHA256, with a salt that keeps these signatures apart from any other we make). It names the subscription and nothing else: no address, no expiry, so a link in an
email read years later still works, and it cannot be forged or pointed at another
subscription without the key. What the sender of an email needs for RFC 8058 one-click is
`unsubscribe_url()` and `email_headers()`.

The page's own form carries a second, short-lived token (`form_token()`), signed with another
salt and bound to the same subscription: the link itself is the capability, and the form
token tells a person who pressed the page's button from something else posting to the link.
"""

from __future__ import annotations

import hashlib

from itsdangerous import BadData, URLSafeSerializer, URLSafeTimedSerializer

from rewards import errors

LINK_SALT = "rewards.unsubscribe-link"
FORM_SALT = "rewards.unsubscribe-form"
FORM_MAX_AGE_SECONDS = 24 * 3600  # a page left open for a day asks to be opened again
MAX_TOKEN_LENGTH = 200  # ours are about 50 characters; longer is not worth reading
ONE_CLICK = "List-Unsubscribe=One-Click"


class UnsubscribeLinks:
    """Makes and reads the tokens of unsubscribe links."""

    def __init__(self, key: str, public_url: str) -> None:
        signing = {"digest_method": hashlib.sha256}
        self._links = URLSafeSerializer(key, salt=LINK_SALT, signer_kwargs=signing)
        self._forms = URLSafeTimedSerializer(key, salt=FORM_SALT, signer_kwargs=signing)
        self._base = public_url.rstrip("/")

    def token(self, subscription_id: int) -> str:
        return self._links.dumps(subscription_id)

    def unsubscribe_url(self, subscription_id: int) -> str:
        """The subscription's unsubscribe link, for an email's body and its List-Unsubscribe header."""
        return f"{self._base}/u/{self.token(subscription_id)}"

    def email_headers(self, subscription_id: int) -> dict[str, str]:
        """The headers of RFC 2369 and RFC 8058 that make mailbox providers show "Unsubscribe"
        and POST `List-Unsubscribe=One-Click` to the link when the guest presses it."""
        return {"List-Unsubscribe": f"<{self.unsubscribe_url(subscription_id)}>", "List-Unsubscribe-Post": ONE_CLICK}

    def subscription_of(self, token: str) -> int:
        """The subscription a link's token names; `InvalidLink` if it is not one we signed."""
        if len(token) <= MAX_TOKEN_LENGTH:
            try:
                found = self._links.loads(token)
            except BadData:
                found = None
            if type(found) is int and found >= 1:
                return found
        raise errors.InvalidLink("this unsubscribe link is not valid: it may have been cut short or changed; "
                                 "use the link from the email as it came")

    def form_token(self, subscription_id: int) -> str:
        return self._forms.dumps(subscription_id)

    def form_token_names(self, token: str, subscription_id: int) -> bool:
        """Whether `token` is a current form token of this subscription's page."""
        try:
            return bool(self._forms.loads(token, max_age=FORM_MAX_AGE_SECONDS) == subscription_id)
        except BadData:
            return False
