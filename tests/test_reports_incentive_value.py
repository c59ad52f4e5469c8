"""The incentive-value report through the API, on programs built by hand with known answers.

Each test empties its private database first (tests/reports_support.py), so every figure
below is exact: it is what the members, purchases, returns and cancellations the test
made must give, and nothing else.
"""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING

from rewards.verify import find_problems

if TYPE_CHECKING:
    from tests.reports_support import People, Program

pytest_plugins = ("tests.reports_support",)  # the private database and its hand-built programs

SPEC_KEYS = {
    "program", "period", "method", "members", "spend", "points", "rewards", "value_per_member_cents",
    "by_segment", "annualized_value_per_member_cents", "notice_text", "reproducibility",
}


async def test_four_members_give_every_figure_of_the_issue_example(program: Program, four_members: People):
    report = await program.figures()

    assert set(report) == SPEC_KEYS
    assert report["program"] == "rewards"
    assert report["period"] == {"from": "2025-01-01", "to": "2025-12-31"}
    assert report["method"]["code"] == "expenses"
    assert report["method"]["regulation"] == "11 CCR §7081(a)(6)"
    assert "redeemed" in report["method"]["description"]
    assert report["members"] == {"at_start": 0, "at_end": 4, "enrolled": 4, "cancelled": 0, "erased": 0, "counted": 4}
    assert report["spend"] == {"qualifying_cents": 105000, "card_cents": 60000}
    assert report["points"] == {"earned_point_cents": 165000, "bonus_point_cents": 60000,
                                "reversed_point_cents": 0, "forfeited_point_cents": 0}
    # the card member's two unredeemed rewards (issued Feb 1) expired on May 2
    assert report["rewards"] == {
        "issued_count": 5, "issued_cents": 5000, "redeemed_count": 3, "redeemed_cents": 3000,
        "expired_count": 2, "expired_cents": 2000, "voided_count": 0, "voided_cents": 0, "redemption_rate": 0.6,
    }
    # values per member: $20, $10, $0, $0 (percentile_disc: a value some member has)
    assert report["value_per_member_cents"] == {
        "mean": 750, "median": 0, "p25": 0, "p75": 1000, "p90": 2000, "p99": 2000, "max": 2000, "share_zero": 0.5,
    }
    assert report["by_segment"] == {
        "card_holders": {"counted": 1, "mean": 2000, "median": 2000, "p25": 2000, "p75": 2000, "p90": 2000,
                         "p99": 2000, "max": 2000, "share_zero": 0.0, "suppressed": False},
        "others": {"counted": 3, "mean": 333, "median": 0, "p25": 0, "p75": 1000, "p90": 1000, "p99": 1000,
                   "max": 1000, "share_zero": 0.6667, "suppressed": False},
    }
    assert report["annualized_value_per_member_cents"] == 750  # a calendar year of 365 days: as is
    repro = report["reproducibility"]
    assert repro["as_of"] == "2026-01-01T00:00:00Z"
    assert repro["rules_versions"] == [1]
    # the points earned are read with the purchases; of the ledger, only the entries that take
    # points back (returns, forfeits), and there are none
    assert repro["rows_read"] == {"members": 4, "purchases": 5, "ledger": 0, "rewards": 5, "program_rules": 1}
    assert len(repro["digest"]) == 64 and int(repro["digest"], 16) >= 0

    text = report["notice_text"]
    assert "$7.50 per member per year" in text
    assert "11 CCR §7081(a)(6)" in text
    assert "50% of members redeemed none" in text
    assert "one member in ten received $20.00 or more" in text
    assert "100 points, worth $3.33" in text and "200 points, worth $6.67" in text
    assert "$2.86 in Rewards for every $100" in text  # $30 redeemed / $1,050 qualifying
    assert "enroll" in text and "withdraw at any time" in text
    async with program.db.connection() as conn:
        assert await find_problems(conn) == []


