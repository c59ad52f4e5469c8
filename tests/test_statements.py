"""Core statements compiled once for asyncpg (rewards/statements.py), run on the real database."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime

import asyncpg
import pytest
from sqlalchemy import BigInteger, Integer, any_, bindparam, insert, or_, select
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from rewards.auth import NEW_KEY
from rewards.db import Database
from rewards.members import NEW_MEMBER
from rewards.statements import Statement
from rewards.tables import members


@pytest.fixture
async def conn(db: Database) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection inside a transaction that is rolled back: what a test writes goes."""
    async with db.connection() as connection:
        transaction = connection.transaction()
        await transaction.start()
        try:
            yield connection
        finally:
            await transaction.rollback()


def placeholders(sql: str) -> list[str]:
    return re.findall(r"\$\d+", sql)


async def test_twelve_parameters_are_numbered_past_nine_each_in_its_place(conn: asyncpg.Connection) -> None:
    values = {f"v{n}": n * 11 for n in range(1, 13)}
    echo = Statement(select(*(bindparam(name, type_=Integer).label(name) for name in values)))

    assert echo.names == tuple(values)
    assert placeholders(echo.sql) == [f"${n}" for n in range(1, 13)]
    row = await echo.fetchrow(conn, **dict(reversed(values.items())))  # the order named does not matter
    assert row is not None and dict(row) == values


async def test_an_insert_of_twelve_columns_writes_each_value_to_its_column(conn: asyncpg.Connection) -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    given = {
        "external_id": "ext-12", "status": "cancelled", "name": "Twelve Columns", "email": "twelve@example.com",
        "phone": "+15550001212", "birth_date": date(1980, 12, 12), "state": "ME", "enrolled_at": now,
        "cancelled_at": now, "erased_at": None, "point_cents": 1212, "rewards_issued": 12,
    }
    write = Statement(insert(members).values({name: bindparam(name) for name in given}).returning(members.c.id))
    assert len(placeholders(write.sql)) == 12

    member_id = await write.fetchval(conn, **given)

    read = Statement(select(*(members.c[name] for name in given)).where(members.c.id == bindparam("id")))
    row = await read.fetchrow(conn, id=member_id)
    assert row is not None and dict(row) == given


async def test_a_list_is_one_array_parameter_whatever_its_length(conn: asyncpg.Connection) -> None:
    made = [await NEW_MEMBER.fetchrow(conn, external_id=None, name=f"Any {n}", email=None, phone=None,
                                      birth_date=None, state="CA", card_number=None,
                                      email_normalized=None, phone_normalized=None) for n in range(3)]
    ids = [row["id"] for row in made if row is not None]
    some = Statement(select(members.c.id).where(members.c.id == any_(bindparam("ids", type_=ARRAY(BigInteger))))
                     .order_by(members.c.id))

    assert some.names == ("ids",) and placeholders(some.sql) == ["$1"]
    assert [r["id"] for r in await some.fetch(conn, ids=[ids[2], ids[0], 2**62])] == [ids[0], ids[2]]
    assert [r["id"] for r in await some.fetch(conn, ids=ids)] == ids
    assert await some.fetch(conn, ids=[]) == []


async def test_a_list_written_into_the_statement_is_bound_once_with_its_values(conn: asyncpg.Connection) -> None:
    in_new_england = Statement(select(members.c.id).where(members.c.state.in_(["ME", "VT"]),
                                                          members.c.id == bindparam("member_id")))
    assert len(placeholders(in_new_england.sql)) == 3  # the two states and the member
    assert sorted(map(str, in_new_england.args({"member_id": 5}))) == ["5", "ME", "VT"]

    for state, found in (("VT", True), ("CA", False)):
        row = await NEW_MEMBER.fetchrow(conn, external_id=None, name=state, email=None, phone=None,
                                        birth_date=None, state=state, card_number=None,
                                        email_normalized=None, phone_normalized=None)
        assert row is not None
        assert bool(await in_new_england.fetch(conn, member_id=row["id"])) is found


def test_a_list_whose_length_changes_per_call_is_refused_with_the_way_to_write_it() -> None:
    with pytest.raises(TypeError, match=r"any_\(bindparam"):
        Statement(select(members.c.id).where(members.c.id.in_(bindparam("ids", expanding=True))))


def test_a_name_used_twice_is_one_parameter() -> None:
    either = Statement(select(members.c.id).where(or_(members.c.email == bindparam("address"),
                                                      members.c.phone == bindparam("address"))))
    assert either.names == ("address",)
    assert placeholders(either.sql) == ["$1", "$1"]


def test_missing_and_unknown_values_are_named() -> None:
    by_id = Statement(select(members.c.id).where(members.c.id == bindparam("member_id")))
    with pytest.raises(TypeError, match="missing values for member_id; no parameters named id"):
        by_id.args({"id": 1})
    assert by_id.args({"member_id": 7}) == [7]


def test_an_insert_returns_nothing_unless_it_asks() -> None:
    assert "RETURNING" not in NEW_KEY.sql  # SQLAlchemy would otherwise add RETURNING id
    assert NEW_MEMBER.sql.endswith("RETURNING members.id, members.status, members.enrolled_at")


async def test_values_reach_asyncpg_as_they_are_through_our_codecs(conn: asyncpg.Connection) -> None:
    document = Statement(select(bindparam("doc", type_=JSONB).label("doc")))
    # jsonb takes JSON text on our connections and comes back decoded
    assert await document.fetchval(conn, doc='{"tenders": [{"method": "cash"}]}') == {"tenders": [{"method": "cash"}]}


async def test_database_run_takes_a_statement_by_name_and_sql_by_position(db: Database) -> None:
    echo = Statement(select(bindparam("n", type_=Integer).label("n")))
    assert [r["n"] for r in await db.run(echo, n=42)] == [42]
    assert [r["n"] for r in await db.run("SELECT $1::integer AS n", 43)] == [43]
    with pytest.raises(TypeError, match="by name"):
        await db.run(echo, 42)
    with pytest.raises(TypeError, match="by position"):
        await db.run("SELECT $1::integer AS n", n=43)


async def test_a_statement_runs_in_the_retry_loop_of_a_transaction(db: Database) -> None:
    echo = Statement(select(bindparam("n", type_=Integer).label("n")))
    attempts = []

    async def work(connection: asyncpg.Connection) -> int:
        attempts.append(1)
        if len(attempts) == 1:  # a racing twin's commit, as the posting path meets it
            raise asyncpg.UniqueViolationError("duplicate key value")
        return await echo.fetchval(connection, n=len(attempts))

    assert await db.transaction(work) == 2
