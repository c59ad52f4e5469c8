"""The pure parts of the reports: rounding, periods, assembly, suppression, warnings, the notice, renderers."""

from __future__ import annotations

import importlib.util

import dataclasses
import math
import re
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from incentives import caveats, distribution, liability, notice, render, suppression, valuation
from incentives.arithmetic import half_up, ratio
from incentives.disclosures import Disclosures, problems
from incentives.periods import Period
from incentives.suppression import Bin
from incentives.valuation import Read, ReportRequest
from rewards.rules import DEFAULT_RULES, Rules

YEAR_2025 = Period(date(2025, 1, 1), date(2025, 12, 31))
YEAR_SECONDS = 365 * 86400
ROOT = Path(__file__).resolve().parent.parent


def installed_disclosures() -> Disclosures:
    """The disclosures a new install stores (the revision that creates them)."""
    path = ROOT / "sql" / "versions" / "0003_disclosures.py"
    spec = importlib.util.spec_from_file_location("revision_0003", path)
    assert spec is not None and spec.loader is not None
    revision = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(revision)
    return msgspec.convert(revision.DEFAULT_DISCLOSURES, Disclosures)


DISCLOSURES = installed_disclosures()


def four_members_read(**overrides: object) -> Read:
    """What the SQL reads for the issue's example: values $20, $10, $0, $0; one card holder."""
    fields = dict(
        members={"at_start": 4, "at_end": 4, "enrolled": 0, "cancelled": 0, "erased": 0},
        member_seconds=Fraction(4 * YEAR_SECONDS),
        counted_without_time=0,
        spend={"qualifying_cents": 105000, "card_cents": 60000},
        points={"earned_point_cents": 165000, "bonus_point_cents": 60000, "reversed_point_cents": 0,
                "forfeited_point_cents": 0},
        rewards={"issued_count": 5, "issued_cents": 5000, "redeemed_count": 3, "redeemed_cents": 3000,
                 "expired_count": 2, "expired_cents": 2000, "voided_count": 0, "voided_cents": 0},
        segments=distribution.segments([(True, 2000, 1), (False, 1000, 1), (False, 0, 2)]),
        histogram=[Bin(0, 0, 2), Bin(1000, 1000, 1), Bin(2000, 2000, 1)],
        rules_versions=[1],
        rows_read={"members": 4},
        table_digests={"members": "ab"},
        rules=DEFAULT_RULES,
        disclosures=DISCLOSURES,
        disclosures_version=1,
        snapshot_time=datetime(2026, 11, 1, tzinfo=UTC),
        first_joined=datetime(2024, 12, 1, 12, tzinfo=UTC),
        first_purchase=datetime(2025, 1, 2, tzinfo=UTC),
        last_purchase=datetime(2025, 12, 30, tzinfo=UTC),
    )
    fields.update(overrides)
    return Read(**fields)  # type: ignore[arg-type]


def assemble(request: ReportRequest | None = None, **overrides: object) -> valuation.Valuation:
    return valuation.assemble(request or ReportRequest("rewards", YEAR_2025), four_members_read(**overrides),
                              notice.paragraph)


# --- arithmetic and periods ------------------------------------------------------------------


def test_half_up_rounds_halves_up_once():
    assert half_up(Fraction(1, 2)) == 1
    assert half_up(Fraction(1000, 3)) == 333
    assert half_up(Fraction(2, 3)) == 1
    assert half_up(750) == 750


def test_ratio_has_four_decimals_and_none_for_nothing():
    assert ratio(2, 3) == 0.6667
    assert ratio(1, 2) == 0.5
    assert ratio(Fraction(5, 4), 1) == 1.25
    assert ratio(0, 0) is None


