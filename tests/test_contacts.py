"""Phones, emails and names as the desk compares and shows them (rewards.contacts): pure."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rewards.contacts import (
    NotAnEmail,
    NotAPhone,
    display_name,
    email_as_given,
    normalize_email,
    normalize_phone,
    phone_or_none,
)

FIVE_SPELLINGS = ["+15558882535", "15558882535", "5558882535", "+015558882535", "0015558882535"]


def test_the_five_spellings_of_one_number_are_one_number() -> None:
    assert {normalize_phone(text) for text in FIVE_SPELLINGS} == {"+15558882535"}


@pytest.mark.parametrize("written", ["(213) 555-0123", "213.555.0123", "+1 213 555 0123", "1-213-555-0123",
                                    " 213 555 0123 ", "２１３５５５０１２３", "+1 (213) 555-0123"])
def test_common_us_forms_are_kept_in_e164(written: str) -> None:
    assert normalize_phone(written) == "+12135550123"


def test_international_numbers_keep_their_country() -> None:
    for written in ("+44 20 7946 0958", "011 44 20 7946 0958", "0044 20 7946 0958"):
        assert normalize_phone(written) == "+442079460958"


@pytest.mark.parametrize("written", ["", "   ", "abc", "555-0123", "+1", "0155550100", "1155550100", "+12135550123999",
                                    "213 555 0123 ext. 12", "x" * 41, "+1555CALLNOW", "1-800-FLOWERS"])
def test_what_is_not_a_phone_number_is_refused_with_a_reason(written: str) -> None:
    with pytest.raises(NotAPhone) as refused:
        normalize_phone(written)
    assert str(refused.value)
    assert phone_or_none(written) is None


@given(area=st.integers(200, 999), exchange=st.integers(0, 999), line=st.integers(0, 9999),
       form=st.sampled_from(["({a}) {e}-{l}", "{a}.{e}.{l}", "+1 {a} {e} {l}", "1{a}{e}{l}", "00 1 {a} {e} {l}",
                             "+0 1 {a}-{e}-{l}", "{a}{e}{l}"]))
def test_every_form_of_a_north_american_number_gives_the_same_e164(area: int, exchange: int, line: int,
                                                                     form: str) -> None:
    a, e, l_ = f"{area:03d}", f"{exchange:03d}", f"{line:04d}"
    assert normalize_phone(form.format(a=a, e=e, l=l_)) == f"+1{a}{e}{l_}"


def test_emails_are_compared_trimmed_case_folded_and_nfkc() -> None:
    forms = ["ann.lee@example.com", "  Ann.Lee@Example.COM ", "ａnn.lee@example.com", "ANN.LEE@EXAMPLE.COM\t"]
    assert {normalize_email(text) for text in forms} == {"ann.lee@example.com"}
    # kept as given (trimmed, NFKC: no full-width letters), its case kept
    assert email_as_given("  Ａnn.Lee@Example.com ") == "Ann.Lee@Example.com"


@pytest.mark.parametrize("written", ["", "ann", "ann@", "@example.com", "ann@example", "a b@example.com",
                                    "ann@@example.com"])
def test_what_is_not_an_email_is_refused(written: str) -> None:
    with pytest.raises(NotAnEmail):
        normalize_email(written)


@pytest.mark.parametrize(("name", "shown"), [("Ann Lee", "Ann L."), ("  Ann   lee ", "Ann L."), ("Cher", "Cher"),
                                             ("Mary Ann van der Berg", "Mary B."), ("José Álvarez", "José Á."),
                                             ("", None), (None, None)])
def test_a_register_shows_the_first_name_and_the_initial_of_the_last(name: str | None, shown: str | None) -> None:
    assert display_name(name) == shown
