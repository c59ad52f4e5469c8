"""The OpenAPI document is one an integrator can build on: every route, plugins' included,
states who may call it, every error it may answer (problem+json, with its codes), a summary
and a description in words, and request and response examples that decode into their types.
A route added without `@scoped` or `@public` (rewards.access) fails here. The answers the
service really gives match the document, and the UI at /schema needs no network.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from rewards import examples as rewards_examples
from rewards.app import create_app
from rewards.config import load_settings
from rewards.openapi import PROBLEM, Problem
from tests.conftest import auth, enrollment, purchase

ROOT = Path(__file__).resolve().parent.parent
ERROR_STATUSES = {"400", "401", "403", "404", "409", "413", "422", "429", "503"}


@pytest.fixture(scope="session")
def bare_app() -> Any:
    """The app as the document describes it (not started: the document needs no database)."""
    return create_app(load_settings())


@pytest.fixture(scope="session")
def document(bare_app: Any) -> dict[str, Any]:
    return bare_app.openapi_schema.to_schema()


def handlers(app: Any) -> dict[str, Any]:
    """The app's route handlers by operation id (the handler's name)."""
    found = {}
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            if handler.resolve_include_in_schema() and "OPTIONS" not in handler.http_methods:
                found[handler.operation_id or handler.handler_name] = handler
    return found


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method.upper(), path, operation) for path, item in document["paths"].items()
            for method, operation in item.items()]


def codes_of(response: dict[str, Any]) -> set[str]:
    return {example["value"]["code"] for example in response["content"][PROBLEM]["examples"].values()}


def test_every_route_states_its_scopes_errors_words_and_examples(bare_app: Any, document: dict[str, Any]) -> None:
    by_id = handlers(bare_app)
    scheme = document["components"]["securitySchemes"]["bearer"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    wrong: list[str] = []
    for method, path, operation in operations(document):
        where = f"{method} {path}"
        handler = by_id.get(operation.get("operationId", ""))
        if handler is None:
            wrong.append(f"{where}: no handler has the operation id {operation.get('operationId')}")
            continue
        public, scopes = handler.opt.get("public", False), handler.opt.get("scopes", ())
        if not public and not scopes:
            wrong.append(f"{where}: declare it with @scoped(...) or @public(...) (rewards.access)")
            continue
        summary, description = operation.get("summary", ""), operation.get("description", "")
        if " " not in summary or summary.replace(" ", "").lower() == handler.handler_name.replace("_", ""):
            wrong.append(f"{where}: a summary in words, not the handler's name ({summary!r})")
        if "**Who may call:**" not in description or len(description) < 60:
            wrong.append(f"{where}: a description in words that says who may call it")
        if not public:
            required = [(name, roles) for requirement in operation.get("security", []) for name, roles in requirement.items()]
            if sorted(role for _, role in required for role in role) != sorted(scopes) or \
                    any(name != "bearer" for name, _ in required):
                wrong.append(f"{where}: security {operation.get('security')} does not name the scopes {scopes}")
            for scope in scopes:
                if scope != "guest" and f"`{scope}`" not in description:
                    wrong.append(f"{where}: the description does not name the scope {scope}")
        responses = operation["responses"]
        expected = set(responses) & ERROR_STATUSES
        if not public:
            expected |= {"401", "403", "429", "503"}
        if "requestBody" in operation:
            expected |= {"400", "413", "422"}
        if operation.get("parameters"):
            expected.add("422")
        for status in sorted(expected):
            response = responses.get(status)
            if response is None:
                wrong.append(f"{where}: no {status} response")
            elif status == "503" and path == "/ready":
                continue  # readiness answers its own document while the database is down
            elif PROBLEM not in response.get("content", {}) or \
                    response["content"][PROBLEM]["schema"] != {"$ref": "#/components/schemas/Problem"}:
                wrong.append(f"{where}: {status} is not application/problem+json with the Problem schema")
            elif not codes_of(response) or any(f"`{code}`" not in response["description"] for code in codes_of(response)):
                wrong.append(f"{where}: {status} names no codes, or its description misses some")
        declared = {(str(status), code) for status, code in handler.opt.get("errors", ())}
        documented = {(status, code) for status in responses if status in ERROR_STATUSES and status in expected
                      and PROBLEM in responses[status].get("content", {}) for code in codes_of(responses[status])}
        if declared != documented:
            wrong.append(f"{where}: declared errors {sorted(declared)} but documented {sorted(documented)}")
        successes = [s for s in responses if s.startswith("2")]
        for status in successes:
            content = responses[status].get("content") or {}
            if not content or not all(media.get("examples") or media.get("example") for media in content.values()):
                wrong.append(f"{where}: the {status} response has no example")
        if "requestBody" in operation:
            for media in operation["requestBody"]["content"].values():
                if not media["schema"].get("examples"):
                    wrong.append(f"{where}: the request body has no example")
    assert not wrong, "\n".join(wrong)


def test_the_problem_schema_is_rfc_9457_with_our_code_and_field(document: dict[str, Any]) -> None:
    problem = document["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail", "code"}
    assert {"field", "retry_after"} <= set(problem["properties"])
    assert all(p.get("description") for p in problem["properties"].values())


def _example_types() -> list[tuple[Any, Any]]:
    from incentives.examples import INCENTIVE_VALUE, LIABILITY
    from incentives.liability import LiabilityReport
    from incentives.valuation import IncentiveReport

    return [*rewards_examples.EXAMPLES.items(), (IncentiveReport, INCENTIVE_VALUE), (LiabilityReport, LIABILITY)]


@pytest.mark.parametrize(("kind", "example"), _example_types(), ids=lambda v: getattr(v, "__name__", ""))
def test_each_example_decodes_into_its_type_strictly(kind: Any, example: Any) -> None:
    decoded = msgspec.json.decode(msgspec.json.encode(example), type=kind)
    # every field the example gives is the type's, with the example's value
    assert msgspec.to_builtins(decoded).keys() >= example.keys()


def test_every_example_in_the_document_is_a_valid_instance_of_its_schema(document: dict[str, Any]) -> None:
    """Problem examples decode into Problem; the others are checked by type above."""
    for method, path, operation in operations(document):
        for status, response in operation["responses"].items():
            media = (response.get("content") or {}).get(PROBLEM)
            for example in (media or {}).get("examples", {}).values():
                problem = msgspec.convert(example["value"], Problem)
                assert str(problem.status) == status, (method, path, status, problem)


async def test_the_errors_the_service_answers_are_the_documented_ones(
    client: AsyncTestClient, keys: dict[str, str], member: int, document: dict[str, Any], db: Any
) -> None:
    """Real error answers decode into Problem (no undeclared field) with a code their route documents."""
    from rewards.auth import create_key

    guest = auth(await create_key(db, ["guest"], member_id=member))
    duplicate = enrollment()
    await client.post("/v1/members", json=duplicate, headers=auth(keys["guest_services"]))
    bad_purchase = purchase(member, 100)
    bad_purchase["lines"][0]["amount_cents"] = "100"
    calls = [
        ("GET", "/v1/members/{member_id}/balance", f"/v1/members/{member}/balance", None, {}),
        ("GET", "/v1/members/{member_id}/balance", f"/v1/members/{member}/balance", None, auth("wr_nope")),
        ("GET", "/v1/members/{member_id}", f"/v1/members/{member + 10_000}", None, auth(keys["guest_services"])),
        ("GET", "/v1/members/{member_id}", f"/v1/members/{member + 1}", None, guest),
        ("GET", "/v1/members/{member_id}", "/v1/members/025", None, auth(keys["guest_services"])),
        ("POST", "/v1/members", "/v1/members", duplicate, auth(keys["guest_services"])),
        ("POST", "/v1/members", "/v1/members", enrollment(), auth(keys["checkout"])),
        ("POST", "/v1/purchases", "/v1/purchases", bad_purchase, auth(keys["checkout"])),
        ("POST", "/v1/purchases", "/v1/purchases", b"{not json", auth(keys["checkout"])),
        ("POST", "/v1/purchases", "/v1/purchases", purchase(member + 10_000, 100), auth(keys["checkout"])),
        ("GET", "/v1/members/{member_id}/activity", f"/v1/members/{member}/activity?limit=0", None,
         auth(keys["guest_services"])),
        ("GET", "/v1/reports/liability", "/v1/reports/liability?as_of=2999-01-01", None, auth(keys["compliance"])),
    ]
    wrong = []
    for method, template, path, body, headers in calls:
        kwargs: dict[str, Any] = {"content": body} if isinstance(body, bytes) else {"json": body}
        answer = await client.request(method, path, headers={**headers, "content-type": "application/json"}, **kwargs)
        assert answer.status_code >= 400, (path, answer.text)
        assert answer.headers["content-type"] == PROBLEM, answer.headers
        problem = msgspec.json.decode(answer.content, type=Problem)
        response = document["paths"][template][method.lower()]["responses"].get(str(answer.status_code))
        if response is None or problem.code not in codes_of(response):
            wrong.append(f"{method} {path}: {answer.status_code} {problem.code} is not documented")
    assert not wrong, "\n".join(wrong)


async def test_the_ui_page_loads_only_files_the_service_serves_from_its_package(client: AsyncTestClient) -> None:
    page = await client.get("/schema")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    links = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
    assert links and all(link.startswith("/schema/assets/") for link in links), links
    for link in links:
        asset = await client.get(link)
        assert asset.status_code == 200 and len(asset.content) > 100, link
    pinned = re.search(r'"swagger-ui-py==([0-9.]+)"', (ROOT / "pyproject.toml").read_text())
    assert pinned, "the UI's package is pinned to one version in pyproject.toml"


def test_docs_api_md_is_generated_from_the_current_document() -> None:
    made = subprocess.run([sys.executable, "-m", "rewards.apidoc"], capture_output=True, text=True, check=True,
                          cwd=ROOT, timeout=120)
    current = (ROOT / "docs" / "api.md").read_text()
    assert made.stdout == current, "docs/api.md is stale: python -m rewards.apidoc > docs/api.md"


@pytest.fixture(scope="module")
def served(database_url: str) -> Any:
    from tests.reliability.harness import Service, running

    service = Service(database_url)
    with running(service):
        import asyncio

        asyncio.run(service.wait_up())
        yield service


def test_swagger_ui_renders_every_route_in_chromium_with_no_network(served: Any, tmp_path: Path) -> None:
    """Headless Chromium, every host but this machine unresolvable, draws the page at /schema."""
    from tests.test_report_html_chromium import FLAGS, chromium

    browser = chromium()
    done = subprocess.run(
        [browser, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
         "--virtual-time-budget=20000", "--window-size=1280,2400", "--dump-dom", f"{served.base_url}/schema"],
        capture_output=True, timeout=180, check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    dom = done.stdout.decode(errors="replace")
    assert "swagger-ui" in dom and "Westique Rewards" in dom, dom[:2000]
    for summary in ("Post a purchase", "Enroll a member", "Read a member's points and rewards"):
        assert summary.replace("'", "&#39;") in dom or summary in dom, f"{summary!r} is not on the page"
    assert "Authorize" in dom  # the bearer scheme, ready to take a token