def test_annualised_value_is_the_total_over_member_years():
    assert valuation.annualized(3000, 4 * YEAR_SECONDS) == 750
    assert valuation.annualized(3000, 5 * YEAR_SECONDS // 4) == 2400  # 1.25 member-years
    assert valuation.annualized(2000, 4 * 28 * 86400) == 6518  # 2000 * 365 / 112 = 6517.86
    assert valuation.annualized(100, 0) is None


def test_period_bounds_are_local_midnights_in_the_program_zone():
    winter = Period(date(2025, 2, 1), date(2025, 2, 28))
    assert winter.days == 28
    assert winter.lower == datetime(2025, 2, 1, 8, tzinfo=UTC)  # PST, UTC-8
    assert winter.upper == datetime(2025, 3, 1, 8, tzinfo=UTC)
    summer = Period(date(2025, 7, 1), date(2025, 7, 31))
    assert summer.lower == datetime(2025, 7, 1, 7, tzinfo=UTC)  # PDT, UTC-7
    assert Period(date(2025, 2, 1), date(2025, 2, 1), "UTC").upper == datetime(2025, 2, 2, tzinfo=UTC)


def test_as_of_is_the_period_end_once_it_has_passed():
    assert valuation.as_of(YEAR_2025, datetime(2026, 5, 1, tzinfo=UTC)) == datetime(2026, 1, 1, 8, tzinfo=UTC)
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


# --- the distribution ------------------------------------------------------------------------


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 50).map(lambda n: n * 100), st.integers(1, 40)),
                min_size=1, max_size=30))
def test_percentiles_are_percentile_disc_over_every_member(counts: list[tuple[bool, int, int]]):
    found = distribution.segments(counts)
    everyone = sorted(cents for _, cents, members in counts for _ in range(members))
    figures = found["all"]
    assert figures.counted == len(everyone) and figures.total_cents == sum(everyone)
    for p, value, holders in zip(valuation.PERCENTILES, figures.percentiles, figures.holders, strict=True):
        expected = everyone[max(1, math.ceil(p * len(everyone))) - 1]  # PostgreSQL's percentile_disc
        assert value == expected and holders == everyone.count(expected)
    assert (figures.max_cents, figures.max_holders) == (everyone[-1], everyone.count(everyone[-1]))
    assert figures.zero == everyone.count(0)


def test_histogram_has_round_bars_when_values_are_many():
    counts = [(False, n * 100, 1) for n in range(1, 27)]  # $1 .. $26
    bars = distribution.histogram(counts)
    assert distribution.round_width(2600) == 200
    assert bars[0] == Bin(0, 0, 0)
    assert bars[1:] == [Bin(k * 200 - 199, k * 200, 2) for k in range(1, 14)]
    assert distribution.histogram([(False, 0, 3), (True, 1000, 1)]) == [Bin(0, 0, 3), Bin(1000, 1000, 1)]


# --- assembly --------------------------------------------------------------------------------


def test_assembly_of_the_four_member_example():
    result = assemble()
    r = result.report
    assert r.value_per_member_cents.mean == 750 and r.value_per_member_cents.share_zero == 0.5
    assert r.by_segment.others.mean == 333 and r.by_segment.others.share_zero == 0.6667
    assert r.rewards.redemption_rate == 0.6
    assert r.members.member_years == 4.0
    assert r.annualized_value_per_member_cents == 750
    assert r.reproducibility.as_of == datetime(2026, 1, 1, 8, tzinfo=UTC)
    assert result.value_per_100_spend_cents == Fraction(3000 * 10000, 105000)
    assert r.notice_withheld is None and "$7.50 per member per year" in r.notice_text


def test_program_expense_moves_every_member_by_the_same_share():
    result = assemble(ReportRequest("rewards", YEAR_2025, method="expenses_plus_program", program_expense_cents=1001))
    d = result.report.value_per_member_cents
    # 1001 / 4 = 250.25 on top of each value
    assert (d.mean, d.median, d.p75, d.max, d.share_zero) == (1000, 250, 1250, 2250, 0.0)
    assert result.histogram == [Bin(250, 250, 2), Bin(1250, 1250, 1), Bin(2250, 2250, 1)]
    assert result.report.annualized_value_per_member_cents == 1000  # ($30 + $10.01) / 4 member-years