async def test_the_figures_reconcile_with_the_ledger(program: Program, four_members: People):
    report = await program.figures()
    ledger = (await program.db.run(
        """SELECT sum(point_cents) FILTER (WHERE kind IN ('earn', 'card_bonus')) AS earned,
                  count(*) FILTER (WHERE kind = 'reward_redeemed') AS redeemed,
                  count(*) FILTER (WHERE kind = 'reward_issued') AS issued FROM ledger"""))[0]
    assert report["points"]["earned_point_cents"] == ledger["earned"]
    assert report["rewards"]["redeemed_count"] == ledger["redeemed"]
    assert report["rewards"]["issued_count"] == ledger["issued"]
    members = report["members"]["counted"]
    assert report["value_per_member_cents"]["mean"] * members == report["rewards"]["redeemed_cents"]


async def test_rewards_issued_method_values_rewards_when_earned(program: Program, four_members: People):
    report = await program.figures(method="rewards_issued")
    assert report["method"]["code"] == "rewards_issued"
    assert report["method"]["regulation"] == "11 CCR §7081(a)(6)"
    # values: $40, $10, $0, $0
    assert report["value_per_member_cents"] == {
        "mean": 1250, "median": 0, "p25": 0, "p75": 1000, "p90": 4000, "p99": 4000, "max": 4000, "share_zero": 0.5,
    }
    assert report["by_segment"]["card_holders"]["mean"] == 4000
    assert report["annualized_value_per_member_cents"] == 1250
    assert "$12.50 per member per year" in report["notice_text"]
    assert "Rewards issued to the 4 members" in report["notice_text"]


async def test_program_expense_method_shares_the_expense_equally(program: Program, four_members: People):
    report = await program.figures(method="expenses_plus_program", program_expense_cents=10000)
    assert report["method"]["regulation"] == "11 CCR §7081(a)(5) and (a)(6)"
    # $100 over 4 members: $25 each on top of $20, $10, $0, $0
    assert report["value_per_member_cents"] == {
        "mean": 3250, "median": 2500, "p25": 2500, "p75": 3500, "p90": 4500, "p99": 4500, "max": 4500,
        "share_zero": 0.0,
    }
    assert report["by_segment"]["card_holders"]["mean"] == 4500
    assert report["by_segment"]["others"]["mean"] == 2833  # (3500 + 2500 + 2500) / 3
    assert report["rewards"]["redeemed_cents"] == 3000  # the figures themselves do not change
    assert "$32.50 per member per year" in report["notice_text"]
    assert "$100.00 of program operating expenses" in report["notice_text"]


async def test_program_expense_goes_with_its_method_only(program: Program, four_members: People):
    missing = await program.report(method="expenses_plus_program")
    assert missing.status_code == 422
    assert missing.json()["code"] == "validation_error" and missing.json()["field"] == "program_expense_cents"
    stray = await program.report(program_expense_cents=500)
    assert stray.status_code == 422 and stray.json()["field"] == "program_expense_cents"


async def test_a_part_of_a_year_is_annualised_by_its_days(program: Program, four_members: People):
    # February: only the card member's two rewards were redeemed ($20 over 4 members = $5.00 in 28 days)
    report = await program.figures(start="2025-02-01", end="2025-02-28")
    assert report["rewards"]["redeemed_cents"] == 2000
    assert report["value_per_member_cents"]["mean"] == 500
    assert report["annualized_value_per_member_cents"] == 6518  # 500 * 365 / 28 = 6517.86
    assert "from February 1, 2025 to February 28, 2025" in report["notice_text"]
    assert "expressed per year" in report["notice_text"]
    assert report["reproducibility"]["as_of"] == "2025-03-01T00:00:00Z"


async def test_min_cell_size_withholds_both_segments_when_one_is_small(program: Program, four_members: People):
    report = await program.figures(min_cell_size=2)
    # one card holder: withheld; the others too, since all less card holders would give it away
    for name in ("card_holders", "others"):
        assert report["by_segment"][name] == {
            "counted": None, "mean": None, "median": None, "p25": None, "p75": None, "p90": None, "p99": None,
            "max": None, "share_zero": None, "suppressed": True,
        }
    assert report["value_per_member_cents"]["mean"] == 750
    unsuppressed = await program.figures(min_cell_size=1)
    assert unsuppressed["by_segment"]["card_holders"]["counted"] == 1


