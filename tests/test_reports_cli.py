"""`rewards report`: the same figures as the API, byte for byte, in one command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from click.testing import CliRunner

from incentives.cli import last_year
from rewards.cli import main

if TYPE_CHECKING:
    from tests.reports_support import People, Program

pytest_plugins = ("tests.reports_support",)  # the private database and its hand-built programs

REWARDS_BIN = Path(sys.executable).with_name("rewards")


@pytest.fixture
async def built(program: Program, four_members: People) -> dict[str, Any]:
    """The four-member program, and what the API answers for 2025."""
    response = await program.report()
    assert response.status_code == 200
    return {"url": program.url, "api_json": response.content}


def run(url: str, *args: str) -> Any:
    return CliRunner().invoke(main, list(args), env={"DATABASE_URL": url}, catch_exceptions=False)


def test_cli_json_is_the_api_json(built: dict[str, Any]):
    result = run(built["url"], "report", "incentive-value", "--program", "rewards",
                 "--from", "2025-01-01", "--to", "2025-12-31", "--format", "json")
    assert result.exit_code == 0, result.output
    assert result.stdout.encode() == built["api_json"]
    assert "$7.50 per member per year" in result.stderr
    assert "4 counted" in result.stderr


def test_cli_writes_the_html_page_to_a_file(built: dict[str, Any], tmp_path: Path):
    out = tmp_path / "notice-2025.html"
    result = run(built["url"], "report", "incentive-value", "--from", "2025-01-01", "--to", "2025-12-31",
                 "--format", "html", "--out", str(out))
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert page.count('<rect class="bar"') == 3
    assert json.loads(built["api_json"])["reproducibility"]["digest"] in page
    assert result.stdout == ""


def test_cli_method_and_program_expense(built: dict[str, Any]):
    result = run(built["url"], "report", "incentive-value", "--from", "2025-01-01", "--to", "2025-12-31",
                 "--method", "expenses_plus_program", "--program-expense-cents", "10000")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["value_per_member_cents"]["mean"] == 3250


def test_cli_without_an_estimate_writes_the_report_and_says_why(built: dict[str, Any]):
    result = run(built["url"], "report", "incentive-value", "--from", "2019-01-01", "--to", "2019-12-31")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["notice_text"] is None and report["members"]["counted"] == 0
    assert "notice withheld: Nobody was counted" in result.stderr
    assert "warning: The period ends before the first enrollment" in result.stderr


def test_cli_liability(built: dict[str, Any]):
    result = run(built["url"], "report", "liability", "--as-of", "2025-04-15")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["total_liability_cents"] == 2500
    assert report["rewards_unredeemed"]["aged"]["within_30_days"] == {"count": 2, "cents": 2000}
    assert "$25.00" in result.stderr and "the close of 2025-04-15" in result.stderr
    future = run(built["url"], "report", "liability", "--as-of", "2999-01-01")
    assert future.exit_code == 1 and "validation_error" in future.stderr and "in the future" in future.stderr


def test_without_dates_the_report_is_last_calendar_year():
    assert last_year(date(2026, 3, 1)).start == date(2025, 1, 1)
    assert last_year(date(2026, 3, 1)).end == date(2025, 12, 31)
    assert last_year(date(2025, 1, 1)).start == date(2024, 1, 1)


def test_the_installed_command_gives_the_csv(built: dict[str, Any]):
    env = {**os.environ, "DATABASE_URL": built["url"]}
    done = subprocess.run(
        [str(REWARDS_BIN), "report", "incentive-value", "--program", "rewards", "--from", "2025-01-01",
         "--to", "2025-12-31", "--format", "csv"],
        env=env, capture_output=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert b"value_per_member_cents.mean,750\r\n" in done.stdout
    assert b"annualized_value_per_member_cents,750\r\n" in done.stdout
