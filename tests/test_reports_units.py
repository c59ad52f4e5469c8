"""The pure parts of the reports: rounding, assembly from what SQL read, the notice, renderers."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from fractions import Fraction

import pytest

from incentives import liability, notice, render, valuation
from incentives.valuation import Bin, Period, Read, ReportRequest, SegmentFigures
from rewards.errors import NoEstimate
from rewards.rules import DEFAULT_RULES

YEAR_2025 = Period(date(2025, 1, 1), date(2025, 12, 31))


def four_members_read(**overrides: object) -> Read:
    """What the SQL reads for the issue's example: values $20, $10, $0, $0; one card holder."""
    fields = dict(
        members={"at_start": 0, "at_end": 4, "enrolled": 4, "cancelled": 0, "erased": 0, "counted": 4},
        spend={"qualifying_cents": 105000, "card_cents": 60000},
        points={"earned_point_cents": 165000, "bonus_point_cents": 60000, "reversed_point_cents": 0,
                "forfeited_point_cents": 0},
        rewards={"issued_count": 5, "issued_cents": 5000, "redeemed_count": 3, "redeemed_cents": 3000,
                 "expired_count": 2, "expired_cents": 2000, "voided_count": 0, "voided_cents": 0},
        segments={
            "all": SegmentFigures(4, 3000, (0, 0, 1000, 2000, 2000), 2000, 2),
            "card_holders": SegmentFigures(1, 2000, (2000,) * 5, 2000, 0),
            "others": SegmentFigures(3, 1000, (0, 0, 1000, 1000, 1000), 1000, 2),
        },
        histogram=[Bin(0, 0, 2), Bin(1000, 1000, 1), Bin(2000, 2000, 1)],
        rules_versions=[1],
        rows_read={"members": 4},
        table_digests={"members": "ab"},
        earning_per_100=(10000, 20000),
        reward_threshold_point_cents=30000,
        reward_value_cents=1000,
        snapshot_time=datetime(2026, 11, 1, tzinfo=UTC),
    )
    fields.update(overrides)
    return Read(**fields)  # type: ignore[arg-type]


def test_half_up_rounds_halves_up_once():
    assert valuation.half_up(Fraction(1, 2)) == 1
    assert valuation.half_up(Fraction(1000, 3)) == 333
    assert valuation.half_up(Fraction(2, 3)) == 1
    assert valuation.half_up(750) == 750


def test_ratio_has_four_decimals_and_none_for_nothing():
    assert valuation.ratio(2, 3) == 0.6667
    assert valuation.ratio(1, 2) == 0.5
    assert valuation.ratio(0, 0) is None


def test_annualised_value_scales_by_days():
    assert valuation.annualized(Fraction(750), 365) == 750
    assert valuation.annualized(Fraction(500), 28) == 6518
    assert valuation.annualized(Fraction(750), 366) == 748  # a leap year: 750 * 365 / 366


def test_period_bounds_are_whole_utc_days():
    period = Period(date(2025, 2, 1), date(2025, 2, 28))
    assert period.days == 28
    assert period.lower == datetime(2025, 2, 1, tzinfo=UTC)
    assert period.upper == datetime(2025, 3, 1, tzinfo=UTC)


def test_as_of_is_the_period_end_once_it_has_passed():
    assert valuation.as_of(YEAR_2025, datetime(2026, 5, 1, tzinfo=UTC)) == datetime(2026, 1, 1, tzinfo=UTC)
    now = datetime(2025, 6, 1, 8, 30, tzinfo=UTC)
    assert valuation.as_of(YEAR_2025, now) == now


@pytest.mark.parametrize(("request_", "field"), [
    (ReportRequest("coupons", YEAR_2025), "program"),
    (ReportRequest("rewards", YEAR_2025, method="profit"), "method"),
    (ReportRequest("rewards", Period(date(2025, 2, 1), date(2025, 1, 1))), "to"),
    (ReportRequest("rewards", Period(date(2000, 1, 1), date(2025, 1, 1))), "to"),
    (ReportRequest("rewards", YEAR_2025, method="expenses_plus_program"), "program_expense_cents"),
    (ReportRequest("rewards", YEAR_2025, program_expense_cents=1), "program_expense_cents"),
    (ReportRequest("rewards", YEAR_2025, method="expenses_plus_program", program_expense_cents=-1),
     "program_expense_cents"),
    (ReportRequest("rewards", YEAR_2025, min_cell_size=0), "min_cell_size"),
])
def test_bad_requests_name_their_field(request_: ReportRequest, field: str):
    assert valuation.check_request(request_)[0][0] == field


def test_a_good_request_has_no_problem():
    assert valuation.check_request(ReportRequest("mailing_list", YEAR_2025, method="expenses_plus_program",
                                                 program_expense_cents=0, min_cell_size=10)) == []


def test_assembly_of_the_four_member_example():
    result = valuation.assemble(ReportRequest("rewards", YEAR_2025), four_members_read(), notice.paragraph)
    r = result.report
    assert r.value_per_member_cents.mean == 750 and r.value_per_member_cents.share_zero == 0.5
    assert r.by_segment.others.mean == 333 and r.by_segment.others.share_zero == 0.6667
    assert r.rewards.redemption_rate == 0.6
    assert r.annualized_value_per_member_cents == 750
    assert r.reproducibility.as_of == datetime(2026, 1, 1, tzinfo=UTC)
    assert result.value_per_100_spend_cents == Fraction(3000 * 10000, 105000)


