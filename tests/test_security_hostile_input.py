"""Hostile input: a clear 4xx problem+json for anything malformed, oversized or out of range,
and nothing written; schemathesis against the service's own OpenAPI document, under every scope.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient

from rewards.auth import GUEST, create_key
from tests.conftest import auth, enrollment, purchase
from tests.reliability.harness import Service, running

PROBLEM = "application/problem+json"
TABLES = ("members", "consents", "purchases", "purchase_returns", "rewards", "ledger", "api_keys",
          "subscriptions", "subscription_events", "offers", "program_rules")


async def row_counts(db: Any) -> dict[str, int]:
    return {t: (await db.run(f"SELECT count(*) AS n FROM {t}"))[0]["n"] for t in TABLES}


def assert_refused(answer: httpx.Response, status: int | tuple[int, ...], code: str | None = None) -> dict[str, Any]:
    statuses = (status,) if isinstance(status, int) else status
    assert answer.status_code in statuses, (answer.status_code, answer.text[:300])
    assert answer.headers["content-type"].startswith(PROBLEM), answer.headers
    problem = answer.json()
    assert problem["status"] == answer.status_code and problem["title"] and problem["detail"], problem
    if code is not None:
        assert problem["code"] == code, problem
    return problem


def line(**overrides: Any) -> dict[str, Any]:
    return {"sku": "SKU-1", "category": "apparel", "quantity": 1, "amount_cents": 100, **overrides}


def hostile_purchases(member: int) -> list[tuple[str, dict[str, Any], str | None]]:
    """(what, body, the field the error must name) for purchases no checkout may post."""
    ok = purchase(member, 100)
    many_lines = [line(sku=f"S{i}", amount_cents=1) for i in range(501)]
    many_tenders = [{"method": "cash", "amount_cents": 1} for _ in range(21)]
    return [
        ("too many lines", {**ok, "lines": many_lines, "tenders": [{"method": "cash", "amount_cents": 501}]}, "lines"),
        ("too many tenders", {**ok, "lines": [line(amount_cents=21)], "tenders": many_tenders}, "tenders"),
        ("too many offers", {**ok, "offers": [{"code": f"O{i}", "discount_cents": 1} for i in range(21)]}, "offers"),
        ("no lines", {**ok, "lines": []}, "lines"),
        ("over $10M in all", {**ok, "lines": [line(sku=f"S{i}", amount_cents=100_000_000) for i in range(11)],
                              "tenders": [{"method": "cash", "amount_cents": 550_000_000}] * 2}, None),
        ("sku too long", {**ok, "lines": [line(sku="S" * 65)]}, "lines[0].sku"),
        ("purchase_id too long", {**ok, "purchase_id": "p" * 65}, "purchase_id"),
        ("store_id with a newline", {**ok, "store_id": "S1\nS2"}, "store_id"),
        ("sku with a NUL", {**ok, "lines": [line(sku="A\u0000B")]}, "lines[0].sku"),
        ("category with DEL", {**ok, "lines": [line(category="apparel\u007f")]}, "lines[0].category"),
        ("amount over $10M", {**ok, "lines": [line(amount_cents=1_000_000_001)]}, "lines[0].amount_cents"),
        ("negative amount", {**ok, "lines": [line(amount_cents=-100)]}, "lines[0].amount_cents"),
        ("amount past int64", {**ok, "lines": [line(amount_cents=2**63)]}, "lines[0].amount_cents"),
        ("amount past uint64", {**ok, "lines": [line(amount_cents=2**64 + 1)]}, "lines[0].amount_cents"),
        ("fractional cents", {**ok, "lines": [line(amount_cents=10.5)]}, "lines[0].amount_cents"),
        ("cents as a string", {**ok, "lines": [line(amount_cents="100")]}, "lines[0].amount_cents"),
        ("zero quantity", {**ok, "lines": [line(quantity=0)]}, "lines[0].quantity"),
        ("huge quantity", {**ok, "lines": [line(quantity=10**12)]}, "lines[0].quantity"),
        ("member_id past int64", {**ok, "member_id": 2**63}, "member_id"),
        ("member_id as a string", {**ok, "member_id": str(member)}, "member_id"),
        ("lines as an object", {**ok, "lines": {"sku": "x"}}, "lines"),
        ("naive occurred_at", {**ok, "occurred_at": "2026-01-01T10:00:00"}, "occurred_at"),
        ("occurred_at not a time", {**ok, "occurred_at": "yesterday"}, "occurred_at"),
        ("unknown tender method", {**ok, "tenders": [{"method": "bitcoin", "amount_cents": 100}]}, "tenders[0].method"),
        ("unknown field", {**ok, "discount_everything": True}, None),
        ("unknown field in a line", {**ok, "lines": [line(price=1)]}, None),
        ("missing member", {k: v for k, v in ok.items() if k != "member_id"}, None),
        ("occurred before the program", {**ok, "occurred_at": "1970-01-01T00:00:00Z"}, "occurred_at"),
        ("occurred in year 1", {**ok, "occurred_at": "0001-01-01T00:00:00+14:00"}, "occurred_at"),
        ("occurred in year 9999", {**ok, "occurred_at": "9999-12-31T23:59:59-14:00"}, "occurred_at"),
    ]


async def test_hostile_purchases_get_a_clear_4xx_naming_the_field_and_write_nothing(
    client: AsyncTestClient, keys: dict[str, str], member: int, db: Any
) -> None:
    before = await row_counts(db)
    wrong = []
    for what, body, field in hostile_purchases(member):
        for path in ("/v1/purchases", "/v1/purchases/quote"):
            answer = await client.post(path, json=body, headers=auth(keys["checkout"]))
            try:
                problem = assert_refused(answer, (400, 413, 422))
                if field is not None:
                    assert problem.get("field") == field, problem
            except AssertionError as exc:
                wrong.append(f"{what} ({path}): {exc}")
    assert not wrong, "\n".join(wrong)
    assert await row_counts(db) == before


@pytest.mark.slow
async def test_the_largest_purchase_allowed_posts_and_returns_exactly(
    client: AsyncTestClient, keys: dict[str, str], member: int, db: Any
) -> None:
    """$50,000 (REWARDS_MAX_PURCHASE_CENTS) on the Westique card: 10M point-cents, 333 rewards; a full
    return voids all 333, newest first, and leaves the balance at zero; nothing overflows."""
    body = purchase(member, 5_000_000, method="westique_credit_card")
    posted = await client.post("/v1/purchases", json=body, headers=auth(keys["checkout"]), timeout=300)
    assert posted.status_code == 201, posted.text[:300]
    answer = posted.json()
    assert answer["point_cents_earned"] == 10_000_000 and answer["bonus_point_cents"] == 5_000_000
    assert len(answer["rewards_issued"]) == 333 and answer["balance"]["point_cents"] == 10_000
    full = {"return_id": f"r-{body['purchase_id']}", "occurred_at": body["occurred_at"],
            "lines": [{"sku": "SKU-1", "quantity": 1, "amount_cents": 5_000_000}]}
    returned = await client.post(f"/v1/purchases/{body['purchase_id']}/returns", json=full,
                                 headers=auth(keys["checkout"]))
    assert returned.status_code == 201, returned.text
    assert returned.json()["point_cents_reversed"] == 10_000_000
    assert len(returned.json()["rewards_voided"]) == 333
    assert returned.json()["balance"]["point_cents"] == 0
    [row] = await db.run("SELECT point_cents, rewards_issued FROM members WHERE id = $1", member)
    assert (row["point_cents"], row["rewards_issued"]) == (0, 333)


async def test_hostile_enrollments_get_a_clear_4xx_and_store_no_personal_data(
    client: AsyncTestClient, keys: dict[str, str], db: Any
) -> None:
    before = await row_counts(db)
    cases = [
        ("name too long", {"name": "N" * 201}, "name"),
        ("name with a NUL", {"name": "Jo\u0000hn"}, "name"),
        ("name with a newline", {"name": "Jo\nhn"}, "name"),
        ("name with an escape sequence", {"name": "Jo\u001b[31mhn"}, "name"),
        ("empty name", {"name": ""}, "name"),
        ("email too long", {"email": "a" * 250 + "@example.com"}, "email"),
        ("email with a tab", {"email": "a\tb@example.com"}, "email"),
        ("phone with letters", {"phone": "+1555CALLNOW"}, "phone"),
        ("phone too long", {"phone": "+1" + "5" * 30}, "phone"),
        ("unknown state", {"state": "XX"}, "state"),
        ("birth date not a date", {"birth_date": "1980-02-30"}, "birth_date"),
        ("birth date in the future", {"birth_date": "2999-01-01"}, "birth_date"),
        ("birth date of a 200-year-old", {"birth_date": "1800-01-01"}, "birth_date"),
        ("guardian_consent as a string", {"guardian_consent": "yes"}, "guardian_consent"),
        ("unknown field", {"is_admin": True}, None),
        ("external_id with spaces", {"external_id": "a b"}, "external_id"),
        ("terms_version too long", {"terms_version": "v" * 33}, "terms_version"),
    ]
    wrong = []
    for what, change, field in cases:
        answer = await client.post("/v1/members", json=enrollment(**change), headers=auth(keys["guest_services"]))
        try:
            problem = assert_refused(answer, 422)
            if field is not None:
                assert problem.get("field") == field, problem
        except AssertionError as exc:
            wrong.append(f"{what}: {exc}")
    assert not wrong, "\n".join(wrong)
    assert await row_counts(db) == before


MALFORMED: list[tuple[str, bytes]] = [
    ("not JSON", b"purchase please"),
    ("truncated JSON", b'{"purchase_id": "p-1", "lines": ['),
    ("empty body", b""),
    ("JSON null", b"null"),
    ("a JSON array", b"[1, 2, 3]"),
    ("a JSON string", b'"hello"'),
    ("invalid UTF-8", b'{"purchase_id": "\xff\xfe"}'),
    ("a lone surrogate", b'{"purchase_id": "\\ud800"}'),
    ("NUL bytes", b"\x00\x00\x00\x00"),
    ("deep nesting", b"[" * 100_000 + b"]" * 100_000),
    ("a huge number", b'{"member_id": 1' + b"0" * 5000 + b"}"),
]


@pytest.mark.parametrize(("what", "raw"), MALFORMED, ids=[m[0] for m in MALFORMED])
async def test_malformed_bodies_get_400_or_422_and_write_nothing(
    what: str, raw: bytes, client: AsyncTestClient, keys: dict[str, str], db: Any
) -> None:
    before = await row_counts(db)
    for path in ("/v1/purchases", "/v1/members", "/v1/purchases/p-none/returns"):
        answer = await client.post(path, content=raw, headers={**auth(keys["all"]), "content-type": "application/json"})
        assert_refused(answer, (400, 413, 422))
    assert await row_counts(db) == before


async def test_hostile_path_and_query_parameters_get_a_4xx(
    client: AsyncTestClient, keys: dict[str, str], member: int
) -> None:
    staff = auth(keys["all"])
    ret = {"return_id": "r-hostile", "occurred_at": "2026-01-01T00:00:00Z",
           "lines": [{"sku": "S", "quantity": 1, "amount_cents": 1}]}
    cases = [
        ("GET", "/v1/rewards/%00", None),
        ("GET", "/v1/rewards/" + "W" * 65, None),
        ("GET", "/v1/rewards/a%0Ab", None),
        ("POST", "/v1/purchases/%00/returns", ret),
        ("POST", "/v1/purchases/" + "p" * 65 + "/returns", ret),
        ("GET", "/v1/members/99999999999999999999999", None),
        ("GET", "/v1/members/-1", None),
        ("GET", "/v1/members/0/balance", None),
        ("GET", f"/v1/members/{member}/activity?limit=0", None),
        ("GET", f"/v1/members/{member}/activity?limit=100000", None),
        ("GET", f"/v1/members/{member}/activity?cursor=%00", None),
        ("GET", f"/v1/members/{member}/activity?cursor=" + "A" * 201, None),
        # a well-formed cursor whose entry id does not fit a bigint
        ("GET", f"/v1/members/{member}/activity?cursor=YmVmb3JlOjk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5", None),
        ("GET", f"/v1/members/{member}/activity?cursor=YmVmb3JlOi05OTk5OTk5OTk5OTk5OTk5OTk5OTk5", None),
    ]
    wrong = []
    for method, path, body in cases:
        answer = await client.request(method, path, json=body, headers=staff)
        try:
            assert_refused(answer, (400, 404, 422))
        except AssertionError as exc:
            wrong.append(f"{method} {path[:80]}: {exc}")
    assert not wrong, "\n".join(wrong)


# --- against the real server: body size limits, and schemathesis -----------------------------


@pytest.fixture(scope="module")
def served(database_url: str) -> Iterator[Service]:
    """`rewards serve` on this session's database, with a small body limit to test against."""
    service = Service(database_url, env={"REWARDS_MAX_BODY_BYTES": "32768", "REWARDS_GUEST_RATE_LIMIT": "100000"})
    with running(service):
        import asyncio

        asyncio.run(service.wait_up())
        yield service


