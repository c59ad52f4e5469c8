"""Model-based test: random postings against the real service and a small reference model.

A hypothesis `RuleBasedStateMachine` enrolls a few members and drives purchases (random
lines, categories and tenders, the card and reward tenders included), redemptions,
returns by units in any split and price adjustments, backdated postings (live ones refused
past the backdating limit, history accepted with the rules of its day), replays (same key
and body: the first answer, byte for byte; same key, other body: 409 and nothing written),
new rules versions, cancellations and erasures, staff adjustments (which may issue rewards or
leave a balance negative), merges of duplicates (balance and open rewards moved, purchases
for the duplicate refused, returns of its purchases charged to the member it was merged
into), and a cancelled guest joining again with the same phone (their debt carried over),
all through the posting engine. The model
does its arithmetic itself (never with `rewards.rules`, or it could only catch plumbing
bugs): the earning, the balance walk, the rewards due, a return's units and the points
they carry, the rewards a return voids. After every step the service's balances, rewards
and row counts must equal the model's, and `rewards.verify.find_problems` must return [].

The service runs on an event loop of its own (the machine is synchronous), against a
scratch database on the test server, emptied before each example, so the whole ledger
it checks is the model's and hypothesis can replay an example exactly.

Profiles (REWARDS_MODEL_PROFILE): `model-ci` (default: 30 examples of up to 25 steps;
10 s on an idle 2-core machine, 30 s on a busy one) and `model-deep` (300 examples of up
to 50 steps: 1.5 to 4 minutes). A failure prints the steps, the seed and a
`@reproduce_failure` blob (print_blob).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections import defaultdict
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar, TypeVar

import asyncpg
import msgspec
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from rewards import errors, members
from rewards.db import Database
from rewards.engine import Actor, Adjust, Cancel, Engine, Limits, Merge, PostPurchase, PostReturn, unwrap
from rewards.privacy.erasure import erase_now
from rewards.rulebook import Rulebook, rules_from_row
from rewards.rules import Rules
from rewards.schemas import (
    AdjustmentIn,
    EnrollmentIn,
    LineIn,
    OfferUseIn,
    PurchaseIn,
    ReturnIn,
    ReturnLineIn,
    RulesIn,
    TenderIn,
)
from rewards.tables import metadata
from rewards.verify import find_problems
from tests.databases import drop_database, fresh_database

T = TypeVar("T")

settings.register_profile(
    "model-ci", max_examples=30, stateful_step_count=25, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
settings.register_profile(
    "model-deep", max_examples=300, stateful_step_count=50, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
PROFILE = os.environ.get("REWARDS_MODEL_PROFILE", "model-ci")

SKUS = ["A", "B", "C"]
CATEGORIES = ["apparel", "home", "gift_card", "tax", "shipping"]
# mostly qualifying goods, and amounts near the reward threshold as often as small ones
LINE = st.tuples(st.sampled_from(["A", "B", "C"]), st.sampled_from(["apparel", "home", *CATEGORIES]), st.integers(1, 3),
                 st.one_of(st.integers(0, 40_000), st.sampled_from([9_999, 29_999, 30_000, 30_001, 45_000])))
PAYING = ["westique_credit_card", "credit_card", "debit_card", "cash", "gift_card", "other"]


MODEL = Actor(system="model")
LIVE = timedelta(days=7)  # REWARDS_MAX_BACKDATE's default, which the engine here runs with


class Service:
    """The real service on its own event loop: the machine calls it synchronously."""

    def __init__(self, loop: asyncio.AbstractEventLoop, db: Database, engine: Engine) -> None:
        self.loop, self.db, self.engine = loop, db, engine

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(work)

    def post(self, command: Any) -> Any:
        """(created, answer), or the domain error the engine refused with."""
        try:
            return unwrap(self.run(self.engine.submit(command)))
        except errors.DomainError as exc:
            return exc

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        return await self.db.run(query, *args)

    async def reset(self) -> list[Rules]:
        """An empty program with its first rules version, so every example starts alike (and
        hypothesis can replay one exactly). This is the test's own scratch database."""
        # the rules and the privacy hash's key come with the schema (the key cannot be emptied)
        tables = [table.name for table in metadata.sorted_tables if table.name not in ("program_rules",
                                                                                        "privacy_hash_key")]
        async with self.db.connection() as conn:
            await conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
            await conn.execute("DELETE FROM program_rules WHERE version > 1")
            rows = await conn.fetch("SELECT version, effective_from, body FROM program_rules")
        await self.engine.rulebook.load()  # type: ignore[attr-defined]
        return [rules_from_row(r) for r in rows]

    async def problems(self) -> list[str]:
        async with self.db.connection() as conn:
            return await find_problems(conn)

    async def publish(self, new: RulesIn) -> Rules:
        return await self.engine.rulebook.publish(new)  # type: ignore[attr-defined, no-any-return]


# --- the model's own arithmetic (the program's rules as written, worked out here) ----------------


