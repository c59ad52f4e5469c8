"""SQLAlchemy Core statements, compiled once into asyncpg's SQL and run on our asyncpg connections.

The cold paths build their queries with Core from `rewards.tables` instead of assembling SQL
text, and run them on the service's asyncpg pool, with its prepared-statement cache and the
retry loop of `Database.transaction`: no SQLAlchemy engine, session or second pool at run
time. As encode/databases does (`backends/postgres.py`), a statement is compiled with the
PostgreSQL asyncpg dialect into SQL with `$1`, `$2`… placeholders plus the names of its bind
parameters in that order; here that happens once, when the `Statement` is made (at import,
for the module-level constants it is meant for), not at every call:

    PROFILE = Statement(select(members).where(members.c.id == bindparam("member_id")))

    row = await PROFILE.fetchrow(conn, member_id=7)     # on a connection, in a transaction
    rows = await db.run(PROFILE, member_id=7)           # one statement on a pooled connection

What changes per call is a named `bindparam`; values written into the statement
(`members.c.status == "active"`) are bound at compile time. A list is one array parameter,
`column == any_(bindparam("ids", type_=ARRAY(BigInteger)))`, so the SQL never depends on its
length; an expanding `in_(bindparam(...))` is refused when the statement is made. Values go
to asyncpg as they are (asyncpg encodes them, with our connections' codecs: jsonb takes JSON
text), and rows come back as asyncpg Records: SQLAlchemy's bind and result processors are not
used.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
from sqlalchemy import Insert
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

DIALECT = asyncpg_dialect()  # paramstyle numeric_dollar: $1, $2…; a name used twice is one parameter


class Statement:
    """A Core statement compiled once: its SQL for asyncpg, and how to order a call's values."""

    __slots__ = ("clause", "sql", "names", "_required", "_accepted", "_bound")

    def __init__(self, clause: ClauseElement) -> None:
        if isinstance(clause, Insert) and _compile(clause).implicit_returning:
            # without .returning(), SQLAlchemy would add RETURNING of the key for its ORM
            clause = clause.inline()
        compiled = _compile(clause)
        required = {name for name, bind in compiled.binds.items() if bind.required}
        sql, values = compiled.string, compiled.params
        names: Sequence[str] = compiled.positiontup or ()
        if "__[POSTCOMPILE_" in sql:  # an IN list
            if any(bind.expanding and bind.required for bind in compiled.binds.values()):
                raise TypeError(
                    "a list whose length changes from call to call would need new SQL at each call: use "
                    "column == any_(bindparam(name, type_=ARRAY(...))), not in_(bindparam(name, expanding=True))"
                )
            # a list written into the statement: one parameter per value, bound once
            expanded = compiled.construct_expanded_state(dict.fromkeys(required))
            sql, names, values = expanded.statement, expanded.positiontup or (), expanded.parameters
        self.clause = clause
        self.sql: str = sql
        # the bind parameters' names, in the order of $1, $2…
        self.names: tuple[str, ...] = tuple(names)
        self._required = frozenset(required & set(self.names))
        self._accepted = frozenset(self.names)
        # values written into the statement (or given to bindparam), bound once unless a call names them
        self._bound: dict[str, Any] = {name: values[name] for name in self.names if name not in self._required}

    def __repr__(self) -> str:
        return f"Statement({self.sql!r})"

    def args(self, params: Mapping[str, object]) -> list[object]:
        """asyncpg's positional arguments for one call, from the values named by `params`."""
        if params.keys() != self._required:
            missing = sorted(self._required - params.keys())
            unknown = sorted(params.keys() - self._accepted)
            if missing or unknown:
                raise TypeError(
                    f"{self!r}: " + "; ".join(filter(None, [
                        f"missing values for {', '.join(missing)}" if missing else "",
                        f"no parameters named {', '.join(unknown)}" if unknown else "",
                    ]))
                )
        return [params[name] if name in params else self._bound[name] for name in self.names]

    async def fetch(self, conn: asyncpg.Connection, **params: object) -> list[asyncpg.Record]:
        return await conn.fetch(self.sql, *self.args(params))

    async def fetchrow(self, conn: asyncpg.Connection, **params: object) -> asyncpg.Record | None:
        return await conn.fetchrow(self.sql, *self.args(params))

    async def fetchval(self, conn: asyncpg.Connection, **params: object) -> Any:
        return await conn.fetchval(self.sql, *self.args(params))

    async def execute(self, conn: asyncpg.Connection, **params: object) -> str:
        """Run it for its effect; asyncpg's status line (`INSERT 0 1`)."""
        return await conn.execute(self.sql, *self.args(params))

    def cursor(self, conn: asyncpg.Connection, *, prefetch: int | None = None, **params: object) -> Any:
        """Its rows, `prefetch` at a time, for `async for` inside a transaction (asyncpg's cursor)."""
        return conn.cursor(self.sql, *self.args(params), prefetch=prefetch)


def _compile(clause: ClauseElement) -> SQLCompiler:
    compiled = clause.compile(dialect=DIALECT)
    assert isinstance(compiled, SQLCompiler)
    return compiled
