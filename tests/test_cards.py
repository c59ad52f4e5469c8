"""Card numbers: 16 digits with a Luhn check digit, random, unique; the revision that numbered the
members already enrolled computes the check digit as rewards.cards does."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import asyncpg
from hypothesis import given
from hypothesis import strategies as st

from rewards.cards import is_card_number, luhn_digit, new_card_number
from tests.conftest import auth, enrollment

REVISION = Path(__file__).resolve().parent.parent / "sql" / "versions" / "0004_events_and_cards.py"


def test_new_card_numbers_are_valid_and_not_alike() -> None:
    numbers = {new_card_number() for _ in range(2000)}
    assert len(numbers) == 2000
    assert all(is_card_number(n) and n.startswith("7") for n in numbers)


@given(st.text("0123456789", min_size=15, max_size=15), st.integers(0, 14), st.integers(1, 9))
def test_a_single_wrong_digit_is_caught(body: str, where: int, shift: int) -> None:
    number = body + luhn_digit(body)
    wrong = number[:where] + str((int(number[where]) + shift) % 10) + number[where + 1:]
    assert is_card_number(number) and not is_card_number(wrong)


def test_lookalikes_are_not_card_numbers() -> None:
    number = new_card_number()
    for text in (number[:-1], number + "0", "٧" + number[1:], number.replace(number[3], "x", 1), ""):
        assert not is_card_number(text), text


async def test_the_revisions_check_digit_is_the_same_as_the_services(database_url: str) -> None:
    spec = importlib.util.spec_from_file_location("revision_0004", REVISION)
    assert spec is not None and spec.loader is not None
    revision = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(revision)
    function = revision.LUHN_DIGIT
    bodies = ["7" + new_card_number()[1:15] for _ in range(300)] + ["799273987100000", "700000000000000"]
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(function)
        found = await conn.fetch("SELECT b, pg_temp.luhn_digit(b) AS d FROM unnest($1::text[]) AS b", bodies)
    finally:
        await conn.close()
    assert {r["b"]: r["d"] for r in found} == {b: luhn_digit(b) for b in bodies}


async def test_enrollment_gives_each_member_a_card_number(client, keys, db) -> None:
    answers = [await client.post("/v1/members", json=enrollment(), headers=auth(keys["guest_services"]))
               for _ in range(3)]
    numbers = [a.json()["card_number"] for a in answers]
    assert all(a.status_code == 201 for a in answers) and all(is_card_number(n) for n in numbers)
    stored = await db.run("SELECT card_number FROM members WHERE id = ANY($1::bigint[]) ORDER BY id",
                          [a.json()["member_id"] for a in answers])
    assert [r["card_number"] for r in stored] == numbers