def test_the_digest_follows_the_input_rows_and_not_the_time_of_the_read():
    request = ReportRequest("rewards", YEAR_2025)
    first = valuation.digest(request, four_members_read())
    running = four_members_read(snapshot_time=datetime(2025, 6, 1, tzinfo=UTC))
    assert valuation.digest(request, running) == first
    assert first != valuation.digest(request, four_members_read(table_digests={"members": "cd"}))
    assert first != valuation.digest(request, four_members_read(disclosures_version=2))
    assert first != valuation.digest(ReportRequest("rewards", YEAR_2025, method="rewards_issued"), four_members_read())
    assert first != valuation.digest(ReportRequest("rewards", Period(date(2025, 1, 1), date(2025, 12, 31), "UTC")),
                                     four_members_read())


@pytest.mark.parametrize(("overrides", "words"), [
    ({"segments": {}, "member_seconds": Fraction(0)}, "Nobody was counted"),
    ({"segments": distribution.segments([(False, 0, 4)])}, "$0.00"),
    ({"snapshot_time": datetime(2024, 6, 1, tzinfo=UTC)}, "has not begun"),
])
def test_no_estimate_means_no_notice_and_a_reason(overrides: dict, words: str):
    r = assemble(**overrides).report
    assert r.notice_text is None and words in r.notice_withheld


def test_min_cell_size_withholds_every_figure_of_fewer_members():
    r = assemble(ReportRequest("rewards", YEAR_2025, min_cell_size=2)).report
    # $20 and $10 are each one member's: the 75th, 90th, 99th percentiles and the maximum are withheld
    d = r.value_per_member_cents
    assert (d.mean, d.p25, d.median, d.p75, d.p90, d.p99, d.max, d.share_zero) == (750, 0, 0, None, None, None,
                                                                                     None, 0.5)
    assert r.by_segment.card_holders.suppressed and r.by_segment.others.counted is None
    result = assemble(ReportRequest("rewards", YEAR_2025, min_cell_size=2))
    assert result.histogram == [Bin(0, 0, 2), Bin(1000, None, 2)]  # no bar of one member, top open-ended
    assert set(r.suppression.withheld) >= {"value_per_member_cents.max", "by_segment", "chart"}
    assert "one in ten" not in r.notice_text and "$20.00" not in r.notice_text


def test_value_of_fewer_members_than_the_cell_size_withholds_the_estimate():
    r = assemble(ReportRequest("rewards", YEAR_2025, min_cell_size=3)).report
    assert r.annualized_value_per_member_cents is None and r.value_per_member_cents.mean is None
    assert r.rewards.redeemed_cents is None and r.notice_text is None
    assert "minimum cell size of 3" in r.notice_withheld
    assert r.spend.qualifying_cents == 105000  # four members counted: the program's totals stay


def test_suppression_rules():
    assert suppression.shown_value(2000, 1, 2) is None and suppression.shown_value(2000, 2, 2) == 2000
    assert suppression.shown_value(2000, 1, None) == 2000
    assert suppression.share_shown(0, 5, 3) and suppression.share_shown(5, 5, 3)
    assert not suppression.share_shown(4, 5, 3)  # one member above $0: with the mean, their value
    assert suppression.merge_bins([Bin(0, 0, 4), Bin(5000, 5000, 1)], 3) == [Bin(0, None, 5)]
    assert suppression.merge_bins([Bin(0, 0, 1), Bin(1, 9, 0), Bin(10, 19, 3), Bin(20, 29, 3)], 3) == [
        Bin(0, 19, 4), Bin(20, None, 3)]
    assert suppression.merge_bins([Bin(0, 0, 1)], None) == [Bin(0, 0, 1)]


# --- warnings --------------------------------------------------------------------------------