async def test_min_cell_size_above_the_population_refuses_the_estimate(program: Program, four_members: People):
    response = await program.report(min_cell_size=5)
    assert response.status_code == 422
    assert response.json()["code"] == "no_estimate"
    assert "minimum cell size" in response.json()["detail"]


async def test_no_members_in_the_period_means_no_estimate(program: Program, four_members: People):
    response = await program.report(start="2019-01-01", end="2019-12-31")
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "no_estimate"


async def test_a_value_of_zero_is_no_estimate(program: Program):
    member = await program.member("2025-01-05")
    await program.buy(member, 5000, "2025-02-01")  # earns points, no reward redeemed
    response = await program.report()
    assert response.status_code == 422
    assert response.json()["code"] == "no_estimate"
    assert "$0.00" in response.json()["detail"]


async def test_same_period_twice_gives_identical_report(program: Program, four_members: People):
    first = await program.report()
    second = await program.report()
    assert first.status_code == second.status_code == 200
    assert first.content == second.content


async def test_a_late_posting_inside_the_period_changes_figures_and_digest(program: Program, four_members: People):
    people = four_members
    before = await program.figures()
    # recorded now, dated inside the period: an offline register syncing late
    await program.buy(people["none"], 2500, "2025-11-30")
    after = await program.figures()
    assert after["reproducibility"]["digest"] != before["reproducibility"]["digest"]
    assert after["spend"]["qualifying_cents"] == before["spend"]["qualifying_cents"] + 2500
    assert after["reproducibility"]["rows_read"]["purchases"] == 6
    assert after["reproducibility"]["as_of"] == before["reproducibility"]["as_of"]


async def test_a_posting_after_the_period_changes_nothing(program: Program, four_members: People):
    people = four_members
    before = await program.report()
    await program.buy(people["small"], 20000, "2026-01-15", method="westique_credit_card")
    await program.cancel(people["cash"], "2026-02-01")
    after = await program.report()
    assert after.content == before.content


async def test_another_method_or_period_has_another_digest(program: Program, four_members: People):
    digests = {
        (await program.figures())["reproducibility"]["digest"],
        (await program.figures(method="rewards_issued"))["reproducibility"]["digest"],
        (await program.figures(start="2025-01-01", end="2025-06-30"))["reproducibility"]["digest"],
    }
    assert len(digests) == 3


async def test_members_figures_follow_enrollment_cancellation_erasure_and_returns(program: Program):
    before = await program.member("2024-06-01")  # a member at the start
    left_early = await program.member("2024-03-01")  # cancelled before the period: not counted
    await program.cancel(left_early, "2024-12-01")
    joined = await program.member("2025-03-01")
    erased = await program.member("2025-02-01")
    # two units for $400 by card: 800 points, 2 rewards issued, 200 points left
    bought = await program.buy(joined, 40000, "2025-03-10", method="westique_credit_card", units=2)
    # one unit back: takes back 400 points; 200 - 400 would be -200, so the newest reward is voided
    # first and gives its 300 back: 100 points
    returned = await program.give_back(bought["purchase_id"], 20000, "2025-03-20")
    assert returned["point_cents_reversed"] == 40000
    assert returned["balance"]["point_cents"] == 10000
    assert returned["rewards_voided"] == [bought["rewards_issued"][1]["code"]]
    earn = await program.buy(before, 35000, "2025-04-01")  # 350 points: one reward, 50 left
    (reward,) = earn["rewards_issued"]
    await program.cancel(before, "2025-05-01")  # forfeits 50 points, voids the unredeemed reward
    await program.buy(erased, 12345, "2025-02-15")  # 123.45 points, forfeited on erasure
    await program.erase(erased, "2025-06-01")

    # nobody redeemed anything, so the default method has no estimate; the figures are the same
    # under every method, and the issued one has an estimate ($30 over 3 members)
    assert (await program.report()).json()["code"] == "no_estimate"
    report = await program.figures(method="rewards_issued")
    assert report["value_per_member_cents"]["mean"] == 1000
    assert report["members"] == {"at_start": 1, "at_end": 1, "enrolled": 2, "cancelled": 2, "erased": 1,
                                 "counted": 3}
    assert report["spend"] == {"qualifying_cents": 40000 + 35000 + 12345, "card_cents": 40000}
    assert report["points"] == {"earned_point_cents": 80000 + 35000 + 12345, "bonus_point_cents": 40000,
                                "reversed_point_cents": 40000, "forfeited_point_cents": 5000 + 12345}
    assert report["rewards"] == {
        "issued_count": 3, "issued_cents": 3000, "redeemed_count": 0, "redeemed_cents": 0,
        # of the card member's two rewards (issued March 10), the return voided one; the other expired on
        # June 8; the cancelled member's reward was voided
        "expired_count": 1, "expired_cents": 1000, "voided_count": 2, "voided_cents": 2000,
        "redemption_rate": 0.0,
    }
    # the ledger entries read: the return and the two forfeits in the period
    assert report["reproducibility"]["rows_read"]["ledger"] == 3
    assert reward["value_cents"] == 1000
    async with program.db.connection() as conn:
        assert await find_problems(conn) == []