async def test_a_body_over_the_limit_gets_413_problem_json_and_writes_nothing(
    served: Service, keys: dict[str, str], member: int, db: Any
) -> None:
    before = await row_counts(db)
    big = purchase(member, 100)
    big["lines"] = [line(sku=f"S{i}-" + "x" * 50, amount_cents=1) for i in range(400)]
    big["tenders"] = [{"method": "cash", "amount_cents": 400}]
    raw = httpx.Request("POST", "/", json=big).content
    assert len(raw) > 32768

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(raw), 4096):
            yield raw[start:start + 4096]

    async with httpx.AsyncClient(base_url=served.base_url, timeout=30) as http:
        headers = {**auth(keys["checkout"]), "content-type": "application/json"}
        sized = await http.post("/v1/purchases", content=raw, headers=headers)
        assert_refused(sized, 413, "payload_too_large")
        chunked = await http.post("/v1/purchases", content=_agen(chunks()), headers=headers)  # no Content-Length
        assert_refused(chunked, 413, "payload_too_large")
        # the limit is on bytes, not on a valid body: under it the same purchase is fine
        small = purchase(member, 100)
        assert (await http.post("/v1/purchases", json=small, headers=auth(keys["checkout"]))).status_code == 201
    after = await row_counts(db)
    assert after["purchases"] == before["purchases"] + 1 and after["members"] == before["members"]