def version_at(versions: list[Rules], when: datetime) -> Rules:
    """The latest effective_from not after `when`; the newest version on a tie."""
    best = None
    for v in versions:
        if v.effective_from is not None and v.effective_from <= when and (
                best is None or (v.effective_from, v.version) > (best.effective_from, best.version)):
            best = v
    assert best is not None
    return best


def earning_of(v: Rules, lines: list[tuple[str, int]], tenders: list[tuple[str, int]]) -> tuple[int, int, int]:
    """(qualifying cents, point-cents earned, of which bonus)."""
    eligible = sum(amount for category, amount in lines if category not in v.excluded_categories)
    paying = sum(amount for method, amount in tenders if method != "reward")
    qualifying = max(0, min(eligible, paying))
    card = max(0, min(qualifying, sum(amount for method, amount in tenders if method in v.bonus_tenders)))
    if v.rounding == "floor_per_purchase":
        base_dollars, bonus_dollars = qualifying - qualifying % 100, card - card % 100
    else:
        base_dollars, bonus_dollars = qualifying, card
    bonus = bonus_dollars * v.card_bonus_points_per_dollar
    return qualifying, base_dollars * v.points_per_dollar + bonus, bonus


def due(balance: int, v: Rules) -> int:
    cost = v.reward_threshold_points * 100
    n = 0
    while balance - n * cost >= cost:
        n += 1
    return n


@dataclass
class RewardM:
    code: str
    member_id: int
    value_cents: int
    cost: int
    ordinal: int
    issued_at: datetime
    expires_at: datetime
    status: str = "issued"  # issued, redeemed, voided; "expired" is derived from the time

    def shown(self, now: datetime) -> str:
        return "expired" if self.status == "issued" and self.expires_at <= now else self.status


@dataclass
class MemberM:
    member_id: int
    phone: str = ""
    status: str = "active"  # active, cancelled, merged
    point_cents: int = 0
    erased: bool = False
    forfeited: int = 0
    voided: list[str] = field(default_factory=list)
    purchases: int = 0
    returns: int = 0
    merged_into: int | None = None
    ordinals: int = 0  # the ordinals handed out: rewards issued to it and moved in


@dataclass
class AdjustmentM:
    member_id: int
    body: AdjustmentIn
    answer: bytes


@dataclass
class LineM:
    sku: str
    category: str
    units: int  # left to return
    value: int  # what still earns