def circumstances(**overrides: object) -> caveats.Circumstances:
    fields = dict(program="rewards", period=YEAR_2025, snapshot_time=datetime(2026, 3, 1, tzinfo=UTC),
                  as_of=YEAR_2025.upper, first_joined=datetime(2020, 1, 1, tzinfo=UTC),
                  first_purchase=datetime(2025, 1, 1, 9, tzinfo=UTC), last_purchase=datetime(2025, 12, 31, 9, tzinfo=UTC),
                  counted=500, counted_without_time=0, unmatched=0, rules_versions=[1], rules_quoted=1,
                  min_cell_size=10, smallest_segment=100)
    fields.update(overrides)
    return caveats.Circumstances(**fields)  # type: ignore[arg-type]


def test_a_full_period_with_data_throughout_has_no_warning():
    assert caveats.warnings(circumstances()) == []


def test_warnings_say_in_words_what_to_know():
    running = caveats.warnings(circumstances(snapshot_time=datetime(2025, 7, 2, 19, tzinfo=UTC),
                                             as_of=datetime(2025, 7, 2, 19, tzinfo=UTC)))
    assert running[0].startswith("The period is still running: it ends on December 31, 2025")
    assert "183 of its 365 days" in running[0]
    late = caveats.warnings(circumstances(first_joined=datetime(2025, 12, 1, 20, tzinfo=UTC),
                                          first_purchase=datetime(2025, 12, 2, 20, tzinfo=UTC)))
    assert "before the first enrollment on record (December 1, 2025): 334 of its 365 days" in late[0]
    sparse = caveats.warnings(circumstances(first_purchase=datetime(2025, 12, 1, 20, tzinfo=UTC)))
    assert "dated from December 1, 2025 to December 31, 2025 only" in sparse[0]
    changed = caveats.warnings(circumstances(rules_versions=[1, 2], rules_quoted=2))
    assert "rules changed during the period (versions 1, 2)" in changed[0]
    few = caveats.warnings(circumstances(min_cell_size=None, smallest_segment=3))
    assert "fewer than 10 members" in few[0]


# --- the notice and the disclosures ----------------------------------------------------------


def facts(**overrides: object) -> valuation.NoticeFacts:
    """The notice's facts for the four-member example, with some changed."""
    return dataclasses.replace(assemble().notice_facts, **overrides)  # type: ignore[arg-type]


def test_notice_elements_come_in_the_order_of_7016b():
    found = notice.elements(facts())
    assert list(found) == ["summary", "material_terms", "opt_in", "withdrawal", "estimate", "method",
                           "reasonably_related"]
    assert all(found.values())
    assert "$7.50 per member per year" in " ".join(found["estimate"])


def test_notice_quotes_the_rules_in_force():
    cheaper = Rules(version=2, points_per_dollar=2, card_bonus_points_per_dollar=0, reward_threshold_points=200,
                    reward_value_cents=500, reward_validity_days=30, excluded_categories=("gift_card", "alcohol"))
    text = notice.paragraph(facts(rules=cheaper))
    assert "Members earn 2 points for every $1" in text and "a bonus of 0 points" in text
    assert "receive a $5 Reward for every 200 points" in text
    assert "expire 30 days after they are issued" in text
    assert "Purchases of gift cards and alcohol do not earn points" in text
    assert "every $100 of qualifying purchases earns 200 points, worth $5.00" in text


def test_a_sentence_quoting_a_withheld_figure_is_left_out():
    text = notice.paragraph(facts(share_zero=None))
    assert "redeemed no Reward" not in text and "$7.50 per member per year" in text


def test_the_installed_disclosures_are_complete_and_templates_are_checked():
    assert problems(DISCLOSURES) == []
    broken = msgspec.structs.replace(DISCLOSURES, notice=msgspec.structs.replace(
        DISCLOSURES.notice, rewards=msgspec.structs.replace(
            DISCLOSURES.notice.rewards, estimate=["We value it at {estimat}."], withdrawal=["Call us {"])))
    found = problems(broken)
    assert any(f == "notice.rewards.estimate" and "unknown placeholder {estimat}" in m for f, m in found)
    assert ("notice.rewards.estimate", "estimate must state {estimate}") in found
    assert any(f == "notice.rewards.withdrawal" and "lone brace" in m for f, m in found)


