"""The guest page's words and barcodes, as pure functions: what a guest reads, figure by figure."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rewards.pages import barcodes, words
from rewards.pages.words import Entry

LA = ZoneInfo("America/Los_Angeles")


@pytest.mark.parametrize(("point_cents", "shown"), [
    (4550, "45.50"), (0, "0.00"), (5, "0.05"), (123456789, "1,234,567.89"), (-1200, "-12.00"), (-7, "-0.07"),
])
def test_points_are_shown_with_their_hundredths_and_thousands_separators(point_cents: int, shown: str) -> None:
    assert words.points(point_cents) == shown


@given(st.integers(min_value=-10**12, max_value=10**12))
def test_points_shown_read_back_as_the_same_point_cents(point_cents: int) -> None:
    text = words.points(point_cents).replace(",", "")
    whole, _, hundredths = text.lstrip("-").partition(".")
    assert len(hundredths) == 2
    assert (-1 if text.startswith("-") else 1) * (int(whole) * 100 + int(hundredths)) == point_cents


@pytest.mark.parametrize(("cents", "shown"), [(1000, "$10"), (1050, "$10.50"), (5, "$0.05"), (250000, "$2,500")])
def test_money_drops_the_cents_only_when_there_are_none(cents: int, shown: str) -> None:
    assert words.money(cents) == shown


def test_signed_points_use_a_true_minus_sign() -> None:
    assert words.signed_points(4550) == "+45.50"
    assert words.signed_points(-30000) == "\u2212300.00"
    assert words.signed_points(0) == "0.00"


def test_expiry_counts_calendar_days_in_the_programs_time_zone() -> None:
    now = datetime(2026, 11, 25, 18, 0, tzinfo=UTC)  # 10:00 in Los Angeles
    assert words.expires_in(now + timedelta(days=90), now, LA) == "expires in 90 days"
    # 23:30 the same evening in Los Angeles (07:30 UTC the next day) is still today there
    assert words.expires_in(datetime(2026, 11, 26, 7, 30, tzinfo=UTC), now, LA) == "expires today"
    assert words.expires_in(datetime(2026, 11, 26, 20, 0, tzinfo=UTC), now, LA) == "expires tomorrow"
    assert words.expires_in(now - timedelta(hours=1), now, LA) == "expires today"
    assert words.day(datetime(2027, 2, 23, 5, 0, tzinfo=UTC), LA) == "Feb 22, 2027"


def test_card_numbers_and_phones_are_grouped_as_people_read_them() -> None:
    assert words.card_number("7020418733569012") == "7020 4187 3356 9012"
    assert words.phone("+15551234567") == "(555) 123-4567"
    assert words.phone("+447911123456") == "+447911123456"
    assert words.first_name("Ann Lee") == "Ann"
    assert words.first_name("  ") is None


def test_progress_is_clipped_between_zero_and_the_threshold() -> None:
    assert words.progress(2468, 30000) == 2468
    assert words.progress(-500, 30000) == 0
    assert words.progress(31000, 30000) == 30000


@pytest.mark.parametrize(("entry", "sentence"), [
    (Entry(kind="earn", point_cents=4550, store_id="S012"), "45.50 points for a purchase at store S012"),
    (Entry(kind="earn", point_cents=4550, store_id="WEB", online=True), "45.50 points for an online order"),
    (Entry(kind="card_bonus", point_cents=4550, store_id="S012"),
     "45.50 bonus points for paying with the Westique Credit Card (a purchase at store S012)"),
    (Entry(kind="reward_issued", point_cents=-30000, reward_code="WR1", reward_value_cents=1000),
     "300.00 points turned into your $10 reward WR1"),
    (Entry(kind="reward_redeemed", point_cents=0, store_id="S007", reward_code="WR1", reward_value_cents=1000),
     "$10 reward WR1 used on a purchase at store S007"),
    (Entry(kind="reward_voided", point_cents=30000, store_id="S012", reward_code="WR1", reward_value_cents=1000,
           by_return=True),
     "$10 reward WR1 taken back by a return from a purchase at store S012; its 300.00 points came back"),
    (Entry(kind="reward_voided", point_cents=0, reward_code="WR1", reward_value_cents=1000),
     "$10 reward WR1 closed when the membership was cancelled"),
    (Entry(kind="return", point_cents=-1200, store_id="S012"),
     "12.00 points taken back for items returned from a purchase at store S012"),
    (Entry(kind="forfeit", point_cents=-2468), "24.68 points given up when the membership was cancelled"),
    (Entry(kind="adjustment", point_cents=500), "5.00 points added by Guest Services"),
    (Entry(kind="adjustment", point_cents=-500), "5.00 points taken off by Guest Services"),
    (Entry(kind="reward_expired", point_cents=0, reward_code="WR1", reward_value_cents=1000),
     "$10 reward WR1 expired unused"),
    (Entry(kind="something_new", point_cents=100), "1.00 points: something new"),
])
def test_each_ledger_entry_is_explained_in_words(entry: Entry, sentence: str) -> None:
    assert words.explain(entry) == sentence


@pytest.mark.parametrize("text", ["WR3F9A61C0B27D4E85", "7020418733569012", "702041873356901"])
def test_a_barcode_draws_python_barcodes_modules_between_quiet_zones(text: str) -> None:
    svg = str(barcodes.code128_svg(text, label=f"code {text}"))
    pattern = barcodes.modules(text)
    assert pattern.startswith("11010") and pattern.endswith("1100011101011")  # a Code 128 start and stop
    width = len(pattern) + 2 * barcodes.QUIET_ZONE
    assert f'viewBox="0 0 {width} {barcodes.HEIGHT}"' in svg
    bars = [(int(x), int(w)) for x, w in re.findall(r"M(\d+) 0h(\d+)v", svg)]
    drawn = ["0"] * len(pattern)
    for x, w in bars:
        assert x >= barcodes.QUIET_ZONE and x + w <= barcodes.QUIET_ZONE + len(pattern)
        drawn[x - barcodes.QUIET_ZONE:x - barcodes.QUIET_ZONE + w] = ["1"] * w
    assert "".join(drawn) == pattern


def test_a_barcode_has_no_style_attribute_for_the_policy_to_block_and_escapes_its_label() -> None:
    svg = str(barcodes.code128_svg("WR1", label='reward "WR1" <b>'))
    assert "style" not in svg and "<script" not in svg
    assert 'aria-label="reward &#34;WR1&#34; &lt;b&gt;"' in svg
    assert svg.startswith("<svg ") and 'role="img"' in svg
