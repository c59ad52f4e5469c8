"""The engine's I/O: lock, read, plan, write: a batch of postings in one transaction.

`apply` runs inside its caller's transaction (read committed):
1. one statement takes the rules lock (shared) and locks the batch's members in id order;
2. one statement reads, with a snapshot taken after those locks, everything the planner
   needs (`Snapshot`), and draws the ids of the new rows;
3. the planner decides, in Python (`planner.Planner`);
4. one statement writes every row of the plan (`WRITES`).
Every way in goes through it: group commit for HTTP (`Engine.submit`), `rewards import`,
`rewards demo`, the desk. Four round trips for a whole batch, whatever its size.

The rules lock makes "the version in force at occurred_at, as stored when the posting
commits" hold across workers and hosts: publishing a version takes it exclusively, so a
version is either visible to a batch's read or published after the batch commits.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import asyncpg
import msgspec

from rewards import rules
from rewards.coalescing import Coalescer
from rewards.db import RULES_LOCK, Database
from rewards.engine import rows
from rewards.engine.commands import Cancel, Command, Limits, PostPurchase, PostReturn
from rewards.engine.planner import Outcome, OutOfIds, Planner
from rewards.engine.snapshot import Member, decode_snapshot

_members = msgspec.json.Decoder(list[Member]).decode
_encode = msgspec.json.Encoder().encode


def new_reward_code() -> str:
    """A reward's code: WR and 16 hex digits from a cryptographic source (not guessable)."""
    return "WR" + secrets.token_hex(8).upper()


# --- 1. lock -------------------------------------------------------------------------------------

_LOCK = """
WITH rules_lock AS MATERIALIZED (SELECT pg_advisory_xact_lock_shared({lock}) AS held),
asked AS (  -- the members of postings not made before (a replay is answered from what is stored)
    SELECT x.member_id FROM unnest($1::bigint[], $2::text[]) AS x(member_id, key)
    WHERE x.key IS NULL OR NOT EXISTS (SELECT 1 FROM purchases p WHERE p.ext_id = x.key)
    UNION ALL
    SELECT p.member_id FROM unnest($3::text[], $4::text[]) AS r(purchase_key, return_key)
    JOIN purchases p ON p.ext_id = r.purchase_key
    WHERE NOT EXISTS (SELECT 1 FROM purchase_returns x WHERE x.ext_id = r.return_key))
SELECT coalesce(json_agg(m ORDER BY m.id), '[]')::text FROM (
    SELECT id, status, point_cents, rewards_issued, cancelled_at FROM members
    WHERE (SELECT true FROM rules_lock) AND id IN (SELECT member_id FROM asked)
    ORDER BY id {for_update}) m
"""
LOCK = _LOCK.format(lock=RULES_LOCK, for_update="FOR UPDATE")
PEEK = _LOCK.format(lock=RULES_LOCK, for_update="")  # a quote: the same read, locking no member


# --- 2. read -------------------------------------------------------------------------------------

READ = """
WITH clock AS MATERIALIZED (SELECT clock_timestamp() AS now, coalesce($11::timestamptz, clock_timestamp()) AS open_at)
SELECT json_build_object(
    'now', (SELECT now FROM clock),
    'rules_version', (SELECT max(version) FROM program_rules),
    'rewards', coalesce((SELECT json_agg(w) FROM (
        SELECT id, code, member_id, ordinal, status, value_cents, cost_point_cents, issued_at, expires_at,
               purchase_id, redeemed_at, redeemed_purchase_id, voided_at, expiry_notice_at
        FROM rewards WHERE code = ANY ($3::text[])
        UNION
        SELECT id, code, member_id, ordinal, status, value_cents, cost_point_cents, issued_at, expires_at,
               purchase_id, redeemed_at, redeemed_purchase_id, voided_at, expiry_notice_at
        FROM rewards WHERE member_id = ANY ($1::bigint[]) AND status = 'issued'
                       AND (expires_at > (SELECT open_at FROM clock) OR member_id = ANY ($12::bigint[]))) w), '[]'),
    'returnable', coalesce((SELECT json_agg(json_build_object(
        'id', p.id, 'ext_id', p.ext_id, 'member_id', p.member_id, 'occurred_at', p.occurred_at,
        'rules_version', p.rules_version, 'lines', p.body->'lines', 'tenders', p.body->'tenders',
        'returns', coalesce((SELECT json_agg(r.body->'request'->'lines' ORDER BY r.id)
                             FROM purchase_returns r WHERE r.purchase_id = p.id), '[]')))
        FROM purchases p WHERE p.ext_id = ANY ($2::text[])), '[]'),
    'prior_purchases', coalesce((SELECT json_agg(json_build_object(
        'ext_id', p.ext_id, 'fingerprint', p.fingerprint, 'member_id', p.member_id,
        'qualifying_cents', p.qualifying_cents, 'point_cents', p.point_cents,
        'bonus_point_cents', p.bonus_point_cents, 'balance_after', p.balance_after,
        'rewards_redeemed', p.rewards_redeemed,
        'issued', coalesce((SELECT json_agg(json_build_object('code', w.code, 'value_cents', w.value_cents,
                                                              'expires_at', w.expires_at) ORDER BY w.ordinal)
                            FROM rewards w WHERE w.purchase_id = p.id), '[]')))
        FROM purchases p WHERE p.ext_id = ANY ($4::text[])), '[]'),
    'prior_returns', coalesce((SELECT json_agg(json_build_object(
        'ext_id', r.ext_id, 'purchase_ext_id', p.ext_id, 'fingerprint', r.fingerprint,
        'point_cents_reversed', r.point_cents_reversed, 'balance_after', r.balance_after,
        'voided', coalesce((SELECT json_agg(w.code ORDER BY l.id) FROM ledger l JOIN rewards w ON w.id = l.reward_id
                            WHERE l.return_id = r.id AND l.kind = 'reward_voided'), '[]')))
        FROM purchase_returns r JOIN purchases p ON p.id = r.purchase_id WHERE r.ext_id = ANY ($5::text[])), '[]'),
    'offers', coalesce((SELECT json_object_agg(code, value_cents) FROM offers WHERE code = ANY ($6::text[])), '{}'),
    'cancellations', coalesce((SELECT json_agg(json_build_object(
        'member_id', m.id,
        'forfeited', (SELECT coalesce(-sum(point_cents), 0) FROM ledger
                      WHERE member_id = m.id AND kind = 'forfeit'),
        'voided', coalesce((SELECT json_agg(w.code ORDER BY w.ordinal) FROM ledger l JOIN rewards w ON w.id = l.reward_id
                            WHERE l.member_id = m.id AND l.kind = 'reward_voided' AND l.return_id IS NULL), '[]')))
        FROM members m WHERE m.id = ANY ($7::bigint[]) AND m.status = 'cancelled'), '[]'),
    'ids', json_build_object(
        'purchases', ARRAY(SELECT nextval('purchases_id_seq') FROM generate_series(1, $8)),
        'returns', ARRAY(SELECT nextval('purchase_returns_id_seq') FROM generate_series(1, $9)),
        'rewards', ARRAY(SELECT nextval('rewards_id_seq') FROM generate_series(1, $10)))
)::text
"""