def test_mailing_notice_tells_how_to_subscribe_and_stop():
    text = notice.paragraph(facts(program="mailing_list"))
    assert "per subscriber per year" in text
    assert "texting STOP" in text and "sign up" in text


def test_money_and_period_words():
    from incentives import words

    assert words.dollars(123456) == "$1,234.56"
    assert words.dollars(Fraction(57, 2)) == "$0.29"
    assert words.short_dollars(1000) == "$10" and words.short_dollars(1050) == "$10.50"
    assert words.period_words(date(2025, 1, 1), date(2025, 12, 31)) == "in 2025"
    assert words.period_words(date(2025, 3, 1), date(2025, 3, 31)) == "from March 1, 2025 to March 31, 2025"
    assert words.instant(datetime(2025, 3, 1, 0, 5, tzinfo=UTC), "America/Los_Angeles") == \
        "February 28, 2025 at 4:05 PM (America/Los_Angeles)"


# --- renderers -------------------------------------------------------------------------------


def test_csv_flattens_every_leaf():
    rows = dict(render.flatten({"a": {"b": 1, "c": None, "d": [1, 2], "e": True}, "f": "x"}))
    assert rows == {"a.b": "1", "a.c": "", "a.d": "1 2", "a.e": "true", "f": "x"}


def test_chart_draws_a_bar_for_each_bin_that_holds_anyone():
    svg = render.chart_svg([Bin(0, 0, 4), Bin(1, 99, 0), Bin(100, None, 2)])
    assert svg.count('<rect class="bar"') == 2
    assert 'height="202.0"' in svg and 'height="101.0"' in svg
    assert "$1.00 or more: 2 members" in svg
    assert render.chart_svg([]).count("<rect") == 0


def test_html_escapes_what_it_shows():
    result = valuation.assemble(ReportRequest("rewards", YEAR_2025), four_members_read(),
                                lambda f: "Tom & Jerry's <b>notice</b>")
    page = render.to_html(result).decode()
    assert "Tom &amp; Jerry&#39;s &lt;b&gt;notice&lt;/b&gt;" in page
    assert "<b>notice</b>" not in page


def test_liability_values_points_at_the_reward_rate_and_ages_rewards():
    assert liability.point_value_cents(15000, DEFAULT_RULES) == 500
    assert liability.point_value_cents(15, DEFAULT_RULES) == 1  # half a cent rounds up
    points = {"point_cents": 15000, "members_with_points": 1, "negative_point_cents": 0, "members_negative": 0,
              "ledger_rows": 9}
    buckets = [{"bucket": "later", "count": 1, "cents": 1000}, {"bucket": "expired", "count": 2, "cents": 2000}]
    cutoff = liability.close_of(date(2025, 4, 15), "America/Los_Angeles")
    assert cutoff == datetime(2025, 4, 16, 7, tzinfo=UTC)
    report = liability.assemble(date(2025, 4, 15), "America/Los_Angeles", cutoff, True, points, buckets, DEFAULT_RULES)
    assert report.rewards_unredeemed.aged.later.count == 1
    assert report.rewards_unredeemed.outstanding_cents == 1000
    assert report.rewards_unredeemed.cents == 3000
    assert report.total_liability_cents == 1500


def test_liability_refuses_a_date_to_come():
    from incentives.reports import liability_date
    from rewards.errors import ValidationFailed

    now = datetime(2025, 4, 16, 6, tzinfo=UTC)  # 11 PM on April 15 in Los Angeles
    assert liability_date(None, "America/Los_Angeles", now) == (date(2025, 4, 15), now, False)
    assert liability_date(date(2025, 4, 14), "America/Los_Angeles", now)[2] is True
    with pytest.raises(ValidationFailed) as refused:
        liability_date(date(2025, 4, 16), "America/Los_Angeles", now)
    assert refused.value.extra["field"] == "as_of"
    assert (now + timedelta(days=1)).date() == date(2025, 4, 17)
