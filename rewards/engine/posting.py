"""The engine's I/O: lock, read, plan, write: a batch of postings in one transaction.

`apply` runs inside its caller's transaction (read committed):
1. one call of the database function `engine_snapshot` takes the rules lock (shared), locks the
   batch's members in id order, and reads, with snapshots taken after those locks, everything
   the planner needs (`Snapshot`), drawing the ids of the new rows;
3. the planner decides, in Python (`planner.Planner`);
4. one statement writes every row of the plan (`WRITES`).
Every way in goes through it: group commit for HTTP (`Engine.submit`), `rewards import`,
`rewards demo`, the desk. Four round trips for a whole batch, whatever its size (BEGIN, the
snapshot, the write, COMMIT).

The rules lock makes "the version in force at occurred_at, as stored when the posting
commits" hold across workers and hosts: publishing a version takes it exclusively, so a
version is either visible to a batch's read or published after the batch commits.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import asyncpg
import msgspec

from rewards import rules
from rewards.coalescing import Coalescer
from rewards.db import Database
from rewards.engine import rows
from rewards.engine.commands import Adjust, Cancel, CarryDebt, Command, Limits, Merge, PostPurchase, PostReturn
from rewards.engine.planner import Outcome, OutOfIds, Planner
from rewards.engine.snapshot import decode_snapshot

# The engine's transaction. Its statements take arrays whose sizes the planner cannot know: a
# custom plan per call cost three to four times what running them did (bench/README.md), so
# generic plans, made once a connection. Every lookup here is
# by an indexed key from a few values: a generic plan made while a table was still empty (a new
# program) would scan it whole at every call from then on, and one guessing 100 rows from each
# array hashed a whole table (the consents, to withdraw a cancelled member's): no sequential
# scans, no hash or merge joins. (The service's connections run without JIT: its compile time
# dwarfed these statements.)
BEGIN = ("BEGIN; SET LOCAL plan_cache_mode = force_generic_plan; SET LOCAL enable_seqscan = off; "
         "SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off")

_encode = msgspec.json.Encoder().encode


def new_reward_code() -> str:
    """A reward's code: WR and 16 hex digits from a cryptographic source (not guessable)."""
    return "WR" + secrets.token_hex(8).upper()


# --- 1, 2. lock and read ------------------------------------------------------------------------

# One call of the database function `engine_snapshot` (its latest definition is in
# sql/versions/0010_engine_snapshot_desk_expiry.py): it takes the rules lock (shared), locks the
# members of the postings not made before (in id order, and then those a merge committed
# meanwhile made part of the batch), and then, each statement with a snapshot taken after those
# locks, reads what the planner needs, only the parts the batch asks for, and draws the ids of its
# new rows. `p_lock` false (a quote) locks nothing and draws no id.
SNAPSHOT = "SELECT engine_snapshot($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"

DRAW_IDS = "SELECT ARRAY(SELECT nextval(pg_get_serial_sequence($1, 'id')) FROM generate_series(1, $2))"


@dataclass(slots=True)
class _Asks:
    """What a batch's commands name, for the lock and the read."""

    member_ids: list[int]
    member_keys: list[str | None]
    """The purchase_id each member is named with (None: a cancellation, a merge, a debt), side by side."""
    returned: list[str]
    return_keys: list[str]
    reward_codes: list[str]
    offer_codes: list[str]
    cancels: list[int]
    expiring: list[int]
    """Members whose issued rewards are all read, those past their expiry included."""
    purchases: int
    returns: int
    adjusted: list[int]
    adjustment_keys: list[str]
    merged: list[int]
    """The duplicates merges name."""

    @classmethod
    def of(cls, commands: Sequence[Command]) -> _Asks:
        asks = cls([], [], [], [], [], [], [], [], 0, 0, [], [], [])
        for c in commands:
            if isinstance(c, PostPurchase):
                p = c.purchase
                asks.member_ids.append(p.member_id)
                asks.member_keys.append(p.purchase_id)
                asks.reward_codes.extend(t.reward_code for t in p.tenders if t.reward_code)
                asks.offer_codes.extend(o.code for o in p.offers)
                asks.purchases += 1
            elif isinstance(c, PostReturn):
                asks.returned.append(c.purchase_id)
                asks.return_keys.append(c.ret.return_id)
                asks.returns += 1
            elif isinstance(c, Adjust):
                asks.adjusted.append(c.member_id)
                asks.adjustment_keys.append(c.adjustment.adjustment_id)
            elif isinstance(c, Merge):
                asks.member_ids.extend((c.member_id, c.from_member_id))
                asks.member_keys.extend((None, None))
                asks.merged.append(c.from_member_id)
            elif isinstance(c, CarryDebt):
                asks.member_ids.extend((c.member_id, *c.from_member_ids))
                asks.member_keys.extend([None] * (1 + len(c.from_member_ids)))
            elif isinstance(c, Cancel):
                asks.member_ids.append(c.member_id)
                asks.member_keys.append(None)
                asks.cancels.append(c.member_id)
            else:
                asks.member_ids.append(c.member_id)
                asks.member_keys.append(None)
                asks.expiring.append(c.member_id)
        return asks


