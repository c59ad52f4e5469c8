"""Email addresses and phone numbers as they are compared, and names as a register shows them (pure).

Two spellings of one number are one number, and two spellings of one address one address:
enrollment, correction and the register's lookup compare the normalized forms, which the
members table keeps in columns of their own (`email_normalized`, `phone_normalized`),
indexed and unique among active members.

- A phone number is parsed by Google's libphonenumber (the `phonenumbers` package) as a US
  caller writes it: `(213) 555-0123`, `213.555.0123`, `1 213 555 0123`, `+1 213 555 0123`,
  `011 44 20 7946 0958` all work, and so do the international prefix `00` used in most of the
  world and a stray zero after the plus (`+0…`), which registers' keypads produce. It is kept
  in E.164 (`+12135550123`). A number must have a complete number's length for its country (a
  7-digit local number lacks its area code), and a North American area code starts with 2 to
  9; letters are refused (a member's number is not a vanity number). Numbers are not checked
  against the ranges carriers have assigned: the 555 numbers of examples and tests would be
  refused, and a newly opened area code too.
- An email address is compared after Unicode compatibility normalization (NFKC: a full-width
  `ｊ` is `j`), trimmed, and case-folded; it is kept as given, trimmed and NFKC-normalized.
"""

from __future__ import annotations

import re
import unicodedata

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, ValidationResult

REGION = "US"
_LONGEST_PHONE = 40  # characters as typed, spaces and punctuation included
_SEPARATORS = re.compile(r"[\s().\-/]")
_EMAIL = re.compile(r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+$")
_NANP_AREA_CODE = re.compile(r"^[2-9]")


class NotAPhone(ValueError):
    """The text is not a phone number this program can keep."""


class NotAnEmail(ValueError):
    """The text is not an email address."""


def normalize_phone(text: str) -> str:
    """The number in E.164 (`+15558882535`); NotAPhone says why when it is not one."""
    written = unicodedata.normalize("NFKC", text).strip()
    if not written or len(written) > _LONGEST_PHONE:
        raise NotAPhone("a phone number is 1 to 40 characters, such as (213) 555-0123 or +1 213 555 0123")
    compact = _SEPARATORS.sub("", written)
    if any(ch.isalpha() for ch in compact):  # libphonenumber would read letters as a keypad's (1-800-FLOWERS)
        raise NotAPhone("a member's phone number is digits, not letters")
    if compact.startswith("00"):  # the international prefix of most of the world
        written = "+" + compact[2:]
    elif compact.startswith("+0"):  # a zero typed after the plus
        written = "+" + compact[1:].lstrip("0")
    try:
        number = phonenumbers.parse(written, REGION)
    except NumberParseException:
        raise NotAPhone("not a phone number; write it as (213) 555-0123 or +1 213 555 0123") from None
    if number.extension:
        raise NotAPhone("a member's phone number has no extension")
    if phonenumbers.is_possible_number_with_reason(number) != ValidationResult.IS_POSSIBLE:
        raise NotAPhone("not a complete phone number: too short or too long for its country, or without its "
                        "area code")
    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    if number.country_code == 1 and not _NANP_AREA_CODE.match(str(number.national_number)):
        raise NotAPhone("a North American area code starts with a digit from 2 to 9")
    return e164


def phone_or_none(text: str) -> str | None:
    try:
        return normalize_phone(text)
    except NotAPhone:
        return None


def email_as_given(text: str) -> str:
    """The address as kept: NFKC-normalized and trimmed, its case as given; NotAnEmail if it is not one."""
    given = unicodedata.normalize("NFKC", text).strip()
    if not 3 <= len(given) <= 254 or not _EMAIL.match(given):
        raise NotAnEmail("an email address looks like name@example.com")
    return given


def normalize_email(text: str) -> str:
    """The address as compared: NFKC, trimmed, case-folded (Unicode's caseless matching)."""
    return unicodedata.normalize("NFKC", email_as_given(text).casefold())


def display_name(name: str | None) -> str | None:
    """What a register shows: the first name and the initial of the last ("Ann Lee" is "Ann L.")."""
    if not name:
        return None
    words = unicodedata.normalize("NFKC", name).split()
    if not words:
        return None
    if len(words) == 1:
        return words[0]
    return f"{words[0]} {words[-1][0].upper()}."