async def _agen(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


FUZZ_SCOPES = ("none", "checkout", "guest_services", "compliance", "admin", GUEST)
# Valid requests that would change what every later test in the session's database relies on: a new
# rules version (0 points per dollar, say: tests/test_api_rules_and_rewards.py proves publishing), a
# revoked key (key 1 is a session key: tests/test_desk_keys.py), another member merged into the fuzzed
# one (tests/test_desk_merge.py). Their invalid requests are fuzzed all the same.
SHARED = {("PUT", "/v1/program/rules"), ("DELETE", "/v1/keys/{key_id}"), ("POST", "/v1/members/{member_id}/merge")}
# cases per operation: more where the token is let in (the handler runs), a few where it is not
ALLOWED_CASES = int(os.environ.get("REWARDS_FUZZ_CASES", "25"))
REFUSED_CASES = 2


@pytest.fixture(scope="module")
async def fuzz_tokens(db: Any, keys: dict[str, str], client: AsyncTestClient) -> dict[str, Any]:
    enrolled = await client.post("/v1/members", json=enrollment(), headers=auth(keys["guest_services"]))
    member = enrolled.json()["member_id"]
    tokens = {scope: keys[scope] for scope in FUZZ_SCOPES if scope in keys}
    tokens[GUEST] = await create_key(db, [GUEST], member_id=member)
    return {"member": member, "tokens": tokens}


@pytest.mark.slow
@pytest.mark.parametrize("scope", FUZZ_SCOPES)
def test_schemathesis_finds_no_5xx_and_every_error_is_problem_json(
    scope: str, served: Service, fuzz_tokens: dict[str, Any]
) -> None:
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_url(served.base_url + "/schema/openapi.json")
    headers = auth(fuzz_tokens["tokens"][scope]) if scope != "none" else {}
    failures: list[str] = []
    started, cases = time.monotonic(), 0
    for result in schema.get_all_operations():
        operation = result.ok()
        allowed = _lets_in(operation, scope)
        pinned = {"member_id": fuzz_tokens["member"]} if "{member_id}" in operation.path else None
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            if mode is GenerationMode.POSITIVE and allowed and (operation.method.upper(), operation.path) in SHARED:
                continue
            strategy = operation.as_strategy(generation_mode=mode, path_parameters=pinned)

            @settings(max_examples=ALLOWED_CASES if allowed else REFUSED_CASES, deadline=None, database=None,
                      derandomize=True, phases=[Phase.explicit, Phase.generate, Phase.shrink],
                      suppress_health_check=list(HealthCheck))
            @given(case=strategy)
            def check(case: Any) -> None:
                nonlocal cases
                cases += 1
                response = case.call(base_url=served.base_url, headers=headers, timeout=30)
                problem = _problem_of(response)
                assert problem is None, f"{case.method} {case.formatted_path}: {problem}\n{case.as_curl_command()}"

            try:
                check()
            except Unsatisfiable:
                pass  # nothing to make invalid (no parameters, no body): the positive cases cover it
            except AssertionError as exc:
                failures.append(str(exc).split("\n\nFalsifying")[0][:1500])
    print(f"scope {scope}: {cases} cases in {time.monotonic() - started:.1f}s")
    assert not failures, "\n\n".join(failures)


def _lets_in(operation: Any, scope: str) -> bool:
    from tests.test_security_authz import EXPECTED, PUBLIC

    allowed = EXPECTED.get((operation.method.upper(), operation.path), frozenset())
    return allowed == PUBLIC or scope in allowed


def _problem_of(response: Any) -> str | None:
    """What is wrong with an answer, or None: no 5xx, and every error a problem+json with its code."""
    status = response.status_code
    if status >= 500:
        return f"{status} {response.text[:500]}"
    if status >= 400:
        content_type = response.headers.get("content-type") or [""]
        content_type = content_type[0] if isinstance(content_type, list) else content_type
        if not content_type.startswith(PROBLEM):
            return f"{status} without problem+json: {content_type} {response.text[:300]}"
        body = response.json()
        if body.get("status") != status or not body.get("code"):
            return f"{status} problem without its status or code: {body}"
    return None


async def test_mailing_input_with_control_characters_is_refused_or_ignored_and_stores_nothing(
    client: AsyncTestClient, keys: dict[str, str], db: Any
) -> None:
    before = await row_counts(db)
    staff = auth(keys["all"])
    for path, body in [
        ("/v1/subscriptions", {"channel": "email", "address": "a\u0000b@example.com", "source": "store"}),
        ("/v1/subscriptions", {"channel": "sms", "address": "+1555\u00001234", "source": "store"}),
        ("/v1/subscriptions", {"channel": "email", "address": "a@example.com\nBcc: x@example.com", "source": "store"}),
        ("/v1/subscriptions/unsubscribe", {"channel": "email", "address": "\u0000"}),
        ("/v1/sms/inbound", {"from": "a\u0000b", "body": "STOP"}),
        ("/v1/sms/inbound", {"from": "+15551234567", "body": "ST\u0000OP"}),
        ("/v1/offers", {"code": "A\u0000", "value_cents": 1, "channel": "sms"}),
        ("/v1/offers", {"code": "A", "value_cents": 2**63, "channel": "sms"}),
    ]:
        answer = await client.post(path, json=body, headers=staff)
        assert answer.status_code in (200, 404, 422), (path, body, answer.text)
        if answer.status_code != 200:
            assert_refused(answer, answer.status_code)
    assert await row_counts(db) == before