@dataclass
class PurchaseM:
    body: PurchaseIn
    version: Rules
    answer: bytes
    earned: int
    issued: int
    lines: list[LineM]
    refunded: dict[str, int] = field(default_factory=dict)
    reversed: int = 0

    def paid(self, sku: str) -> int:
        return sum(x.amount_cents for x in self.body.lines if x.sku == sku)

    def earning_now(self) -> int:
        """What is left earns: the lines' values left, each tender its share of them (rounded down)."""
        total = sum(x.amount_cents for x in self.body.lines)
        left = sum(x.value for x in self.lines)
        tenders = [(t.method, t.amount_cents * left // total if total else 0) for t in self.body.tenders]
        return earning_of(self.version, [(x.category, x.value) for x in self.lines], tenders)[1]

    def take(self, asked: list[tuple[str, int, int]]) -> tuple[list[LineM], dict[str, int]] | None:
        """The lines and refunds after a return; None when it asks more than is left."""
        lines = [LineM(x.sku, x.category, x.units, x.value) for x in self.lines]
        refunded = dict(self.refunded)
        for sku, k, refund in asked:
            mine = [x for x in lines if x.sku == sku]
            if not mine or refunded.get(sku, 0) + refund > self.paid(sku):
                return None
            refunded[sku] = refunded.get(sku, 0) + refund
            if k == 0:  # a price adjustment: its amount off the value, the units stay
                for x in mine:
                    off = min(refund, x.value)
                    x.value, refund = x.value - off, refund - off
                continue
            if k > sum(x.units for x in mine):
                return None
            for x in mine:
                n = min(k, x.units)
                if n:
                    taken = x.value if n == x.units else (x.value // x.units) * n  # the remainder on the last unit
                    x.units, x.value, k = x.units - n, x.value - taken, k - n
        return lines, refunded


@dataclass
class ReturnM:
    purchase_id: str
    body: ReturnIn
    answer: bytes


def encode(answer: Any) -> bytes:
    return msgspec.json.encode(answer)


class RewardsMachine(RuleBasedStateMachine):
    service: ClassVar[Service]

    def __init__(self) -> None:
        super().__init__()
        self.members: dict[int, MemberM] = {}
        self.rewards: dict[str, RewardM] = {}
        self.purchases: dict[str, PurchaseM] = {}
        self.returns: dict[str, ReturnM] = {}
        self.adjustments: dict[str, AdjustmentM] = {}
        self.merges: dict[int, tuple[int, bytes]] = {}  # duplicate: (target, the first answer)
        self.versions = self.service.run(self.service.reset())
        self.published = False
        # postings accepted since the last cancellation: cancelling only after a few keeps the
        # runs long enough to reach rewards, redemptions, returns and negative balances
        self.since_cancel = 0
        # business time: starts months back so rewards expire during a run; never passes the start.
        # Each posting is made as of its business time (`as_of`), as it would have been posted live.
        self.started = datetime.now(UTC).replace(microsecond=0)
        self.clock = self.started - timedelta(days=200)

    # --- helpers ------------------------------------------------------------------------------

    def tick(self, data: st.DataObject) -> datetime:
        hours = data.draw(st.integers(0, 24 * 20), label="hours later")
        self.clock = min(self.clock + timedelta(hours=hours), self.started - timedelta(minutes=2))
        return self.clock

    def active(self) -> list[int]:
        return sorted(m for m, x in self.members.items() if x.status == "active")

    def holder(self, member_id: int) -> MemberM:
        """The member whose points these are now: itself, or the one it was merged into."""
        m = self.members[member_id]
        return self.members[m.merged_into] if m.merged_into is not None else m

    def issue(self, m: MemberM, version: Rules, when: datetime) -> list[tuple[int, datetime]]:
        """The rewards the balance allows, taken off it: (ordinal, expiry) of each, in order."""
        cost = version.reward_threshold_points * 100
        issued = []
        for _ in range(due(m.point_cents, version)):
            m.point_cents -= cost
            m.ordinals += 1
            issued.append((m.ordinals, when + timedelta(days=version.reward_validity_days)))
        return issued

    def open_rewards(self, member_id: int, when: datetime) -> list[str]:
        # in the order issued: reward codes are random, so sorting them would make the draws depend on luck
        return [c for c, r in self.rewards.items()
                if r.member_id == member_id and r.status == "issued" and r.issued_at <= when < r.expires_at]

    def expect_purchase(self, p: PurchaseIn, posted_at: datetime | None = None, *, history: bool = False) -> None:
        """Post `p` (as of `posted_at`, by default its own time) and check the answer against the model;
        apply it to the model if it was accepted."""
        posted_at = posted_at or p.occurred_at
        got = self.service.post(PostPurchase.of(p, MODEL, history=history, as_of=posted_at))
        m = self.members.get(p.member_id)
        if not history and p.occurred_at < posted_at - LIVE:
            assert isinstance(got, errors.ValidationFailed) and got.extra["field"] == "occurred_at", got
            return
        if m is None:
            assert isinstance(got, errors.NotFound), got
            return
        if m.status == "merged":
            assert isinstance(got, errors.MemberMerged) and got.extra["merged_into"] == m.merged_into, got
            return
        if m.status != "active":
            assert isinstance(got, errors.MemberNotActive), got
            return
        tendered = [(t.reward_code, t.amount_cents) for t in p.tenders if t.reward_code]
        bad = [code for code, amount in tendered
               if code not in self.rewards or self.rewards[code].member_id != p.member_id
               or self.rewards[code].status != "issued" or p.occurred_at >= self.rewards[code].expires_at
               or p.occurred_at < self.rewards[code].issued_at  # a purchase dated before the reward existed
               or posted_at >= self.rewards[code].expires_at  # expired by the time it is posted
               or amount > self.rewards[code].value_cents]
        if bad:
            assert isinstance(got, errors.RewardNotRedeemable), got
            assert got.extra["reward_code"] == bad[0]
            return
        assert isinstance(got, tuple), got
        created, out = got
        assert created
        version = version_at(self.versions, p.occurred_at)
        qualifying, earned, bonus = earning_of(version, [(x.category, x.amount_cents) for x in p.lines],
                                               [(t.method, t.amount_cents) for t in p.tenders])
        cost = version.reward_threshold_points * 100
        assert (out.qualifying_cents, out.point_cents_earned, out.bonus_point_cents) == (qualifying, earned, bonus)
        m.point_cents += earned
        issued_now = self.issue(m, version, p.occurred_at)
        assert len(out.rewards_issued) == len(issued_now)
        assert out.rewards_redeemed == [code for code, _ in tendered]
        assert (out.balance.point_cents, out.balance.points) == (m.point_cents, m.point_cents // 100)
        m.purchases += 1
        for code, _ in tendered:
            self.rewards[code].status = "redeemed"
        for issued, (ordinal, expires_at) in zip(out.rewards_issued, issued_now, strict=True):
            assert issued.code not in self.rewards
            assert issued.value_cents == version.reward_value_cents
            assert issued.expires_at == expires_at
            self.rewards[issued.code] = RewardM(issued.code, p.member_id, issued.value_cents, cost, ordinal,
                                                p.occurred_at, issued.expires_at)
        self.purchases[p.purchase_id] = PurchaseM(
            p, version, encode(out), earned, len(issued_now),
            [LineM(x.sku, x.category, x.quantity, x.amount_cents) for x in p.lines])
        self.since_cancel += 1

    def purchase_body(self, member_id: int, when: datetime, lines: list[tuple[str, str, int, int]],
                      rewards_tendered: list[tuple[str, int]], data: st.DataObject) -> PurchaseIn:
        total = sum(a for *_, a in lines)
        rest = total - sum(a for _, a in rewards_tendered)
        methods = data.draw(st.lists(st.sampled_from(PAYING), min_size=1, max_size=2, unique=True), label="methods")
        cut = data.draw(st.integers(0, rest), label="split") if len(methods) == 2 else rest
        shares = [cut, rest - cut] if len(methods) == 2 else [rest]
        tenders = [TenderIn(method="reward", amount_cents=a, reward_code=c) for c, a in rewards_tendered]
        tenders += [TenderIn(method=mt, amount_cents=a) for mt, a in zip(methods, shares, strict=True)]
        return PurchaseIn(
            purchase_id=f"p-{uuid.uuid4().hex[:12]}", member_id=member_id, occurred_at=when,
            store_id="S001", channel="store",
            lines=[LineIn(sku=s, category=c, quantity=q, amount_cents=a) for s, c, q, a in lines],
            tenders=tenders,
        )

    # --- members ------------------------------------------------------------------------------

    @precondition(lambda self: len(self.active()) < 2 and len(self.members) < 6)
    @rule()
    def enroll(self) -> None:
        tag = uuid.uuid4().int % 10**7
        _, out = self.service.run(members.enroll(self.service.engine, EnrollmentIn(
            name="Model Member", email=f"model.{tag}@example.com", phone=f"+1555{tag:07d}",
            birth_date=date(1990, 1, 1), state="CA", terms_version="2023-10-30", notice_version="2023-10-30",
            channel="store"), MODEL))
        assert out.status == "active" and out.carried_over is None
        self.members[out.member_id] = MemberM(out.member_id, phone=f"+1555{tag:07d}")

    def rejoining(self) -> list[int]:
        """Cancelled members, not erased, whose phone no active member has."""
        taken = {m.phone for m in self.members.values() if m.status == "active"}
        return [k for k, m in self.members.items() if m.status == "cancelled" and not m.erased
                and m.phone not in taken]

    @precondition(lambda self: self.rejoining() and len(self.members) < 8)
    @rule(data=st.data())
    def rejoin(self, data: st.DataObject) -> None:
        """A guest who cancelled joins again with the same phone (spelled otherwise): whatever their
        cancelled memberships with that phone owed, they start from."""
        old = self.members[data.draw(st.sampled_from(self.rejoining()), label="old membership")]
        owing = sorted(k for k, m in self.members.items() if m.phone == old.phone and m.status == "cancelled"
                       and not m.erased and m.point_cents < 0)
        debt = sum(self.members[k].point_cents for k in owing)
        tag = uuid.uuid4().int % 10**9
        _, out = self.service.run(members.enroll(self.service.engine, EnrollmentIn(
            name="Model Member", email=f"again.{tag}@example.com", phone="00" + old.phone[1:],
            birth_date=date(1990, 1, 1), state="CA", terms_version="2023-10-30", notice_version="2023-10-30",
            channel="online"), MODEL))
        assert (out.balance.point_cents, out.carried_over is not None) == (debt, bool(owing))
        if out.carried_over is not None:
            assert (out.carried_over.point_cents, out.carried_over.from_member_ids) == (debt, owing)
        for k in owing:
            self.members[k].point_cents = 0
        self.members[out.member_id] = MemberM(out.member_id, phone=old.phone, point_cents=debt)

    @precondition(lambda self: self.members and self.since_cancel >= 4)
    @rule(data=st.data(), erase=st.booleans())
    def cancel(self, data: st.DataObject, erase: bool) -> None:
        member_id = data.draw(st.sampled_from(sorted(self.members)), label="member")
        m = self.members[member_id]
        when = self.tick(data)
        self.since_cancel = 0
        if m.status == "merged" and not erase:
            got = self.service.post(Cancel(member_id, MODEL, as_of=when))
            assert isinstance(got, errors.MemberMerged) and got.extra["merged_into"] == m.merged_into, got
            return
        if m.status == "active":
            m.forfeited = max(0, m.point_cents)
            m.point_cents -= m.forfeited
            m.voided = []
            for r in sorted((r for r in self.rewards.values()
                             if r.member_id == member_id and r.status == "issued" and r.expires_at > when),
                            key=lambda r: r.ordinal):
                r.status = "voided"
                m.voided.append(r.code)
            m.status = "cancelled"
        if erase:
            out = self.service.run(erase_now(self.service.engine, member_id, MODEL, "consumer_confirmed", as_of=when))
            assert out.status == m.status
            m.erased = True
            for other in self.members.values():  # the duplicates merged into it are the same person
                if other.merged_into == member_id:
                    other.erased = True
            profile = self.service.run(members.profile(self.service.db, member_id))
            assert (profile.name, profile.email, profile.phone, profile.birth_date) == (None, None, None, None)
        else:
            got = self.service.post(Cancel(member_id, MODEL, as_of=when))
            assert isinstance(got, tuple), got
            out = got[1]
            assert out.status == "cancelled"
            assert out.point_cents_forfeited == m.forfeited
            assert out.rewards_voided == m.voided

    # --- purchases ----------------------------------------------------------------------------

    @precondition(lambda self: self.members)
    @rule(data=st.data())
    def buy(self, data: st.DataObject) -> None:
        member_id = data.draw(st.sampled_from(sorted(self.members)), label="member")
        when = self.tick(data)
        lines = data.draw(st.lists(LINE, min_size=1, max_size=3), label="lines")
        total = sum(a for *_, a in lines)
        # sometimes tender rewards: usually the member's own open ones, sometimes any known code
        codes = self.open_rewards(member_id, when)
        if self.rewards and data.draw(st.integers(0, 3), label="any reward") == 0:
            codes = list(self.rewards)
        chosen = data.draw(st.lists(st.sampled_from(codes), max_size=2, unique=True), label="rewards") if codes else []
        tendered: list[tuple[str, int]] = []
        for code in chosen:
            room = total - sum(a for _, a in tendered)
            if room < 1:
                break
            value = self.rewards[code].value_cents
            tendered.append((code, min(room, data.draw(st.integers(1, value + 50), label="reward amount"))))
        self.expect_purchase(self.purchase_body(member_id, when, lines, tendered, data))

    @precondition(lambda self: self.members)
    @rule(data=st.data(), history=st.booleans())
    def backdated_purchase(self, data: st.DataObject, history: bool) -> None:
        """Posted now (the business clock) but dated days back: beyond the backdating limit a live posting
        is refused; history is taken with the rules of its day, and its rewards may be born expired."""
        member_id = data.draw(st.sampled_from(sorted(self.members)), label="member")
        now = self.tick(data)
        when = now - timedelta(hours=data.draw(st.integers(0, 24 * 120), label="hours back"))
        codes = self.open_rewards(member_id, when)
        tendered = [(codes[0], 500)] if codes and data.draw(st.booleans(), label="redeem") else []
        lines = data.draw(st.lists(LINE, min_size=1, max_size=2), label="lines")
        if tendered and sum(a for *_, a in lines) < 500:
            lines.append(("A", "apparel", 1, 500))
        self.expect_purchase(self.purchase_body(member_id, when, lines, tendered, data), now, history=history)

    @precondition(lambda self: any(self.open_rewards(m, self.clock) for m in self.active()))
    @rule(data=st.data())
    def redeem(self, data: st.DataObject) -> None:
        member_id = data.draw(st.sampled_from([m for m in self.active() if self.open_rewards(m, self.clock)]))
        when = self.tick(data)
        codes = self.open_rewards(member_id, when)
        if not codes:
            return  # it expired while time passed; `buy` covers tendering expired rewards
        code = data.draw(st.sampled_from(codes), label="reward")
        value = self.rewards[code].value_cents
        extra = data.draw(st.integers(0, 20_000), label="paid on top")
        lines = [("R", data.draw(st.sampled_from(["apparel", "home", "tax"])), 1, value + extra)]
        self.expect_purchase(self.purchase_body(member_id, when, lines, [(code, value)], data))
        assert self.rewards[code].status == "redeemed"

    @precondition(lambda self: self.active())
    @rule(data=st.data())
    def top_up_to_the_threshold(self, data: st.DataObject) -> None:
        """A purchase that brings the balance to exactly the threshold (when the rules allow): one reward, 0 left."""
        member_id = data.draw(st.sampled_from(self.active()), label="member")
        when = self.tick(data)
        version = version_at(self.versions, when)
        # a new version may have lowered the threshold below the balance: then a $0 purchase issues rewards
        needed = max(0, version.reward_threshold_points * 100 - self.members[member_id].point_cents)
        amount = -(-needed // max(version.points_per_dollar, 1))
        if version.rounding == "floor_per_purchase":
            amount = -(-amount // 100) * 100
        self.expect_purchase(self.purchase_body(member_id, when, [("T", "home", 1, amount)], [], data))

    def issued_rewards(self, *, expired: bool = False) -> list[str]:
        """Rewards still `issued` to an active member (with `expired`: whose expiry lies before the run's start)."""
        latest = self.started - timedelta(minutes=2)
        return [c for c, r in self.rewards.items() if r.status == "issued"
                and self.members[r.member_id].status == "active" and (not expired or r.expires_at <= latest)]

    @precondition(lambda self: self.issued_rewards())
    @rule(data=st.data(), edge=st.sampled_from(["at issue", "before issue", "before expiry", "at expiry"]))
    def tender_at_the_edges(self, data: st.DataObject, edge: str) -> None:
        """A reward is redeemable from the instant it was issued until just before it expires, not outside."""
        candidates = self.issued_rewards(expired=edge.endswith("expiry"))
        if not candidates:
            return
        code = data.draw(st.sampled_from(candidates), label="reward")
        r = self.rewards[code]
        when = {"at issue": r.issued_at, "before issue": r.issued_at - timedelta(seconds=1),
                "before expiry": r.expires_at - timedelta(seconds=1), "at expiry": r.expires_at}[edge]
        self.expect_purchase(self.purchase_body(r.member_id, when, [("R", "apparel", 1, r.value_cents + 500)],
                                                [(code, r.value_cents)], data))
        assert self.rewards[code].status == ("redeemed" if edge in ("at issue", "before expiry") else "issued")

    @precondition(lambda self: self.members)
    @rule(data=st.data())
    def bad_purchase(self, data: st.DataObject) -> None:
        """Bad input is refused and writes nothing (the invariant checks the row counts)."""
        member_id = data.draw(st.sampled_from(sorted(self.members)), label="member")
        kind = data.draw(st.sampled_from(["unbalanced", "currency", "no member", "future", "offer twice"]),
                         label="kind")
        body = self.purchase_body(member_id, self.clock, [("A", "apparel", 1, 2500)], [], data)
        if kind == "unbalanced":
            body = msgspec.structs.replace(body, tenders=[TenderIn(method="cash", amount_cents=2499)])
            expected: type[errors.DomainError] = errors.TendersDoNotBalance
        elif kind == "currency":
            body = msgspec.structs.replace(body, currency="EUR")
            expected = errors.UnsupportedCurrency
        elif kind == "future":
            body = msgspec.structs.replace(body, occurred_at=self.clock + timedelta(days=1))
            expected = errors.ValidationFailed
        elif kind == "offer twice":
            body = msgspec.structs.replace(body, offers=[OfferUseIn(code="TWICE", discount_cents=1)] * 2)
            expected = errors.ValidationFailed
        else:
            body = msgspec.structs.replace(body, member_id=2**40 + member_id)
            expected = errors.NotFound
        got = self.service.post(PostPurchase.of(body, MODEL, as_of=self.clock))
        assert isinstance(got, expected), got

    @precondition(lambda self: self.purchases)
    @rule(data=st.data(), same=st.booleans())
    def replay_purchase(self, data: st.DataObject, same: bool) -> None:
        pid = data.draw(st.sampled_from(list(self.purchases)), label="purchase")
        first = self.purchases[pid]
        body = first.body if same else msgspec.structs.replace(first.body, store_id="S999")
        # a replay arrives later (its answer is the first one, whatever the time now)
        got = self.service.post(PostPurchase.of(body, MODEL, history=True, as_of=self.clock))
        if same:
            assert isinstance(got, tuple), got
            assert got[0] is False
            assert encode(got[1]) == first.answer
        else:
            assert isinstance(got, errors.IdempotencyConflict), got

    # --- returns ------------------------------------------------------------------------------

    @precondition(lambda self: self.purchases)
    @rule(data=st.data())
    def give_back(self, data: st.DataObject) -> None:
        # often a purchase that issued a reward: taking its points back can void it or leave the balance negative
        rewarding = [k for k, p in self.purchases.items() if p.issued]
        candidates = rewarding if rewarding and data.draw(st.booleans(), label="rewarding") else list(self.purchases)
        pid = data.draw(st.sampled_from(candidates), label="purchase")
        p = self.purchases[pid]
        units_left = {x.sku: 0 for x in p.lines}
        for x in p.lines:
            units_left[x.sku] += x.units
        returnable = sorted(sku for sku, n in units_left.items() if n >= 1)
        mode = data.draw(st.sampled_from(["units", "all", "price adjustment", "too much"]), label="mode")
        asked: list[tuple[str, int, int]] = []

        def refund(sku: str) -> int:
            room = p.paid(sku) - p.refunded.get(sku, 0) - sum(a for s, _, a in asked if s == sku)
            return data.draw(st.integers(0, max(0, room)), label="refund")

        if mode == "all" and returnable:
            asked = [(sku, units_left[sku], 0) for sku in returnable]
        elif mode == "units" and returnable:
            for sku in data.draw(st.lists(st.sampled_from(returnable), min_size=1, unique=True), label="skus"):
                asked.append((sku, data.draw(st.integers(1, units_left[sku]), label="units"), refund(sku)))
        elif mode == "price adjustment":
            sku = data.draw(st.sampled_from(sorted(units_left)), label="sku")
            amount = refund(sku)
            if amount == 0:
                return
            asked = [(sku, 0, amount)]
        else:
            sku = data.draw(st.sampled_from([*SKUS, "ZZZ"]), label="sku")
            if data.draw(st.booleans(), label="by units") or sku not in units_left:
                asked = [(sku, units_left.get(sku, 0) + 1, 0)]
            else:
                asked = [(sku, 0, p.paid(sku) - p.refunded.get(sku, 0) + 1)]
        when = max(self.tick(data), p.body.occurred_at)
        ret = ReturnIn(return_id=f"r-{uuid.uuid4().hex[:12]}", occurred_at=when,
                       lines=[ReturnLineIn(sku=s, quantity=q, amount_cents=a) for s, q, a in asked])
        got = self.service.post(PostReturn.of(pid, ret, MODEL, history=True, as_of=when))
        after = p.take(asked)
        if after is None:
            assert isinstance(got, errors.ReturnExceedsPurchase), got
            return
        assert isinstance(got, tuple), got
        created, out = got
        assert created
        before = p.earning_now()
        p.lines, p.refunded = after
        taken = before - p.earning_now()
        m = self.holder(p.body.member_id)
        m.point_cents -= taken
        # open rewards, newest first, give their points back before the balance may go below zero
        voided = []
        for r in sorted((r for r in self.rewards.values() if r.member_id == m.member_id and r.status == "issued"
                         and r.expires_at > when), key=lambda r: -r.ordinal):
            if m.point_cents >= 0:
                break
            r.status = "voided"
            m.point_cents += r.cost
            voided.append(r.code)
        m.returns += 1
        assert out.point_cents_reversed == taken >= 0
        assert out.rewards_voided == voided
        assert out.balance.point_cents == m.point_cents
        p.reversed += taken
        assert p.reversed <= p.earned
        if all(x.units == 0 for x in p.lines):
            assert p.reversed == p.earned, "every unit back takes back exactly what was earned"
        self.returns[ret.return_id] = ReturnM(pid, ret, encode(out))
        self.since_cancel += 1

    @precondition(lambda self: self.returns)
    @rule(data=st.data(), same=st.booleans())
    def replay_return(self, data: st.DataObject, same: bool) -> None:
        rid = data.draw(st.sampled_from(list(self.returns)), label="return")
        first = self.returns[rid]
        body = first.body if same else msgspec.structs.replace(
            first.body, occurred_at=first.body.occurred_at + timedelta(seconds=1))
        got = self.service.post(PostReturn.of(first.purchase_id, body, MODEL, history=True, as_of=self.clock))
        if same:
            assert isinstance(got, tuple), got
            assert got[0] is False
            assert encode(got[1]) == first.answer
        else:
            assert isinstance(got, errors.IdempotencyConflict), got

    # --- the desk: adjustments and merges --------------------------------------------------------

    @precondition(lambda self: self.members)
    @rule(data=st.data())
    def adjust(self, data: st.DataObject) -> None:
        """Points added or taken: rewards issued as the balance allows, a balance that may go negative."""
        member_id = data.draw(st.sampled_from(sorted(self.members)), label="member")
        now = self.tick(data)
        point_cents = data.draw(st.one_of(st.integers(-40_000, 70_000), st.sampled_from([0, 30_000, -1])),
                                label="point-cents")
        body = AdjustmentIn(adjustment_id=f"a-{uuid.uuid4().hex[:12]}", point_cents=point_cents,
                            reason=data.draw(st.sampled_from(["goodwill", "correction", "migration", "other"])),
                            note=data.draw(st.one_of(st.none(), st.just("a note")), label="note"))
        got = self.service.post(Adjust.of(member_id, body, MODEL, as_of=now))
        m = self.members[member_id]
        if point_cents == 0:
            assert isinstance(got, errors.ValidationFailed) and got.extra["field"] == "point_cents", got
            return
        if m.status == "merged":
            assert isinstance(got, errors.MemberMerged) and got.extra["merged_into"] == m.merged_into, got
            return
        if m.status != "active":
            assert isinstance(got, errors.MemberNotActive), got
            return
        assert isinstance(got, tuple) and got[0], got
        out = got[1]
        version = version_at(self.versions, now)
        m.point_cents += point_cents
        issued_now = self.issue(m, version, now)
        assert (out.point_cents, out.balance.point_cents) == (point_cents, m.point_cents)
        assert len(out.rewards_issued) == len(issued_now)
        for issued, (ordinal, expires_at) in zip(out.rewards_issued, issued_now, strict=True):
            assert issued.expires_at == expires_at and issued.value_cents == version.reward_value_cents
            self.rewards[issued.code] = RewardM(issued.code, member_id, issued.value_cents,
                                                version.reward_threshold_points * 100, ordinal, now, expires_at)
        self.adjustments[body.adjustment_id] = AdjustmentM(member_id, body, encode(out))
        self.since_cancel += 1

    @precondition(lambda self: self.adjustments)
    @rule(data=st.data(), same=st.booleans())
    def replay_adjustment(self, data: st.DataObject, same: bool) -> None:
        first = self.adjustments[data.draw(st.sampled_from(sorted(self.adjustments)), label="adjustment")]
        body = first.body if same else msgspec.structs.replace(first.body, point_cents=first.body.point_cents + 1)
        got = self.service.post(Adjust.of(first.member_id, body, MODEL, as_of=self.clock))
        if same:
            assert isinstance(got, tuple) and got[0] is False, got
            assert encode(got[1]) == first.answer
        else:
            assert isinstance(got, errors.IdempotencyConflict), got

    @precondition(lambda self: len(self.members) >= 2)
    @rule(data=st.data())
    def merge(self, data: st.DataObject) -> None:
        """A duplicate folded into another member (or refused, as the service must refuse it)."""
        ids = sorted(self.members)
        target_id = data.draw(st.sampled_from(self.active() or ids), label="target")
        source_id = data.draw(st.sampled_from(ids), label="duplicate")
        now = self.tick(data)
        got = self.service.post(Merge(target_id, source_id, MODEL, as_of=now))
        target, source = self.members[target_id], self.members[source_id]
        if target_id == source_id:
            assert isinstance(got, errors.ValidationFailed) and got.extra["field"] == "from_member_id", got
            return
        if source.status == "merged":
            first = self.merges.get(source_id)
            if first is not None and first[0] == target_id and source.merged_into == target_id:
                assert isinstance(got, tuple) and got[0] is False and encode(got[1]) == first[1], got
            else:
                assert isinstance(got, errors.MemberMerged) and got.extra["merged_into"] == source.merged_into, got
            return
        if target.status == "merged":
            assert isinstance(got, errors.MemberMerged), got
            return
        if target.status != "active" or source.erased:
            assert isinstance(got, errors.MemberNotActive), got
            return
        assert isinstance(got, tuple) and got[0], got
        out = got[1]
        moved = source.point_cents
        target.point_cents += moved
        source.point_cents = 0
        open_ones = sorted((r for r in self.rewards.values()
                            if r.member_id == source_id and r.status == "issued" and r.expires_at > now),
                           key=lambda r: r.ordinal)
        for r in open_ones:
            target.ordinals += 1
            r.member_id, r.ordinal = target_id, target.ordinals
        source.status, source.merged_into = "merged", target_id
        for other in self.members.values():
            if other.merged_into == source_id:
                other.merged_into = target_id
        assert (out.member_id, out.from_member_id, out.point_cents_moved) == (target_id, source_id, moved)
        assert out.rewards_moved == [r.code for r in open_ones]
        assert out.balance.point_cents == target.point_cents
        self.merges[source_id] = (target_id, encode(out))
        self.since_cancel += 1

    # --- the rules ------------------------------------------------------------------------------

    @precondition(lambda self: not self.published and not self.purchases)
    @rule(data=st.data())
    def publish_rules(self, data: st.DataObject) -> None:
        """A new version, from a moment of the business clock on (published before any purchase, so it may
        be dated back): postings from then on use it, history dated before it the first version."""
        new = RulesIn(
            effective_from=self.clock + timedelta(seconds=1),
            points_per_dollar=data.draw(st.integers(1, 3), label="points per dollar"),
            card_bonus_points_per_dollar=data.draw(st.integers(0, 2), label="bonus"),
            reward_threshold_points=data.draw(st.sampled_from([100, 300, 500]), label="threshold"),
            reward_value_cents=data.draw(st.sampled_from([500, 1000]), label="value"),
            reward_validity_days=data.draw(st.sampled_from([30, 90]), label="validity"),
            excluded_categories=data.draw(st.sets(st.sampled_from(CATEGORIES)).map(sorted), label="excluded"),
            rounding=data.draw(st.sampled_from(["carry", "floor_per_purchase"]), label="rounding"),
        )
        published = self.service.run(self.service.publish(new))
        self.versions.append(published)
        self.published = True

    # --- after every step -----------------------------------------------------------------------

    @invariant()
    def service_agrees_with_the_model(self) -> None:
        now = datetime.now(UTC)
        for member_id, m in self.members.items():
            rulebook = self.service.engine.rulebook
            balance = self.service.run(members.balance(self.service.db, rulebook, member_id))  # type: ignore[arg-type]
            assert (balance.status, balance.point_cents, balance.points) == (
                m.status, m.point_cents, m.point_cents // 100), member_id
            cost = version_at(self.versions, now).reward_threshold_points * 100
            assert balance.points_to_next_reward == max(0, -(-(cost - m.point_cents) // 100))
            # the balance lists every open reward and the member's newest others, newest first
            newest_first = sorted((r for r in self.rewards.values() if r.member_id == member_id),
                                  key=lambda r: -r.ordinal)
            theirs = [r for i, r in enumerate(newest_first) if i < members.REWARDS_SHOWN or r.shown(now) == "issued"]
            assert [(r.code, r.status) for r in balance.rewards] == [(r.code, r.shown(now)) for r in theirs]
        if self.members:
            counts = self.service.run(self.service.fetch(
                """SELECT m.id, (SELECT count(*) FROM purchases p WHERE p.member_id = m.id) AS purchases,
                          (SELECT count(*) FROM purchase_returns r WHERE r.member_id = m.id) AS returns
                   FROM members m WHERE m.id = ANY ($1::bigint[])""", list(self.members)))
            assert {r["id"]: (r["purchases"], r["returns"]) for r in counts} == {
                k: (m.purchases, m.returns) for k, m in self.members.items()}

    @invariant()
    def verify_finds_nothing_wrong(self) -> None:
        assert self.service.run(self.service.problems()) == []


def test_service_matches_the_reference_model(database_url: str) -> None:
    loop = asyncio.new_event_loop()
    url = loop.run_until_complete(fresh_database(database_url, "rewards_model"))
    db = Database(url, pool_size=2)
    try:
        RewardsMachine.service = Service(loop, db, Engine(db, Rulebook(db), Limits()))
        run_state_machine_as_test(RewardsMachine, settings=settings.get_profile(PROFILE))
    finally:
        loop.run_until_complete(db.close())
        loop.run_until_complete(drop_database(url))
        loop.close()
