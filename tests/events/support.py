"""What the events tests share: reading the whole feed, and a webhook receiver that checks every
delivery with the `standardwebhooks` package, as a receiver would."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from litestar.testing import AsyncTestClient
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.conftest import auth


async def read_all(client: AsyncTestClient, token: str, *, after: str | None = None, limit: int = 1000,
                   types: str | None = None) -> tuple[list[dict[str, Any]], str]:
    """Every event after `after`, following next_cursor until an empty page; and the last cursor."""
    items: list[dict[str, Any]] = []
    while True:
        params: dict[str, Any] = {"limit": limit}
        if after is not None:
            params["after"] = after
        if types is not None:
            params["types"] = types
        answer = await client.get("/v1/events", params=params, headers=auth(token))
        assert answer.status_code == 200, answer.text
        page = answer.json()
        items += page["items"]
        after = page["next_cursor"]
        if not page["items"]:
            return items, after


# --- a webhook receiver ----------------------------------------------------------------------------


@dataclass
class Received:
    webhook_id: str
    headers: dict[str, str]
    body: bytes
    verified: bool
    answered: int

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Receiver:
    """An HTTP endpoint in a thread of its own. Each POST is verified with the receiver's secret
    by the Standard Webhooks library (a wrong signature answers 401); `fail_first` answers 500 to
    the first attempts of each webhook-id; `delay` holds every answer back that long."""

    secret: str | None = None
    fail_first: int = 0
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)
    arrived: int = 0
    """Requests that arrived, answered or not yet (a delayed answer is counted at once)."""
    in_flight: set[str] = field(default_factory=set)
    """The webhook-ids of the requests being answered right now."""
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                receiver.arrived += 1
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                webhook_id = headers.get("webhook-id", "")
                receiver.in_flight.add(webhook_id)
                if receiver.delay:
                    time.sleep(receiver.delay)
                verified = False
                if receiver.secret is not None:
                    try:
                        Webhook(receiver.secret).verify(body, headers)
                        verified = True
                    except WebhookVerificationError:
                        verified = False
                seen = sum(1 for r in list(receiver.received) if r.webhook_id == webhook_id)
                status = 401 if not verified else 500 if seen < receiver.fail_first else 204
                receiver.received.append(Received(webhook_id, headers, body, verified, status))
                receiver.in_flight.discard(webhook_id)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def accepted(self) -> list[Received]:
        return [r for r in list(self.received) if r.answered == 204]
