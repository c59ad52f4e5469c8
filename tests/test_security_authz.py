"""Who may do what: every route of the app × every kind of caller → the expected answer.

The routes come from the app itself (plugins included), so an endpoint added later is
covered at once, and one missing from EXPECTED below fails `test_every_route_has_an_entry`.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from rewards.app import create_app
from rewards.auth import GUEST, create_key
from rewards.config import load_settings
from tests.conftest import auth, enrollment, purchase

PUBLIC = frozenset({"public"})
# the carrier's signature, not a token: with no REWARDS_TWILIO_AUTH_TOKEN here, every caller gets 403
CARRIER = frozenset({"carrier"})
# the guest's page session (a cookie from a sign-in link), not a token: every bearer caller gets 401
SESSION = frozenset({"session"})
PROBLEM = "application/problem+json"

# which scopes reach each endpoint (docs/api.md); GUEST means the guest token of the path's member.
EXPECTED: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/health"): PUBLIC,
    ("GET", "/ready"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("GET", "/schema"): PUBLIC,
    ("GET", "/schema/openapi.json"): PUBLIC,
    ("GET", "/schema/swagger"): PUBLIC,
    ("GET", "/schema/oauth2-redirect.html"): PUBLIC,
    ("GET", "/schema/assets/{file_path}"): PUBLIC,
    ("GET", "/schema/{path}"): PUBLIC,
    ("POST", "/v1/members"): frozenset({"guest_services"}),
    ("GET", "/v1/members"): frozenset({"checkout", "guest_services"}),
    ("PATCH", "/v1/members/{member_id}"): frozenset({"guest_services"}),
    ("POST", "/v1/members/{member_id}/adjustments"): frozenset({"guest_services", "admin"}),
    ("POST", "/v1/members/{member_id}/merge"): frozenset({"guest_services"}),
    ("GET", "/v1/keys"): frozenset({"admin"}),
    ("DELETE", "/v1/keys/{key_id}"): frozenset({"admin"}),
    ("GET", "/v1/members/{member_id}"): frozenset({"guest_services", GUEST}),
    ("POST", "/v1/members/{member_id}/cancel"): frozenset({"guest_services", GUEST}),
    ("DELETE", "/v1/members/{member_id}/personal-data"): frozenset({"guest_services"}),
    ("GET", "/v1/members/{member_id}/balance"): frozenset({"checkout", "guest_services", GUEST}),
    ("GET", "/v1/members/{member_id}/activity"): frozenset({"guest_services", GUEST}),
    ("POST", "/v1/purchases"): frozenset({"checkout"}),
    ("POST", "/v1/purchases/quote"): frozenset({"checkout"}),
    ("POST", "/v1/purchases/{purchase_id}/returns"): frozenset({"checkout"}),
    ("GET", "/v1/rewards/{code}"): frozenset({"checkout"}),
    ("POST", "/v1/subscriptions"): frozenset({"guest_services"}),
    ("POST", "/v1/subscriptions/unsubscribe"): frozenset({"guest_services"}),
    ("POST", "/v1/sms/inbound"): frozenset({"checkout"}),
    ("POST", "/v1/sms/inbound/twilio"): CARRIER,
    # the signed link is the credential: any caller with a bad token gets 404 invalid_link
    ("GET", "/u/{token}"): PUBLIC,
    ("POST", "/u/{token}"): PUBLIC,
    ("POST", "/v1/offers"): frozenset({"admin"}),
    ("GET", "/v1/reports/incentive-value"): frozenset({"compliance"}),
    ("GET", "/v1/reports/liability"): frozenset({"compliance"}),
    ("GET", "/v1/reports/stores"): frozenset({"compliance", "admin"}),
    ("GET", "/v1/program/rules"): frozenset({"admin"}),
    ("PUT", "/v1/program/rules"): frozenset({"admin"}),
    ("GET", "/v1/program/disclosures"): frozenset({"admin"}),
    ("PUT", "/v1/program/disclosures"): frozenset({"admin"}),
    ("GET", "/v1/program/documents"): frozenset({"admin"}),
    ("PUT", "/v1/program/documents"): frozenset({"admin"}),
    ("DELETE", "/v1/subscriptions/personal-data"): frozenset({"guest_services"}),
    ("POST", "/v1/privacy-requests"): frozenset({"guest_services"}),
    ("GET", "/v1/privacy-requests"): frozenset({"compliance"}),
    ("GET", "/v1/privacy-requests/{request_id}"): frozenset({"guest_services", "compliance"}),
    ("POST", "/v1/privacy-requests/{request_id}/confirm"): frozenset({"guest_services"}),
    ("POST", "/v1/privacy-requests/{request_id}/complete"): frozenset({"guest_services"}),
    ("POST", "/v1/privacy-requests/{request_id}/deny"): frozenset({"guest_services"}),
    ("POST", "/v1/members/{member_id}/sign-in-links"): frozenset({"guest_services", "web_shop"}),
    ("GET", "/v1/members/{member_id}/export"): frozenset({"guest_services", GUEST}),
    # the link is the credential: any caller without one gets 404 invalid_link
    ("GET", "/me/sign-in"): PUBLIC,
    ("GET", "/me"): SESSION,
    ("GET", "/me/activity"): SESSION,
    ("GET", "/me/subscriptions"): SESSION,
    ("POST", "/me/subscriptions"): SESSION,
    ("GET", "/me/data"): SESSION,
    ("GET", "/me/data/export.json"): SESSION,
    ("GET", "/me/cancel"): SESSION,
    ("POST", "/me/cancel"): SESSION,
    ("POST", "/me/sign-out"): SESSION,
    ("GET", "/v1/events"): frozenset({"integrations"}),
    ("POST", "/v1/webhooks"): frozenset({"admin"}),
    ("GET", "/v1/webhooks"): frozenset({"admin"}),
    ("DELETE", "/v1/webhooks/{webhook_id}"): frozenset({"admin"}),
    ("GET", "/v1/webhooks/{webhook_id}/deliveries"): frozenset({"admin"}),
    ("POST", "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/retry"): frozenset({"admin"}),
    ("POST", "/v1/webhooks/{webhook_id}/deliveries/retry-failed"): frozenset({"admin"}),
}
# routes that cancel or erase the member of the path: each gets a member of its own
ENDS_THE_MEMBER = {("POST", "/v1/members/{member_id}/cancel"), ("DELETE", "/v1/members/{member_id}/personal-data")}

STAFF = ("checkout", "guest_services", "compliance", "admin", "web_shop", "integrations")
# guests before staff: a staff caller allowed to cancel or erase the member ends its guest token
CALLERS = ("no_token", "not_bearer", "unknown_token", "revoked_token", "guest_self", "guest_other", *STAFF)
_PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")


def app_routes() -> list[tuple[str, str]]:
    """(method, path) of every route the app serves, path parameters without their types."""
    app = create_app(load_settings())
    found = set()
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            for method in handler.http_methods:
                if method not in ("OPTIONS", "HEAD"):
                    found.add((method, _PARAM.sub(r"{\1}", route.path)))
    return sorted(found)


ROUTES = app_routes()


def test_every_route_has_an_entry() -> None:
    missing = [route for route in ROUTES if route not in EXPECTED]
    assert not missing, f"routes with no expected scopes in EXPECTED: {missing}"


@pytest.fixture(scope="module")
async def world(client: AsyncTestClient, db: Any, keys: dict[str, str]) -> dict[str, Any]:
    """Two members with guest tokens, a purchase that issued a reward, a revoked key."""
    made = []
    for _ in range(2):
        answer = await client.post("/v1/members", json=enrollment(), headers=auth(keys["guest_services"]))
        assert answer.status_code == 201, answer.text
        made.append(answer.json()["member_id"])
    member, other = made
    bought = purchase(member, 30_000)
    posted = await client.post("/v1/purchases", json=bought, headers=auth(keys["checkout"]))
    assert posted.status_code == 201, posted.text
    revoked = await create_key(db, ["checkout", "guest_services", "compliance", "admin"])
    await db.run("UPDATE api_keys SET revoked_at = now() WHERE token_hash = sha256($1::bytea)", revoked.encode())

    async def member_of_its_own() -> tuple[int, dict[str, str]]:
        """A member and its guest token, for a route that cancels or erases it."""
        answer = await client.post("/v1/members", json=enrollment(), headers=auth(keys["guest_services"]))
        assert answer.status_code == 201, answer.text
        made = answer.json()["member_id"]
        return made, auth(await create_key(db, [GUEST], member_id=made))

    # a key of no use, for the route that revokes keys
    spare = await create_key(db, ["checkout"], label="spare")
    [spare_id] = await db.run("SELECT id FROM api_keys WHERE token_hash = sha256($1::bytea)", spare.encode())
    return {
        "member": member,
        "member_of_its_own": member_of_its_own,
        "key_id": spare_id["id"],
        "purchase_id": bought["purchase_id"],
        "code": posted.json()["rewards_issued"][0]["code"],
        "headers": {
            "no_token": {},
            "not_bearer": {"Authorization": f"Basic {keys['all']}"},
            "unknown_token": auth("wr_" + "x" * 43),
            "revoked_token": auth(revoked),
            **{scope: auth(keys[scope]) for scope in STAFF},
            "guest_self": auth(await create_key(db, [GUEST], member_id=member)),
            "guest_other": auth(await create_key(db, [GUEST], member_id=other)),
        },
    }


def expected_status(route: tuple[str, str], caller: str) -> str:
    """'allowed', or the status the caller must get."""
    allowed = EXPECTED[route]
    if allowed == PUBLIC:
        return "allowed"
    if allowed == CARRIER:
        return "403"
    if allowed == SESSION:
        return "401"
    if caller in ("no_token", "not_bearer", "unknown_token", "revoked_token"):
        return "401"
    if caller in STAFF:
        return "allowed" if caller in allowed else "403"
    if caller == "guest_self" and GUEST in allowed and "{member_id}" in route[1]:
        return "allowed"
    return "403"


@pytest.mark.parametrize("route", [r for r in ROUTES if r in EXPECTED], ids=lambda r: f"{r[0]} {r[1]}")
async def test_authorization_matrix(route: tuple[str, str], client: AsyncTestClient, world: dict[str, Any]) -> None:
    method, template = route
    member, headers = world["member"], world["headers"]
    if route in ENDS_THE_MEMBER:
        member, own_token = await world["member_of_its_own"]()
        headers = {**headers, "guest_self": own_token}
    values = {"member_id": member, "purchase_id": world["purchase_id"], "code": world["code"],
              "key_id": world["key_id"],
              "path": "openapi.yaml", "file_path": "swagger-ui.css"}
    path = _PARAM.sub(lambda m: str(values.get(m.group(1), 1)), template)
    # a body no endpoint accepts: an allowed caller gets a 4xx from validation and writes nothing
    body = {"authorization_matrix_probe": True} if method in ("POST", "PUT", "PATCH") else None
    wrong = []
    for caller in CALLERS:
        answer = await client.request(method, path, json=body, headers=headers[caller])
        want = expected_status(route, caller)
        ok = answer.status_code not in (401, 403) and answer.status_code < 500 if want == "allowed" \
            else answer.status_code == int(want)
        if answer.status_code >= 400 and not answer.headers.get("content-type", "").startswith(PROBLEM):
            ok = False
        if not ok:
            wrong.append(f"{caller}: expected {want}, got {answer.status_code} {answer.text[:160]}")
    assert not wrong, f"{method} {path}:\n" + "\n".join(wrong)


async def test_a_guest_token_never_reads_or_changes_another_member(
    client: AsyncTestClient, world: dict[str, Any], make_member: Any, db: Any
) -> None:
    victim = await make_member()
    intruder = world["headers"]["guest_self"]
    for method, path in [("GET", f"/v1/members/{victim}"), ("GET", f"/v1/members/{victim}/balance"),
                         ("GET", f"/v1/members/{victim}/activity"), ("POST", f"/v1/members/{victim}/cancel"),
                         ("DELETE", f"/v1/members/{victim}/personal-data")]:
        answer = await client.request(method, path, headers=intruder)
        assert answer.status_code == 403, (method, path, answer.text)
        assert answer.json()["code"] == "forbidden"
    [row] = await db.run("SELECT status, name FROM members WHERE id = $1", victim)
    assert row["status"] == "active" and row["name"] is not None


@pytest.fixture(scope="module")
async def strict_client(app: Any) -> Any:
    """The app again, with a guest rate limit of 3 requests a minute."""
    settings = msgspec.structs.replace(load_settings(), guest_rate_limit=3)
    async with AsyncTestClient(app=create_app(settings)) as test_client:
        yield test_client


async def test_guest_tokens_are_rate_limited_with_429(strict_client: AsyncTestClient, make_member: Any,
                                                      db: Any, keys: dict[str, str]) -> None:
    member, other = await make_member(), await make_member()
    guest = auth(await create_key(db, [GUEST], member_id=member))
    for _ in range(3):
        assert (await strict_client.get(f"/v1/members/{member}/balance", headers=guest)).status_code == 200
    limited = await strict_client.get(f"/v1/members/{member}/balance", headers=guest)
    assert limited.status_code == 429, limited.text
    assert limited.headers["content-type"].startswith(PROBLEM)
    assert limited.json()["code"] == "rate_limited" and int(limited.headers["retry-after"]) > 0
    # the limit is the token's own: another guest and staff keys are not slowed
    other_guest = auth(await create_key(db, [GUEST], member_id=other))
    assert (await strict_client.get(f"/v1/members/{other}/balance", headers=other_guest)).status_code == 200
    for _ in range(5):
        answer = await strict_client.get(f"/v1/members/{member}/balance", headers=auth(keys["checkout"]))
        assert answer.status_code == 200
