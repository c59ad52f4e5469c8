"""Details of HTTP a careful client notices: the bearer scheme in any case, one canonical
spelling of a member id in a path, one charset in a content type, and one metrics view
across every worker of `rewards serve`."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient

from tests.conftest import auth
from tests.reliability.harness import Service, running

PROBLEM = "application/problem+json"


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
async def test_the_bearer_scheme_is_case_insensitive(scheme: str, client: AsyncTestClient, keys: dict[str, str],
                                                     member: int) -> None:
    answer = await client.get(f"/v1/members/{member}/balance", headers={"Authorization": f"{scheme} {keys['checkout']}"})
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("header", ["Basic abc", "Bearer", "Bearer ", "Bearerwr_x", "Token wr_x"])
async def test_other_schemes_and_empty_tokens_are_401(header: str, client: AsyncTestClient, member: int) -> None:
    answer = await client.get(f"/v1/members/{member}/balance", headers={"Authorization": header})
    assert answer.status_code == 401 and answer.json()["code"] == "unauthorized", answer.text


@pytest.mark.parametrize("spelling", ["0{id}", "00{id}", "+{id}", "{sep}", "{arabic}", "{fullwidth}", " {id}",
                                      "{id}.0", "{id}e0", "-{id}", "0", "4611686018427387905"])
async def test_a_member_id_in_a_path_is_plain_ascii_digits_only(spelling: str, client: AsyncTestClient,
                                                                keys: dict[str, str], member: int, db: Any) -> None:
    """`025`, `+25`, `2_5`, `٢٥` and `２５` are not member 25: 422 naming member_id, on every member route."""
    from rewards.auth import create_key

    digits = str(member)
    path_id = spelling.format(
        id=digits, sep="_".join(digits) if len(digits) > 1 else f"{digits}_",
        arabic="".join(chr(0x0660 + int(d)) for d in digits), fullwidth="".join(chr(0xFF10 + int(d)) for d in digits))
    guest = auth(await create_key(db, ["guest"], member_id=member))
    for method, template in [("GET", "/v1/members/{}"), ("GET", "/v1/members/{}/balance"),
                             ("GET", "/v1/members/{}/activity"), ("POST", "/v1/members/{}/cancel"),
                             ("DELETE", "/v1/members/{}/personal-data")]:
        answer = await client.request(method, template.format(path_id), headers=auth(keys["guest_services"]))
        assert answer.status_code == 422, (method, path_id, answer.text)
        assert answer.headers["content-type"] == PROBLEM
        assert (answer.json()["code"], answer.json()["field"]) == ("validation_error", "member_id"), answer.text
        # the member's own guest token does not reach its member through another spelling either
        as_guest = await client.request(method, template.format(path_id), headers=guest)
        assert as_guest.status_code == 403, (method, path_id, as_guest.text)
    [row] = await db.run("SELECT status, name FROM members WHERE id = $1", member)
    assert row["status"] == "active" and row["name"] is not None
    # the plain spelling still works
    assert (await client.get(f"/v1/members/{digits}/balance", headers=guest)).status_code == 200


async def test_reports_and_metrics_send_one_charset(client: AsyncTestClient, keys: dict[str, str]) -> None:
    """Litestar adds the charset to a text/ type; given one too, it was sent twice."""
    csv = await client.get("/v1/reports/liability", params={"as_of": "2025-12-31", "format": "csv"},
                           headers=auth(keys["compliance"]))
    assert csv.status_code == 200, csv.text
    assert csv.headers["content-type"] == "text/csv; charset=utf-8"
    html = await client.get("/v1/reports/incentive-value",
                            params={"program": "rewards", "from": "2025-01-01", "to": "2025-12-31", "format": "html"},
                            headers=auth(keys["compliance"]))
    assert html.status_code == 200, html.text  # with nobody counted too: the report withholds only the notice
    assert html.headers["content-type"] == "text/html; charset=utf-8"
    metrics = await client.get("/metrics")
    assert metrics.headers["content-type"] == "text/plain; version=1.0.0; charset=utf-8"


async def test_a_query_parameter_error_names_the_parameter_as_sent(client: AsyncTestClient,
                                                                    keys: dict[str, str]) -> None:
    answer = await client.get("/v1/reports/liability", params={"as_of": "2025-12-31", "format": "pdf"},
                              headers=auth(keys["compliance"]))
    assert answer.status_code == 422 and answer.json()["field"] == "format", answer.text
    answer = await client.get("/v1/reports/incentive-value", params={"program": "rewards", "from": "2025-13-01",
                                                                     "to": "2025-12-31"},
                              headers=auth(keys["compliance"]))
    assert answer.status_code == 422 and answer.json()["field"] == "from", answer.text


@pytest.fixture(scope="module")
def two_workers(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    folder = tmp_path_factory.mktemp("metrics")
    (folder / "counter_999999.db").write_bytes(b"left by an earlier run")
    service = Service(database_url, workers=2, env={"PROMETHEUS_MULTIPROC_DIR": str(folder)})
    with running(service):
        import asyncio

        asyncio.run(service.wait_up())
        yield service


def _health_count(text: str) -> float:
    found = re.search(r'^rewards_http_responses_total\{method="GET",status="200"\} ([0-9.e+]+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def test_one_scrape_counts_the_requests_of_every_worker(two_workers: Service) -> None:
    """With two workers, each scrape (answered by either) sees every request: the count never
    drops back and is at least the number of requests made, as in Prometheus' multiprocess mode."""
    with httpx.Client(base_url=two_workers.base_url, timeout=10) as http:
        seen = []
        made = 0
        for _ in range(8):
            for _ in range(25):
                # a new connection each time, so both workers take requests
                assert httpx.get(f"{two_workers.base_url}/health", timeout=10).status_code == 200
                made += 1
            scrape = http.get("/metrics", headers={"connection": "close"})
            assert scrape.status_code == 200
            seen.append(_health_count(scrape.text))
    assert all(count >= made_then for count, made_then in zip(seen, range(25, made + 1, 25), strict=True)), seen
    assert seen == sorted(seen), seen
    assert "process_start_time_seconds" not in scrape.text  # one process's own figure would alternate
    folder = Path(two_workers.env["PROMETHEUS_MULTIPROC_DIR"])
    writers = {re.sub(r"\D", "", f.name) for f in folder.glob("counter_*.db")}
    assert "999999" not in writers, "the folder was not emptied at start"
    assert len(writers) == 2, f"both workers answered requests: {writers}"
