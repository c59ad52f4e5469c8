"""The incentive-value report through the API, on programs built by hand with known answers.

Each test empties its private database first (tests/reports_support.py), so every figure
below is exact: it is what the members, purchases, returns and cancellations the test
made must give, and nothing else. Reference figures (member-years, annualised values) are
computed here with their own arithmetic, on the program's calendar (zoneinfo).
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from typing import TYPE_CHECKING

from rewards.verify import find_problems
from tests.reference import LA, cents_half_up, local, years_enrolled

if TYPE_CHECKING:
    from tests.reports_support import People, Program

pytest_plugins = ("tests.reports_support",)  # the private database and its hand-built programs

SPEC_KEYS = {
    "program", "period", "method", "members", "spend", "points", "rewards", "value_per_member_cents",
    "by_segment", "annualized_value_per_member_cents", "notice_text", "notice_withheld", "warnings", "suppression",
    "reproducibility",
}


async def test_four_members_give_every_figure_of_the_issue_example(program: Program, four_members: People):
    report = await program.figures()

    assert set(report) == SPEC_KEYS
    assert report["program"] == "rewards"
    assert report["period"] == {"from": "2025-01-01", "to": "2025-12-31", "time_zone": "America/Los_Angeles",
                                "days": 365}
    assert report["method"]["code"] == "expenses"
    assert report["method"]["regulation"] == "11 CCR §7081(a)(6)"
    assert "redeemed" in report["method"]["description"]
    # enrolled on December 1, 2024 and never cancelled: a whole year each
    assert report["members"] == {"at_start": 4, "at_end": 4, "enrolled": 0, "cancelled": 0, "erased": 0,
                                 "counted": 4, "member_years": 4.0}
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
    assert report["annualized_value_per_member_cents"] == 750  # $30 over 4 member-years
    assert report["notice_withheld"] is None
    assert report["suppression"] == {"min_cell_size": None, "withheld": []}
    repro = report["reproducibility"]
    assert repro["as_of"] == "2026-01-01T08:00:00Z"  # midnight in Los Angeles
    assert repro["rules_versions"] == [1]
    assert repro["disclosures_version"] >= 1
    # the points earned are read with the purchases; of the ledger, only the entries that take
    # points back (returns, forfeits), and there are none
    assert repro["rows_read"] == {"members": 4, "purchases": 5, "ledger": 0, "rewards": 5, "program_rules": 1}
    assert len(repro["digest"]) == 64 and int(repro["digest"], 16) >= 0
    # honest caveats: purchases only from February 1 to April 1, and groups of one member
    warnings = " ".join(report["warnings"])
    assert "dated from February 1, 2025 to April 1, 2025 only" in warnings
    assert "set min_cell_size before publishing" in warnings
    assert "still running" not in warnings and "before the first enrollment" not in warnings

    text = report["notice_text"]
    assert "$7.50 per member per year" in text
    assert "11 CCR §7081(a)(6)" in text
    assert "50% redeemed no Reward" in text
    assert "one in ten received $20.00 or more" in text
    assert "100 points, worth $3.33" in text and "200 points, worth $6.67" in text
    assert "$2.86 in Rewards for every $100" in text  # $30 redeemed / $1,050 qualifying
    async with program.db.connection() as conn:
        assert await find_problems(conn) == []


async def test_notice_states_each_element_of_7016b_from_stored_words(program: Program, four_members: People):
    text = (await program.figures())["notice_text"]
    # (1) a succinct summary in the program's own numbers, the card bonus included
    assert "receive a $10 Reward for every 300 points" in text
    assert "1 point for every $1 of qualifying purchases" in text
    assert "a bonus of 1 point for every $1 paid with the Westique Credit Card" in text
    # (2) material terms: the categories of personal information, the expiry, what does not qualify
    assert "name, email address, phone number" in text
    assert "birth date" in text and "state of residence" in text
    assert "purchase history" in text
    assert "expire 90 days after they are issued" in text
    assert "gift cards, tax and shipping do not earn points" in text
    # (3) how to opt in
    assert "To join, enroll at any Westique register, online or through Guest Services" in text
    # (4) the right to withdraw at any time, and how: Guest Services' phone and email
    assert "withdraw at any time" in text
    assert "1-800-555-0142" in text and "guestservices@westique.example" in text
    # (5)(A) the good-faith estimate, (B) the method, and why the incentive is reasonably related
    assert "In good faith, we estimate the value of a member's personal information to Westique at $7.50" in text
    assert "from the expenses of providing the incentive (11 CCR §7081(a)(6))" in text
    assert "4.00 member-years" in text
    assert "reasonably related to the value of your information" in text
    # in the order of §7016(b)
    marks = ["$10 Reward for every 300 points", "categories of personal information", "To join",
             "withdraw at any time", "In good faith", "We calculated", "reasonably related"]
    assert [text.index(m) for m in marks] == sorted(text.index(m) for m in marks)


async def test_notice_words_follow_the_stored_disclosures(program: Program, four_members: People):
    admin = {"Authorization": f"Bearer {program.keys['admin']}"}
    stored = (await program.client.get("/v1/program/disclosures", headers=admin)).json()
    changed = stored["disclosures"]
    changed["guest_services"] = {"phone": "1-888-555-0199", "email": "privacy@westique.example"}
    changed["notice"]["rewards"]["opt_in"] = ["Sign up at a register or at westique.example/join; it is free."]
    put = await program.client.put("/v1/program/disclosures", json=changed, headers=admin)
    assert put.status_code == 201, put.text
    assert put.json()["version"] == stored["version"] + 1
    report = await program.figures()
    text = report["notice_text"]
    assert "1-888-555-0199" in text and "privacy@westique.example" in text
    assert "1-800-555-0142" not in text
    assert "Sign up at a register or at westique.example/join; it is free." in text
    assert "To join, enroll" not in text
    assert report["reproducibility"]["disclosures_version"] == put.json()["version"]


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


async def test_rewards_issued_is_cited_as_another_method_not_an_expense(program: Program, four_members: People):
    report = await program.figures(method="rewards_issued")
    assert report["method"]["code"] == "rewards_issued"
    assert report["method"]["regulation"] == "11 CCR §7081(a)(8)"
    description = report["method"]["description"]
    assert "expired unused" in description and "It is not an expense" in description
    # values: $40, $10, $0, $0: the card member's two expired rewards count
    assert report["value_per_member_cents"] == {
        "mean": 1250, "median": 0, "p25": 0, "p75": 1000, "p90": 4000, "p99": 4000, "max": 4000, "share_zero": 0.5,
    }
    assert report["by_segment"]["card_holders"]["mean"] == 4000
    assert report["annualized_value_per_member_cents"] == 1250
    text = report["notice_text"]
    assert "$12.50 per member per year" in text
    assert "(11 CCR §7081(a)(8))" in text and "§7081(a)(6)" not in text
    assert "including Rewards that expired unused" in text and "It is not an expense" in text
    assert "50% were issued no Reward" in text


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
    assert "plus $100.00 of the program's operating expenses" in report["notice_text"]


async def test_program_expense_goes_with_its_method_only(program: Program, four_members: People):
    missing = await program.report(method="expenses_plus_program")
    assert missing.status_code == 422
    assert missing.json()["code"] == "validation_error" and missing.json()["field"] == "program_expense_cents"
    stray = await program.report(program_expense_cents=500)
    assert stray.status_code == 422 and stray.json()["field"] == "program_expense_cents"


async def test_a_part_of_a_year_is_annualised_by_member_years(program: Program, four_members: People):
    # February: only the card member's two rewards were redeemed ($20 over 4 members, 28 days each)
    report = await program.figures(start="2025-02-01", end="2025-02-28")
    assert report["rewards"]["redeemed_cents"] == 2000
    assert report["value_per_member_cents"]["mean"] == 500
    assert report["members"]["member_years"] == round(4 * 28 / 365, 4)
    assert report["annualized_value_per_member_cents"] == cents_half_up(Fraction(2000 * 365, 4 * 28))  # 6518
    assert "from February 1, 2025 to February 28, 2025" in report["notice_text"]
    assert report["reproducibility"]["as_of"] == "2025-03-01T08:00:00Z"


async def test_a_member_enrolled_for_a_quarter_counts_a_quarter_of_a_member_year(program: Program):
    whole_year = await program.member("2024-11-01")
    # from midnight March 1 to 6 AM May 31, Los Angeles time: 91 days and 6 hours, a quarter of 365 days
    # (daylight saving starts on March 9 in between: the program's calendar counts days, not hours)
    quarter = await program.member(local("2025-03-01T00:00").isoformat())
    first = await program.buy(whole_year, 60000, "2025-02-01")
    await program.buy(whole_year, 2000, "2025-03-02", rewards=tuple(r["code"] for r in first["rewards_issued"]))
    second = await program.buy(quarter, 30000, "2025-03-10")
    await program.buy(quarter, 1000, "2025-03-20", rewards=(second["rewards_issued"][0]["code"],))
    await program.cancel(quarter, local("2025-05-31T06:00").isoformat())

    report = await program.figures()
    spans = [(datetime(2024, 11, 1, 12, tzinfo=UTC), None), (local("2025-03-01T00:00"), local("2025-05-31T06:00"))]
    expected_years = years_enrolled(spans, date(2025, 1, 1), date(2025, 12, 31), local("2026-01-01T00:00"))
    assert expected_years == Fraction(5, 4)
    assert report["members"]["member_years"] == 1.25
    assert report["members"]["counted"] == 2
    # the distribution is per member counted, whatever their time: $20 and $10
    assert report["value_per_member_cents"]["mean"] == 1500
    # the value per year is the total over the member-years: $30 / 1.25
    assert report["annualized_value_per_member_cents"] == cents_half_up(Fraction(3000) / expected_years) == 2400
    assert "$24.00 per member per year" in report["notice_text"]
    assert "1.25 member-years" in report["notice_text"]


async def test_periods_are_los_angeles_days(program: Program):
    member = await program.member("2024-11-01")
    # 23:30 on March 31 in Los Angeles is already April 1 in UTC; 00:30 on April 1 is April 1 in both
    await program.buy(member, 30000, local("2025-03-31T23:30").isoformat())
    await program.buy(member, 15000, local("2025-04-01T00:30").isoformat())
    march = await program.figures(start="2025-03-01", end="2025-03-31")
    april = await program.figures(start="2025-04-01", end="2025-04-30")
    assert march["period"]["time_zone"] == "America/Los_Angeles"
    assert march["spend"]["qualifying_cents"] == 30000
    assert april["spend"]["qualifying_cents"] == 15000
    assert march["reproducibility"]["as_of"] == "2025-04-01T07:00:00Z"  # midnight, daylight time


async def test_a_value_of_zero_answers_every_figure_and_withholds_the_notice(program: Program):
    member = await program.member("2024-12-01")
    await program.buy(member, 5000, "2025-02-01")  # earns points, no reward redeemed
    response = await program.report()
    assert response.status_code == 200
    report = response.json()
    assert set(report) == SPEC_KEYS
    assert report["notice_text"] is None
    assert "$0.00" in report["notice_withheld"] and "11 CCR §7080(b)" in report["notice_withheld"]
    assert report["spend"] == {"qualifying_cents": 5000, "card_cents": 0}
    assert report["members"]["counted"] == 1 and report["members"]["member_years"] == 1.0
    assert report["value_per_member_cents"]["mean"] == 0
    assert report["annualized_value_per_member_cents"] == 0


async def test_nobody_counted_answers_200_without_a_notice(program: Program, four_members: People):
    response = await program.report(start="2019-01-01", end="2019-12-31")
    assert response.status_code == 200
    report = response.json()
    assert report["members"]["counted"] == 0 and report["members"]["member_years"] == 0.0
    assert report["notice_text"] is None
    assert "Nobody was counted" in report["notice_withheld"] and "§7080(b)" in report["notice_withheld"]
    assert report["annualized_value_per_member_cents"] is None
    assert any("before the first enrollment on record (December 1, 2024)" in w for w in report["warnings"])


async def test_a_future_period_has_no_publishable_notice(program: Program, four_members: People):
    year = datetime.now(LA).year + 4
    for params in ({}, {"method": "expenses_plus_program", "program_expense_cents": 500000}):
        response = await program.report(start=f"{year}-01-01", end=f"{year}-12-31", **params)
        assert response.status_code == 200
        report = response.json()
        assert report["notice_text"] is None
        assert "has not begun" in report["notice_withheld"]
        assert any(w.startswith("The period has not begun") for w in report["warnings"])


async def test_an_open_period_has_the_same_digest_twice_and_says_it_is_running(program: Program):
    today = datetime.now(LA).date()
    start, end = today - timedelta(days=40), today + timedelta(days=40)
    member = await program.member((datetime.now(UTC) - timedelta(days=60)).isoformat())
    bought = await program.buy(member, 30000, (datetime.now(UTC) - timedelta(days=20)).isoformat())
    await program.buy(member, 1000, (datetime.now(UTC) - timedelta(days=10)).isoformat(),
                      rewards=(bought["rewards_issued"][0]["code"],))
    first = await program.figures(start=start.isoformat(), end=end.isoformat())
    second = await program.figures(start=start.isoformat(), end=end.isoformat())
    assert first["reproducibility"]["digest"] == second["reproducibility"]["digest"]
    assert first["reproducibility"]["as_of"] < second["reproducibility"]["as_of"]  # as of the read, beside it
    assert any(w.startswith("The period is still running") for w in first["warnings"])
    # member-years so far: from the period's start to the read, not to the period's end
    assert 0.1 < first["members"]["member_years"] <= round(41 / 365, 4)
    assert first["notice_text"] is not None
    # a row that changes changes the digest
    await program.buy(member, 2500, (datetime.now(UTC) - timedelta(days=1)).isoformat())
    third = await program.figures(start=start.isoformat(), end=end.isoformat())
    assert third["reproducibility"]["digest"] != first["reproducibility"]["digest"]


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

    # nobody redeemed anything: the default method has no estimate, yet every figure is there
    zero = await program.figures()
    assert zero["notice_text"] is None and zero["members"]["counted"] == 3
    report = await program.figures(method="rewards_issued")
    assert report["value_per_member_cents"]["mean"] == 1000
    spans = [(datetime(2024, 6, 1, 12, tzinfo=UTC), datetime(2025, 5, 1, 12, tzinfo=UTC)),
             (datetime(2025, 3, 1, 12, tzinfo=UTC), None),
             (datetime(2025, 2, 1, 12, tzinfo=UTC), datetime(2025, 6, 1, 12, tzinfo=UTC))]
    years = years_enrolled(spans, date(2025, 1, 1), date(2025, 12, 31), local("2026-01-01T00:00"))
    assert report["members"] == {"at_start": 1, "at_end": 1, "enrolled": 2, "cancelled": 2, "erased": 1,
                                 "counted": 3, "member_years": float(round(Fraction(years), 4))}
    assert report["annualized_value_per_member_cents"] == cents_half_up(Fraction(3000) / years)
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
    assert rows["members.member_years"] == "4.0"
    assert rows["period.time_zone"] == "America/Los_Angeles"
    assert rows["value_per_member_cents.mean"] == "750"
    assert rows["by_segment.others.share_zero"] == "0.6667"
    assert rows["rewards.redemption_rate"] == "0.6"
    assert rows["reproducibility.rows_read.purchases"] == "5"
    assert rows["reproducibility.rules_versions"] == "1"
    assert rows["notice_withheld"] == ""
    assert "$7.50 per member per year" in rows["notice_text"]
    json_report = await program.figures()
    assert rows["reproducibility.digest"] == json_report["reproducibility"]["digest"]
    assert len(rows) == 73  # every leaf of the JSON
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
    # for counsel: dates in words, the method, assumptions, warnings, categories, sign-off lines
    for words in ("January 1, 2025 to December 31, 2025", "Assumptions and limitations", "Warnings",
                  "Personal information the program uses", "Prepared by", "Approved by counsel",
                  "(b)(5)(B) Method of calculation", "purchase history", "America/Los_Angeles"):
        assert words in page, words


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
    assert {"get", "put"} <= set(schema["paths"]["/v1/program/disclosures"])
