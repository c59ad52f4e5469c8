"""Members' card numbers: what the card's barcode holds and a register scans (pure, but for the
random digits).

16 digits: "7", 14 random digits, and the Luhn check digit, so a mistyped or misread digit is
caught before any lookup. Random, not derived from the member id: a number cannot be guessed
from another member's. Unique in the database (`members_card_number`).
"""

from __future__ import annotations

import secrets

PREFIX = "7"
LENGTH = 16


def luhn_digit(body: str) -> str:
    """The check digit that makes `body` + it pass the Luhn test."""
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:  # doubled: every other digit from the right, starting next to the check digit
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return str((10 - total % 10) % 10)


def new_card_number() -> str:
    body = PREFIX + f"{secrets.randbelow(10 ** (LENGTH - 2)):0{LENGTH - 2}d}"
    return body + luhn_digit(body)


def is_card_number(text: str) -> bool:
    """16 ASCII digits whose last is the Luhn check digit of the others."""
    return len(text) == LENGTH and text.isascii() and text.isdigit() and luhn_digit(text[:-1]) == text[-1]