# --- 4. write ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Write:
    """One part of the write statement: the rows of a plan's field into a table, inserted, or
    updated by `key` (the `columns` given, or every field but the key)."""

    field: str
    table: str
    row: type[msgspec.Struct]
    key: str | None = None
    columns: tuple[str, ...] = ()
    where: str = ""

    def sql(self, n: int) -> str:
        fields = self.columns or tuple(f for f in self.row.__struct_fields__ if f != self.key)
        source = f"jsonb_populate_recordset(NULL::{self.table}, ${n}::jsonb)"
        if self.key is None:
            names = ", ".join(fields)
            return (f"INSERT INTO {self.table} ({names}) SELECT {names} FROM {source} WITH ORDINALITY AS x "
                    f"ORDER BY x.ordinality")
        sets = ", ".join(f"{f} = x.{f}" for f in fields)
        where = f" AND {self.where}" if self.where else ""
        return f"UPDATE {self.table} AS t SET {sets} FROM {source} AS x WHERE t.{self.key} = x.{self.key}{where}"


WRITES = (
    Write("purchases", "purchases", rows.Purchase),
    Write("returns", "purchase_returns", rows.Return),
    Write("adjustments", "adjustments", rows.Adjustment),
    Write("new_rewards", "rewards", rows.Reward),
    Write("changed_rewards", "rewards", rows.Reward, key="id", columns=rows.REWARD_STATE),
    Write("entries", "ledger", rows.Entry),
    Write("members", "members", rows.Member, key="id"),
    Write("consents_withdrawn", "consents", rows.ConsentWithdrawn, key="member_id",
          where="t.withdrawn_at IS NULL"),
    Write("keys_revoked", "api_keys", rows.KeysRevoked, key="member_id", where="t.revoked_at IS NULL"),
    Write("sessions_ended", "guest_sessions", rows.SessionsEnded, key="member_id", where="t.ended_at IS NULL"),
    Write("member_changes", "member_changes", rows.MemberChange),
    Write("events", "events", rows.Event),
)


@functools.cache
def write_statement(parts: tuple[Write, ...]) -> str:
    """One statement that writes these parts, each from its own parameter, in order. A batch's
    statement names only the parts it has rows for: an empty part still cost the database an
    insert or an update set up and torn down (a batch of one purchase has four of eight)."""
    return ("WITH " + ",\n".join(f"w{n} AS ({w.sql(n)})" for n, w in enumerate(parts, start=1))
            + "\nSELECT 1")


async def write_plan(conn: asyncpg.Connection, plan: rows.Plan) -> None:
    """The plan's rows, in one statement (`write_statement`)."""
    parts, args = [], []
    for w in WRITES:
        part = getattr(plan, w.field)
        found = list(part.values()) if isinstance(part, dict) else part
        if found:
            parts.append(w)
            args.append(_encode(found).decode())
    if parts:
        await conn.execute(write_statement(tuple(parts)), *args)


# --- the batch -----------------------------------------------------------------------------------


class StoredRules(Protocol):
    async def stored(self, conn: asyncpg.Connection, latest: int) -> Sequence[rules.Rules]:
        """Every stored rules version, `latest` the newest: reloaded on `conn` when not known yet."""
        ...