DRAW_IDS = "SELECT ARRAY(SELECT nextval(pg_get_serial_sequence($1, 'id')) FROM generate_series(1, $2))"


@dataclass(slots=True)
class _Asks:
    """What a batch's commands name, for the lock and the read."""

    member_ids: list[int]
    member_keys: list[str | None]
    """The purchase_id each member is named with (None: a cancellation), side by side."""
    returned: list[str]
    purchase_keys: list[str]
    return_keys: list[str]
    reward_codes: list[str]
    offer_codes: list[str]
    cancels: list[int]
    expiring: list[int]
    """Members whose issued rewards are all read, those past their expiry included."""
    purchases: int
    returns: int

    @classmethod
    def of(cls, commands: Sequence[Command]) -> _Asks:
        asks = cls([], [], [], [], [], [], [], [], [], 0, 0)
        for c in commands:
            if isinstance(c, PostPurchase):
                p = c.purchase
                asks.member_ids.append(p.member_id)
                asks.member_keys.append(p.purchase_id)
                asks.purchase_keys.append(p.purchase_id)
                asks.reward_codes.extend(t.reward_code for t in p.tenders if t.reward_code)
                asks.offer_codes.extend(o.code for o in p.offers)
                asks.purchases += 1
            elif isinstance(c, PostReturn):
                asks.returned.append(c.purchase_id)
                asks.return_keys.append(c.ret.return_id)
                asks.returns += 1
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
    Write("new_rewards", "rewards", rows.Reward),
    Write("changed_rewards", "rewards", rows.Reward, key="id", columns=rows.REWARD_STATE),
    Write("entries", "ledger", rows.Entry),
    Write("members", "members", rows.Member, key="id"),
    Write("consents_withdrawn", "consents", rows.ConsentWithdrawn, key="member_id",
          where="t.withdrawn_at IS NULL"),
    Write("events", "events", rows.Event),
)
WRITE = ("WITH " + ",\n".join(f"w{n} AS ({w.sql(n)})" for n, w in enumerate(WRITES, start=1))
         + "\nSELECT 1")


async def write_plan(conn: asyncpg.Connection, plan: rows.Plan) -> None:
    """The plan's rows, in one statement (`WRITE`)."""
    if not plan:
        return
    args = []
    for w in WRITES:
        part = getattr(plan, w.field)
        args.append(_encode(list(part.values()) if isinstance(part, dict) else part).decode())
    await conn.execute(WRITE, *args)


# --- the batch -----------------------------------------------------------------------------------


class StoredRules(Protocol):
    async def stored(self, conn: asyncpg.Connection, latest: int) -> Sequence[rules.Rules]:
        """Every stored rules version, `latest` the newest: reloaded on `conn` when not known yet."""
        ...


SEQUENCE_OF = {"purchases": "purchases", "returns": "purchase_returns", "rewards": "rewards"}


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
    locked = _members(await conn.fetchval(LOCK if write else PEEK, asks.member_ids, asks.member_keys,
                                          asks.returned, asks.return_keys))
    reward_ids = asks.purchases + 4 if write else 0
    snapshot = decode_snapshot(await conn.fetchval(
        READ, [m.id for m in locked], asks.returned, asks.reward_codes, asks.purchase_keys, asks.return_keys,
        asks.offer_codes, asks.cancels, asks.purchases if write else 0, asks.returns if write else 0, reward_ids,
        min((c.as_of for c in commands if c.as_of is not None), default=None), asks.expiring))
    snapshot.members = locked
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
    """`n` new ids from the sequence of the planner's `table` (purchases, returns, rewards)."""
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
        return await self.db.transaction(lambda conn: apply(conn, commands, self.rulebook, self.limits))

    async def quote(self, command: PostPurchase) -> Outcome:
        """What the purchase would earn, from every check a posting makes, in a read-only transaction."""
        async with self.db.connection() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            (outcome,) = await apply(conn, [command], self.rulebook, self.limits, write=False)
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