def test_program_expense_moves_every_member_by_the_same_share():
    result = valuation.assemble(
        ReportRequest("rewards", YEAR_2025, method="expenses_plus_program", program_expense_cents=1001),
        four_members_read(), notice.paragraph,
    )
    d = result.report.value_per_member_cents
    # 1001 / 4 = 250.25 on top of each value
    assert (d.mean, d.median, d.p75, d.max, d.share_zero) == (1000, 250, 1250, 2250, 0.0)
    assert result.histogram == [Bin(250, 250, 2), Bin(1250, 1250, 1), Bin(2250, 2250, 1)]


def test_the_digest_follows_the_inputs_and_nothing_else():
    request = ReportRequest("rewards", YEAR_2025)
    first = valuation.digest(request, four_members_read(), datetime(2026, 1, 1, tzinfo=UTC))
    assert first == valuation.digest(request, four_members_read(), datetime(2026, 1, 1, tzinfo=UTC))
    assert first != valuation.digest(request, four_members_read(table_digests={"members": "cd"}),
                                     datetime(2026, 1, 1, tzinfo=UTC))
    assert first != valuation.digest(ReportRequest("rewards", YEAR_2025, method="rewards_issued"),
                                     four_members_read(), datetime(2026, 1, 1, tzinfo=UTC))


def facts(**overrides: object) -> valuation.NoticeFacts:
    """The notice's facts for the four-member example, with some changed."""
    base = valuation.assemble(ReportRequest("rewards", YEAR_2025), four_members_read(), lambda f: "").notice_facts
    return dataclasses.replace(base, **overrides)  # type: ignore[arg-type]


def test_notice_states_estimate_method_variation_and_how_to_opt_in_and_out():
    text = notice.paragraph(facts())
    assert "$7.50 per member per year" in text
    assert "expenses of providing the program's incentive (11 CCR §7081(a)(6))" in text
    assert "redeemed by the 4 members enrolled in 2025" in text
    assert "varies depending on the number of $10 Rewards redeemed" in text
    assert "Every $100 of qualifying purchases earns 100 points" in text
    assert "To join, enroll" in text and "withdraw at any time" in text
    assert "expressed per year" not in text


@pytest.mark.parametrize("overrides", [{"counted": 0}, {"annualized_cents": 0}, {"suppressed": True}])
def test_no_estimate_no_notice(overrides: dict):
    with pytest.raises(NoEstimate) as refused:
        notice.paragraph(facts(**overrides))
    assert refused.value.status == 422 and refused.value.code == "no_estimate"


def test_mailing_notice_tells_how_to_subscribe_and_stop():
    text = notice.paragraph(facts(program="mailing_list"))
    assert "per subscriber per year" in text
    assert "texting STOP" in text and "sign up" in text


def test_money_and_period_words():
    assert notice.dollars(123456) == "$1,234.56"
    assert notice.dollars(Fraction(57, 2)) == "$0.29"
    assert notice.short_dollars(1000) == "$10" and notice.short_dollars(1050) == "$10.50"
    assert notice.period_words(YEAR_2025) == "in 2025"
    assert notice.period_words(Period(date(2025, 3, 1), date(2025, 3, 31))) == "from March 1, 2025 to March 31, 2025"


def test_csv_flattens_every_leaf():
    rows = dict(render.flatten({"a": {"b": 1, "c": None, "d": [1, 2], "e": True}, "f": "x"}))
    assert rows == {"a.b": "1", "a.c": "", "a.d": "1 2", "a.e": "true", "f": "x"}


def test_chart_draws_a_bar_for_each_bin_that_holds_anyone():
    svg = render.chart_svg([Bin(0, 0, 4), Bin(1, 99, 0), Bin(100, 199, 2)])
    assert svg.count('<rect class="bar"') == 2
    assert 'height="216.0"' in svg and 'height="108.0"' in svg
    assert render.chart_svg([]).count("<rect") == 0


def test_html_escapes_what_it_shows():
    result = valuation.assemble(ReportRequest("rewards", YEAR_2025), four_members_read(),
                                lambda f: "Tom & Jerry's <b>notice</b>")
    page = render.to_html(result).decode()
    assert "Tom &amp; Jerry&#x27;s &lt;b&gt;notice&lt;/b&gt;" in page
    assert "<b>notice</b>" not in page


def test_liability_values_points_at_the_reward_rate_and_ages_rewards():
    assert liability.point_value_cents(15000, DEFAULT_RULES) == 500
    assert liability.point_value_cents(15, DEFAULT_RULES) == 1  # half a cent rounds up
    points = {"point_cents": 15000, "members_with_points": 1, "negative_point_cents": 0, "members_negative": 0,
              "ledger_rows": 9}
    buckets = [{"bucket": "later", "count": 1, "cents": 1000}, {"bucket": "expired", "count": 2, "cents": 2000}]
    report = liability.assemble(date(2025, 4, 15), points, buckets, DEFAULT_RULES)
    assert report.rewards_unredeemed.aged.later.count == 1
    assert report.rewards_unredeemed.outstanding_cents == 1000
    assert report.rewards_unredeemed.cents == 3000
    assert report.total_liability_cents == 1500
    assert report.cutoff == datetime(2025, 4, 16, tzinfo=UTC)
