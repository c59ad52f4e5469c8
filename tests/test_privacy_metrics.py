"""The §7102 metrics of a hand-built year, counted by hand; the same year through the service's
paths into a database of its own, and out through `rewards report privacy-requests` (text, JSON,
CSV) and `rewards report privacy-request-log`."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest
from click.testing import CliRunner

from rewards.cli import main
from rewards.db import Database
from rewards.privacy import metrics, requests
from rewards.privacy.metrics import RequestRow
from rewards.privacy.schemas import CompleteIn, DenyIn, PrivacyRequestIn
from tests.conftest import TESTS
from tests.databases import scratch_database

LA = "America/Los_Angeles"
PST = timezone(timedelta(hours=-8))


def at(y: int, m: int, d: int, hh: int = 10, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=PST)


# (type, received, closed, status, outcome): the year 2025 on the program's (Pacific) calendar
YEAR = [
    ("access", at(2025, 1, 10), at(2025, 1, 20), "completed", "in_whole"),    # 10 days
    ("access", at(2025, 3, 1), at(2025, 3, 31), "completed", "in_part"),      # 30 days
    ("access", at(2025, 6, 2), at(2025, 6, 5), "denied", None),               # 3 days
    ("access", at(2025, 12, 30), None, "open", None),
    ("delete", at(2025, 2, 3, 9), at(2025, 2, 3, 17), "completed", "in_whole"),  # 0 days: the same day
    ("delete", at(2025, 2, 10), at(2025, 3, 1), "completed", "in_whole"),      # 19 days
    # 11:30 PM on Nov 30 in Los Angeles (Dec 1 in UTC), answered Dec 2: 2 days
    ("delete", at(2025, 11, 30, 23, 30), at(2025, 12, 2), "denied", None),
    # not 2025's: 11:30 PM on Dec 31, 2024 in Los Angeles (2025 in UTC), and 12:30 AM on Jan 1, 2026
    ("correct", at(2024, 12, 31, 23, 30), at(2025, 1, 5), "completed", "in_whole"),
    ("correct", at(2026, 1, 1, 0, 30), None, "open", None),
]
# counted by hand from YEAR
EXPECTED = {
    "access": {"label": "requests to know", "received": 4, "complied_in_whole_or_in_part": 2, "complied_in_whole": 1,
               "complied_in_part": 1, "denied": 1, "open": 1, "median_days_to_respond": 10.0,
               "mean_days_to_respond": 14.3},  # (10 + 30 + 3) / 3
    "delete": {"label": "requests to delete", "received": 3, "complied_in_whole_or_in_part": 2, "complied_in_whole": 2,
               "complied_in_part": 0, "denied": 1, "open": 0, "median_days_to_respond": 2.0,
               "mean_days_to_respond": 7.0},  # (0 + 19 + 2) / 3
    "correct": {"label": "requests to correct", "received": 0, "complied_in_whole_or_in_part": 0,
                "complied_in_whole": 0, "complied_in_part": 0, "denied": 0, "open": 0,
                "median_days_to_respond": None, "mean_days_to_respond": None},
}


def rows() -> list[RequestRow]:
    return [RequestRow(n, type, "online", "email_code", received, None, status, closed, outcome,
                       None if status == "open" or outcome == "in_whole" else "a reason")
            for n, (type, received, closed, status, outcome) in enumerate(YEAR, 1)]


def test_the_metrics_of_a_hand_built_year():
    figures = metrics.metrics(rows(), 2025, LA, as_of=at(2026, 2, 1))
    assert msgspec.to_builtins(figures.by_type) == EXPECTED
    assert figures.warnings == [("1 request(s) received in 2025 are still open: they count as received, not yet as "
                                "complied with or denied, and not in the days to respond.")]
    assert figures.regulation == "11 CCR §7102(a)(1)"


def test_a_year_not_over_or_past_the_records_24_months_says_so():
    figures = metrics.metrics(rows(), 2025, LA, as_of=at(2025, 12, 31, 12))
    assert figures.warnings[0].startswith("2025 is not over")
    # in 2027, requests of early 2025 closed more than 24 months ago may have been deleted
    late = metrics.metrics(rows(), 2025, LA, as_of=at(2027, 2, 1))
    assert late.warnings[-1].startswith("requests closed more than 24 months ago are deleted")


def test_a_median_of_an_even_count_is_the_mean_of_the_middle_two():  # 3 and 8 days
    two = [RequestRow(1, "correct", "phone", "in_person_id", at(2025, 5, 1), None, "completed", at(2025, 5, 4),
                      "in_whole", None),
           RequestRow(2, "correct", "phone", "in_person_id", at(2025, 5, 1), None, "completed", at(2025, 5, 9),
                      "in_whole", None)]
    assert metrics.metrics(two, 2025, LA, at(2026, 1, 2)).by_type["correct"].median_days_to_respond == 5.5


# --- the same year through the service ------------------------------------------------------------


@pytest.fixture(scope="module")
async def year_url(database_url: str) -> AsyncIterator[str]:
    """YEAR filed and closed through `rewards.privacy.requests`, in a database of its own."""
    async with scratch_database(database_url, "privacy_metrics") as url:
        db = Database(url, pool_size=2)
        try:
            for n, (type, received, closed, status, outcome) in enumerate(YEAR):
                filed = await requests.file(db, msgspec.convert({
                    "type": type, "email": f"person{n}@example.com", "channel": "online",
                    "verification": {"method": "email_code", "verified_at": received.isoformat()}},
                    PrivacyRequestIn), TESTS, LA, received_at=received)
                if status == "completed":
                    body = CompleteIn(outcome=outcome, reason=None if outcome == "in_whole" else
                                      "=HYPERLINK(\"http://x\") records kept under §1798.105(d)")
                    await requests.complete(db, filed.request_id, body, TESTS, LA, at=closed)
                elif status == "denied":
                    await requests.deny(db, filed.request_id, DenyIn(reason="could not verify the requestor"),
                                        TESTS, LA, at=closed)
        finally:
            await db.close()
        yield url


def run(url: str, *args: str) -> Any:
    return CliRunner().invoke(main, ["report", *args], env={"DATABASE_URL": url}, catch_exceptions=False)


def test_the_command_gives_the_years_metrics_as_json(year_url):
    result = run(year_url, "privacy-requests", "--year", "2025", "--format", "json")
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["by_type"] == EXPECTED
    assert (figures["year"], figures["time_zone"]) == (2025, LA)
    assert "still open" in result.stderr


def test_the_command_gives_the_metrics_as_csv_and_as_text(year_url):
    result = run(year_url, "privacy-requests", "--year", "2025", "--format", "csv")
    assert result.exit_code == 0, result.output
    table = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["type"] for r in table] == ["access", "delete", "correct"]
    assert {k: table[0][k] for k in ("received", "complied_in_whole_or_in_part", "denied", "median_days_to_respond")} \
        == {"received": "4", "complied_in_whole_or_in_part": "2", "denied": "1", "median_days_to_respond": "10"}
    assert table[2]["median_days_to_respond"] == ""

    text = run(year_url, "privacy-requests", "--year", "2025").stdout
    lines = text.splitlines()
    assert lines[0] == f"Consumer privacy requests received in 2025 ({LA}), 11 CCR §7102(a)(1)"
    [know] = [line for line in lines if line.startswith("requests to know")]
    assert know.split()[3:] == ["4", "2", "(1", "whole,", "1", "part)", "1", "1", "10"]
    [correct] = [line for line in lines if line.startswith("requests to correct")]
    assert correct.endswith("—")
    assert "warning: 1 request(s) received in 2025 are still open" in text


def test_the_log_is_the_7101_record_of_each_request_with_nothing_that_identifies_the_consumer(year_url, tmp_path):
    out = tmp_path / "log.csv"
    result = run(year_url, "privacy-request-log", "--year", "2025", "--out", str(out))
    assert result.exit_code == 0, result.output
    text = out.read_text()
    log = list(csv.DictReader(io.StringIO(text)))
    assert len(log) == 7
    assert [r["type"] for r in log] == ["access", "delete", "delete", "access", "access", "delete", "access"]
    assert list(log[0]) == ["request_id", "type", "received_at", "channel", "verification_method", "confirmed_at",
                            "status", "responded_at", "outcome", "reason", "days_to_respond"]
    assert "example.com" not in text and "person" not in text
    [partial] = [r for r in log if r["outcome"] == "in_part"]
    assert partial["days_to_respond"] == "30"
    assert partial["reason"].startswith("'=HYPERLINK")  # a spreadsheet shows staff's words, never runs them
    as_json = json.loads(run(year_url, "privacy-request-log", "--year", "2025", "--format", "json").stdout)
    assert [e["request_id"] for e in as_json] == [int(r["request_id"]) for r in log]