SEQUENCE_OF = {"purchases": "purchases", "returns": "purchase_returns", "rewards": "rewards",
               "adjustments": "adjustments"}


Writer = Callable[[asyncpg.Connection, rows.Plan], Awaitable[None]]


async def apply(conn: asyncpg.Connection, commands: Sequence[Command], versions: StoredRules, limits: Limits, *,
                write: bool = True, writer: Writer = write_plan) -> list[Outcome]:
    """Post `commands` in order inside the caller's transaction; one Outcome each.

    `versions` is the rulebook (`rewards.rulebook.Rulebook`): it answers the stored versions,
    reloading them on this connection (under the rules lock) when the read shows a newer one. `write=False` plans
    without writing or locking
    (a quote). `writer` writes the plan (the big demo's COPY writer is held to the same rows).
    """
    asks = _Asks.of(commands)
    snapshot = decode_snapshot(await conn.fetchval(
        SNAPSHOT, asks.member_ids, asks.member_keys, asks.returned, asks.return_keys, asks.reward_codes,
        asks.offer_codes, asks.cancels, asks.purchases if write else 0, asks.returns if write else 0,
        asks.purchases + len(asks.adjusted) + 4 if write else 0,
        min((c.as_of for c in commands if c.as_of is not None), default=None), write,
        asks.adjusted, asks.adjustment_keys, asks.merged, len(asks.adjusted) if write else 0, asks.expiring))
    planner = Planner(snapshot, await versions.stored(conn, snapshot.rules_version), limits, new_reward_code)
    if not write:
        return [planner.quote(c) for c in commands]  # type: ignore[arg-type]
    outcomes = []
    for command in commands:
        while True:
            try:
                outcomes.append(planner.decide(command))
                break
            except OutOfIds as short:
                planner.add_ids(short.table, await draw_ids(conn, short.table, max(16, short.missing)))
    await writer(conn, planner.result())
    return outcomes


async def draw_ids(conn: asyncpg.Connection, table: str, n: int) -> list[int]:
    """`n` new ids from the sequence of the planner's `table` (purchases, returns, rewards, adjustments)."""
    return list(await conn.fetchval(DRAW_IDS, SEQUENCE_OF[table], n))


class Engine:
    """The engine as the service uses it: the database, the rulebook and the limits, and group
    commit: concurrent postings in a worker share one batch, one transaction, one commit."""

    def __init__(self, db: Database, rulebook: StoredRules, limits: Limits) -> None:
        self.db = db
        self.rulebook = rulebook
        self.limits = limits
        # A second batch goes while one is in the database only once four postings wait: with one
        # batch at a time the worker and the database take turns waiting, and a second batch for
        # every straggler halves the batches (bench/README.md).
        self._batches: Coalescer[Command, Outcome] = Coalescer(self._post_batch, in_flight=2, overlap_at=4)

    async def submit(self, command: Command) -> Outcome:
        """Post one command in the next batch; its Outcome (a refusal is an Outcome too)."""
        return await self._batches.submit(command)

    async def run(self, commands: Sequence[Command]) -> list[Outcome]:
        """Post `commands` together in one transaction of their own (retried whole on a racing twin)."""
        return await self.db.transaction(lambda conn: apply(conn, commands, self.rulebook, self.limits), begin=BEGIN)

    async def quote(self, command: PostPurchase) -> Outcome:
        """What the purchase would earn, from every check a posting makes, in a read-only transaction."""
        (outcome,) = await self.db.transaction(
            lambda conn: apply(conn, [command], self.rulebook, self.limits, write=False),
            begin=BEGIN.replace("BEGIN", "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 1))
        return outcome

    async def _post_batch(self, commands: list[Command]) -> list[Outcome | BaseException]:
        """A batch, or, when it fails as a whole on an error that is not a racing twin's (retried
        inside `run`), each of its commands alone, so that one bad posting never fails the others."""
        try:
            return list(await self.run(commands))
        except asyncpg.PostgresError as exc:
            if len(commands) == 1:
                return [exc]
        answers: list[Outcome | BaseException] = []
        for command in commands:
            try:
                answers.extend(await self.run([command]))
            except Exception as exc:  # noqa: BLE001 - handed to the command's own caller
                answers.append(exc)
        return answers