async def test_csv_has_every_figure_as_a_row_and_the_distribution(program: Program, four_members: People):
    response = await program.report(format="csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    figures_part, distribution_part = response.text.split("\r\n\r\n")
    rows = dict(csv.reader(io.StringIO(figures_part)))
    assert rows.pop("key") == "value"
    assert rows["members.counted"] == "4"
    assert rows["value_per_member_cents.mean"] == "750"
    assert rows["by_segment.others.share_zero"] == "0.6667"
    assert rows["rewards.redemption_rate"] == "0.6"
    assert rows["reproducibility.rows_read.purchases"] == "5"
    assert rows["reproducibility.rules_versions"] == "1"
    assert "$7.50 per member per year" in rows["notice_text"]
    json_report = await program.figures()
    assert rows["reproducibility.digest"] == json_report["reproducibility"]["digest"]
    assert len(rows) == 65  # every leaf of the JSON
    distribution = list(csv.reader(io.StringIO(distribution_part)))
    assert distribution[0] == ["from_cents", "to_cents", "members"]
    assert distribution[1:] == [["0", "0", "2"], ["1000", "1000", "1"], ["2000", "2000", "1"]]


async def test_html_page_has_figures_notice_and_an_inline_chart(program: Program, four_members: People):
    response = await program.report(format="html")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert page.startswith("<!DOCTYPE html>")
    assert "$7.50" in page and "11 CCR §7081(a)(6)" in page
    assert page.count('<rect class="bar"') == 3  # $0: 2 members, $10: 1, $20: 1
    assert "<script" not in page and "src=" not in page and "<link" not in page  # nothing external
    assert (await program.figures())["reproducibility"]["digest"] in page


async def test_the_report_needs_the_compliance_scope(program: Program, four_members: People):
    assert (await program.report(token=program.keys["checkout"])).status_code == 403
    assert (await program.report(token="wr_not-a-token")).status_code == 401


async def test_bad_parameters_are_422_naming_the_field(program: Program, four_members: People):
    backwards = await program.report(start="2025-12-31", end="2025-01-01")
    assert backwards.status_code == 422 and backwards.json()["field"] == "to"
    unknown = await program.report(program="coupons")
    assert unknown.status_code in (400, 422)
    assert unknown.json()["code"] == "validation_error"
    bad_format = await program.report(format="pdf")
    assert bad_format.json()["code"] == "validation_error"


async def test_the_reports_are_in_the_openapi_document(program: Program):
    schema = (await program.client.get("/schema/openapi.json")).json()
    parameters = {p["name"] for p in schema["paths"]["/v1/reports/incentive-value"]["get"]["parameters"]}
    assert {"program", "from", "to", "format", "method", "program_expense_cents", "min_cell_size"} <= parameters
    assert "as_of" in {p["name"] for p in schema["paths"]["/v1/reports/liability"]["get"]["parameters"]}
