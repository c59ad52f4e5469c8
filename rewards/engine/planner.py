"""Every decision about a posting, in one place, in pure Python: no I/O, no clock of its own.

A `Planner` is given what a batch read (`Snapshot`, its members locked), the rules versions,
the limits and a source of reward codes; `decide` answers each command in turn, as if the
batch's postings had been made one after the other in that order, and adds the rows each
writes to `plan`. A refused command writes nothing and answers its `DomainError`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from rewards import errors, rules
from rewards.engine import rows
from rewards.engine.commands import (
    Actor,
    Adjust,
    Cancel,
    CarryDebt,
    Command,
    ExpireRewards,
    Limits,
    Merge,
    PostPurchase,
    PostReturn,
)
from rewards.engine.snapshot import Cancellation, Snapshot
from rewards.schemas import (
    AdjustmentOut,
    BalanceBrief,
    CancelOut,
    CarriedOver,
    MergeOut,
    PurchaseIn,
    PurchaseOut,
    QuoteOut,
    ReturnOut,
    RewardIssuedOut,
)


class OutOfIds(Exception):
    """A command needs more new ids of a table than were drawn: add them, and decide it again
    (nothing was changed by the command that raised this)."""

    def __init__(self, table: str, missing: int) -> None:
        super().__init__(table)
        self.table = table
        self.missing = missing


@dataclass(slots=True)
class Outcome:
    """A command's answer, or the error it is refused with; `created` is false for a replay."""

    created: bool
    answer: Any = None
    error: errors.DomainError | None = None


@dataclass(slots=True)
class RewardsExpired:
    """What an `ExpireRewards` put on the record: the codes expired, and those whose
    `reward.expiring` notice was written."""

    member_id: int
    expired: list[str]
    noticed: list[str]


def _issued_out(issued: Sequence[Any]) -> list[RewardIssuedOut]:
    """The rewards a posting issued, as its answer names them (rows written now, or as read for a replay)."""
    return [RewardIssuedOut(code=r.code, value_cents=r.value_cents, expires_at=r.expires_at) for r in issued]


def brief(point_cents: int) -> BalanceBrief:
    return BalanceBrief(points=rules.whole_points(point_cents), point_cents=point_cents)


@dataclass(slots=True)
class _Returnable:
    """A purchase as returns see it: what was bought, how it was paid, and what is left."""

    id: int
    member_id: int
    occurred_at: Any
    rules_version: int
    lines: list[rules.BoughtLine]
    tenders: list[tuple[str, int]]
    remaining: rules.Remaining


class Planner:
    def __init__(self, snapshot: Snapshot, versions: Sequence[rules.Rules], limits: Limits,
                 new_code: Callable[[], str]) -> None:
        self.recorded_at = snapshot.now
        self.now = snapshot.now  # the moment the command being decided is posted at (its as_of, or now)
        self.limits = limits
        self.new_code = new_code
        self.versions = versions
        self.in_force = rules.in_force_lookup(versions)
        self.by_version = {v.version: v for v in versions}
        self.plan = rows.Plan()
        self._snapshot_members = {m.id: m for m in snapshot.members}
        self._members: dict[int, rows.Member] = {}
        self._snapshot_rewards = {r.id: r for r in snapshot.rewards}
        self._rewards: dict[int, rows.Reward] = {}
        self._codes = {r.code: r.id for r in snapshot.rewards}
        self._offers = snapshot.offers
        self._prior_purchases = {p.ext_id: p for p in snapshot.prior_purchases}
        self._prior_returns = {r.ext_id: r for r in snapshot.prior_returns}
        self._prior_adjustments = {a.ext_id: a for a in snapshot.prior_adjustments}
        self._prior_merges = {m.from_member_id: msgspec.convert(m.answer, MergeOut) for m in snapshot.prior_merges}
        self._cancellations = {c.member_id: c for c in snapshot.cancellations}
        self._returnable = {p.ext_id: _Returnable(
            p.id, p.member_id, p.occurred_at, p.rules_version,
            [rules.BoughtLine(x["sku"], x["category"], x["quantity"], x["amount_cents"]) for x in p.lines],
            [(t["method"], t["amount_cents"]) for t in p.tenders],
            _after_returns(p.lines, p.returns)) for p in snapshot.returnable}
        self._ids = {"purchases": list(reversed(snapshot.ids.purchases)),
                     "returns": list(reversed(snapshot.ids.returns)),
                     "rewards": list(reversed(snapshot.ids.rewards)),
                     "adjustments": list(reversed(snapshot.ids.adjustments))}
        # postings made earlier in this batch, by key: (fingerprint, answer)
        self._posted: dict[str, tuple[bytes, PurchaseOut]] = {}
        self._returned: dict[str, tuple[bytes, ReturnOut]] = {}
        self._adjusted: dict[str, tuple[bytes, AdjustmentOut]] = {}
        self._merged: dict[int, MergeOut] = {}

    def result(self) -> rows.Plan:
        """The plan, without the members and rewards that were looked at but not changed."""
        plan = self.plan
        plan.members = {k: m for k, m in plan.members.items() if _member_state(m) != _member_state(
            self._snapshot_members[k])}
        plan.changed_rewards = {k: r for k, r in plan.changed_rewards.items() if _reward_state(r) != _reward_state(
            self._snapshot_rewards[k])}
        return plan

    # --- the commands ---------------------------------------------------------------------

    def decide(self, command: Command) -> Outcome:
        """The command's outcome, its rows added to the plan; raises OutOfIds (changing nothing)
        when the ids drawn for new rows run out."""
        self.now = command.as_of or self.recorded_at
        try:
            if isinstance(command, PostPurchase):
                return self._purchase(command)
            if isinstance(command, PostReturn):
                return self._return(command)
            if isinstance(command, Adjust):
                return self._adjust(command)
            if isinstance(command, Merge):
                return self._merge(command)
            if isinstance(command, CarryDebt):
                return self._carry_debt(command)
            if isinstance(command, Cancel):
                return self._cancel(command)
            return self._expire(command)
        except errors.DomainError as refused:
            return Outcome(False, error=refused)

    def quote(self, command: PostPurchase) -> Outcome:
        """What the purchase would earn: every check a posting makes, nothing planned."""
        self.now = command.as_of or self.recorded_at
        try:
            key = command.purchase.purchase_id
            if key in self._posted or key in self._prior_purchases:
                raise errors.IdempotencyConflict(f"purchase {key} was already posted; a quote needs a new purchase_id")
            version, _ = self._admit_purchase(command)
        except errors.DomainError as refused:
            return Outcome(False, error=refused)
        p = command.purchase
        earned = _earning(p, version)
        return Outcome(False, QuoteOut(
            purchase_id=p.purchase_id, member_id=p.member_id, rules_version=version.version,
            qualifying_cents=earned.qualifying_cents, card_cents=earned.card_cents,
            point_cents_earned=earned.point_cents, bonus_point_cents=earned.bonus_point_cents))

    def _purchase(self, command: PostPurchase) -> Outcome:
        p = command.purchase
        replay = self._purchase_replay(command)
        if replay is not None:
            return replay
        version, redeemed = self._admit_purchase(command)
        member = self._member(p.member_id)
        earned = _earning(p, version)
        self._need(purchases=1, rewards=rules.rewards_due(member.point_cents + earned.point_cents, version))
        purchase_id = self._new_id("purchases")
        when, actor = p.occurred_at, command.actor
        entries: list[rows.Entry] = []
        if earned.base_point_cents > 0:
            entries.append(self._entry(member.id, "earn", earned.base_point_cents, when, actor,
                                       purchase_id=purchase_id, rules_version=version.version))
        if earned.bonus_point_cents > 0:
            entries.append(self._entry(member.id, "card_bonus", earned.bonus_point_cents, when, actor,
                                       purchase_id=purchase_id, rules_version=version.version))
        for reward in sorted(redeemed, key=lambda r: r.id):
            reward.status, reward.redeemed_at, reward.redeemed_purchase_id = "redeemed", when, purchase_id
            entries.append(self._entry(member.id, "reward_redeemed", 0, when, actor, purchase_id=purchase_id,
                                       reward_id=reward.id, rules_version=version.version))
        member.point_cents += earned.point_cents
        issued = self._issue_rewards(member, version, when, actor, entries, purchase_id=purchase_id)
        self.plan.entries.extend(entries)
        answer = PurchaseOut(
            purchase_id=p.purchase_id, member_id=member.id, qualifying_cents=earned.qualifying_cents,
            point_cents_earned=earned.point_cents, bonus_point_cents=earned.bonus_point_cents,
            rewards_issued=_issued_out(issued),
            rewards_redeemed=[t.reward_code for t in p.tenders if t.reward_code],
            balance=brief(member.point_cents))
        self.plan.purchases.append(rows.Purchase(
            id=purchase_id, ext_id=p.purchase_id, member_id=member.id, occurred_at=when, rules_version=version.version,
            fingerprint=rows.bytea(command.digest), body=msgspec.Raw(command.body),
            qualifying_cents=earned.qualifying_cents, card_cents=earned.card_cents, point_cents=earned.point_cents,
            bonus_point_cents=earned.bonus_point_cents, balance_after=member.point_cents,
            rewards_redeemed=answer.rewards_redeemed, store_id=p.store_id, created_at=self.recorded_at))
        self._event("purchase.posted", member.id, when, {
            "purchase_id": p.purchase_id, "store_id": p.store_id, "channel": p.channel,
            "qualifying_cents": earned.qualifying_cents, "point_cents_earned": earned.point_cents,
            "bonus_point_cents": earned.bonus_point_cents, "rewards_issued": [r.code for r in issued],
            "rewards_redeemed": answer.rewards_redeemed, "balance_point_cents": member.point_cents})
        for reward in redeemed:
            self._event("reward.redeemed", member.id, when, {
                "code": reward.code, "value_cents": reward.value_cents, "purchase_id": p.purchase_id})
        for reward in issued:
            self._event("reward.issued", member.id, when, {
                "code": reward.code, "value_cents": reward.value_cents, "issued_at": reward.issued_at,
                "expires_at": reward.expires_at, "purchase_id": p.purchase_id})
        self._posted[p.purchase_id] = (command.digest, answer)
        bought = [rules.BoughtLine(x.sku, x.category, x.quantity, x.amount_cents) for x in p.lines]
        self._returnable[p.purchase_id] = _Returnable(
            purchase_id, member.id, when, version.version, bought, [(t.method, t.amount_cents) for t in p.tenders],
            rules.nothing_returned(bought))
        return Outcome(True, answer)

    def _return(self, command: PostReturn) -> Outcome:
        ret = command.ret
        replay = self._return_replay(command)
        if replay is not None:
            return replay
        bought = self._returnable.get(command.purchase_id)
        if bought is None:
            raise errors.NotFound(f"purchase {command.purchase_id} does not exist")
        self._check_time(ret.occurred_at, history=command.history)
        if ret.occurred_at < bought.occurred_at:
            raise errors.ValidationFailed("a return cannot occur before its purchase", field="occurred_at")
        for i, line in enumerate(ret.lines):
            if line.quantity == 0 and line.amount_cents == 0:
                raise errors.ValidationFailed("a price adjustment (quantity 0) names the amount it takes off",
                                              field=f"lines[{i}].amount_cents")
        try:
            after = rules.take_back(bought.lines, bought.remaining,
                                    [rules.ReturnedLine(x.sku, x.quantity, x.amount_cents) for x in ret.lines])
        except rules.ReturnRefused as refused:
            raise errors.ReturnExceedsPurchase(str(refused), sku=refused.sku) from None
        version = self.by_version[bought.rules_version]
        taken = rules.point_cents_reversed(version, bought.lines, bought.tenders, bought.remaining, after)
        self._need(returns=1)
        return_id = self._new_id("returns")
        bought.remaining = after
        # the points go back from the member who holds them now: the one a duplicate was merged into
        member = self._holder(bought.member_id)
        when, actor = ret.occurred_at, command.actor
        if taken:
            self.plan.entries.append(self._entry(member.id, "return", -taken, when, actor, purchase_id=bought.id,
                                                 return_id=return_id, rules_version=version.version))
        member.point_cents -= taken
        reinstated = self._reinstate(bought, after, member, when, actor, return_id)
        # a guest does not keep a reward for goods they brought back: open rewards, newest first,
        # give their points back before the balance may go below zero
        voided = []
        for reward in reversed(self._open_rewards(member.id)):
            if member.point_cents >= 0:
                break
            reward.status, reward.voided_at = "voided", when
            member.point_cents += reward.cost_point_cents
            voided.append(reward.code)
            self.plan.entries.append(self._entry(member.id, "reward_voided", reward.cost_point_cents, when, actor,
                                                 purchase_id=bought.id, return_id=return_id, reward_id=reward.id))
        answer = ReturnOut(return_id=ret.return_id, purchase_id=command.purchase_id, point_cents_reversed=taken,
                           balance=brief(member.point_cents), rewards_voided=voided,
                           rewards_reinstated=[r.code for r in reinstated])
        self.plan.returns.append(rows.Return(
            id=return_id, ext_id=ret.return_id, purchase_id=bought.id, member_id=member.id, occurred_at=when,
            fingerprint=rows.bytea(command.digest), body=msgspec.Raw(command.body), point_cents_reversed=taken,
            balance_after=member.point_cents, created_at=self.recorded_at))
        self._event("return.posted", member.id, when, {
            "return_id": ret.return_id, "purchase_id": command.purchase_id, "point_cents_reversed": taken,
            "rewards_voided": voided, "balance_point_cents": member.point_cents})
        for reward in reinstated:
            self._event("reward.reinstated", member.id, when, {
                "code": reward.code, "value_cents": reward.value_cents, "expires_at": reward.expires_at,
                "purchase_id": command.purchase_id, "return_id": ret.return_id})
        for code in voided:
            self._event("reward.voided", member.id, when, {"code": code, "reason": "return",
                                                            "return_id": ret.return_id})
        self._returned[ret.return_id] = (command.digest, answer)
        return Outcome(True, answer)

    def _cancel(self, command: Cancel) -> Outcome:
        member = self._member(command.member_id)
        _refuse_merged(member)
        if member.status == "cancelled":
            before = self._cancellations.get(member.id)
            assert member.cancelled_at is not None
            return Outcome(False, CancelOut(
                member_id=member.id, status="cancelled", cancelled_at=member.cancelled_at,
                point_cents_forfeited=before.forfeited if before else 0, rewards_voided=before.voided if before else []))
        now, actor = self.now, command.actor
        forfeit = max(0, member.point_cents)
        if forfeit:
            self.plan.entries.append(self._entry(member.id, "forfeit", -forfeit, now, actor))
        voided = self._open_rewards(member.id)
        for reward in voided:
            reward.status, reward.voided_at = "voided", now
            self.plan.entries.append(self._entry(member.id, "reward_voided", 0, now, actor, reward_id=reward.id))
        member.point_cents -= forfeit
        member.status, member.cancelled_at = "cancelled", now
        self.plan.consents_withdrawn.append(rows.ConsentWithdrawn(member_id=member.id, withdrawn_at=now))
        # the member's guest tokens and page sessions end with it, at the real time of writing
        self.plan.keys_revoked.append(rows.KeysRevoked(member_id=member.id, revoked_at=self.recorded_at))
        self.plan.sessions_ended.append(rows.SessionsEnded(member_id=member.id, ended_at=self.recorded_at))
        self.plan.member_changes.append(rows.change(member.id, "cancelled", now, actor, self.recorded_at))
        self._cancellations[member.id] = Cancellation(member_id=member.id, forfeited=forfeit,
                                                      voided=[r.code for r in voided])
        self._event("member.cancelled", member.id, now, {
            "point_cents_forfeited": forfeit, "rewards_voided": [r.code for r in voided]})
        for reward in voided:
            self._event("reward.voided", member.id, now, {"code": reward.code, "reason": "cancellation"})
        return Outcome(True, CancelOut(member_id=member.id, status="cancelled", cancelled_at=now,
                                       point_cents_forfeited=forfeit, rewards_voided=[r.code for r in voided]))

    def _adjust(self, command: Adjust) -> Outcome:
        a = command.adjustment

        def answer(prior: Any) -> AdjustmentOut:
            return AdjustmentOut(adjustment_id=prior.ext_id, member_id=prior.member_id, point_cents=prior.point_cents,
                                 rewards_issued=_issued_out(prior.issued),
                                 balance=brief(prior.balance_after))

        replay = _replay("adjustment", a.adjustment_id, command.digest, self._adjusted, self._prior_adjustments,
                         answer)
        if replay is not None:
            return replay
        if a.point_cents == 0:
            raise errors.ValidationFailed("an adjustment adds or takes points: point_cents is not 0",
                                          field="point_cents")
        member = self._member(command.member_id)
        _refuse_merged(member)
        if member.status != "active":
            raise errors.MemberNotActive(f"member {member.id} is {member.status}; points cannot be adjusted")
        now, actor = self.now, command.actor
        version = self.in_force(now)
        self._need(adjustments=1, rewards=rules.rewards_due(member.point_cents + a.point_cents, version))
        adjustment_id = self._new_id("adjustments")
        entries = [self._entry(member.id, "adjustment", a.point_cents, now, actor, adjustment_id=adjustment_id)]
        member.point_cents += a.point_cents
        issued = self._issue_rewards(member, version, now, actor, entries, adjustment_id=adjustment_id)
        self.plan.entries.extend(entries)
        self.plan.adjustments.append(rows.Adjustment(
            id=adjustment_id, ext_id=a.adjustment_id, member_id=member.id, point_cents=a.point_cents, reason=a.reason,
            note=a.note, fingerprint=rows.bytea(command.digest), body=msgspec.Raw(command.body),
            balance_after=member.point_cents, occurred_at=now, created_at=self.recorded_at))
        out = AdjustmentOut(adjustment_id=a.adjustment_id, member_id=member.id, point_cents=a.point_cents,
                            rewards_issued=_issued_out(issued), balance=brief(member.point_cents))
        self._event("points.adjusted", member.id, now, {
            "adjustment_id": a.adjustment_id, "point_cents": a.point_cents, "reason": a.reason,
            "rewards_issued": [r.code for r in issued], "balance_point_cents": member.point_cents})
        for reward in issued:
            self._event("reward.issued", member.id, now, {
                "code": reward.code, "value_cents": reward.value_cents, "issued_at": reward.issued_at,
                "expires_at": reward.expires_at, "adjustment_id": a.adjustment_id})
        self._adjusted[a.adjustment_id] = (command.digest, out)
        return Outcome(True, out)

    def _merge(self, command: Merge) -> Outcome:
        if command.member_id == command.from_member_id:
            raise errors.ValidationFailed("a member cannot be merged into itself", field="from_member_id")
        target = self._member(command.member_id)
        source = self._member(command.from_member_id)
        if source.status == "merged":
            earlier = self._merged.get(source.id) or self._prior_merges.get(source.id)
            if earlier is not None and earlier.member_id == target.id and source.merged_into == target.id:
                return Outcome(False, earlier)
            assert source.merged_into is not None
            raise errors.MemberMerged(f"member {source.id} was merged into member {source.merged_into} already",
                                      merged_into=source.merged_into)
        _refuse_merged(target)
        if target.status != "active":
            raise errors.MemberNotActive(f"member {target.id} is {target.status}; a duplicate is merged into an "
                                         "active member")
        if self._snapshot_members[source.id].erased_at is not None:
            raise errors.MemberNotActive(f"member {source.id}'s personal data was erased; it cannot be merged")
        now, actor = self.now, command.actor
        moved = source.point_cents
        if moved:
            self.plan.entries.append(self._entry(source.id, "merge_out", -moved, now, actor,
                                                 counterpart_member_id=target.id))
            self.plan.entries.append(self._entry(target.id, "merge_in", moved, now, actor,
                                                 counterpart_member_id=source.id))
        source.point_cents, target.point_cents = 0, target.point_cents + moved
        rewards_moved = self._open_rewards(source.id)
        for reward in rewards_moved:
            self._move_reward(reward, source, target, now, actor)
        source.status, source.merged_into, source.cancelled_at = "merged", target.id, now
        # a member merged into the duplicate before now lives in the target: one hop, always
        for earlier_id in sorted({m.id for m in self._snapshot_members.values() if m.merged_into == source.id}):
            self._member(earlier_id).merged_into = target.id
        out = MergeOut(member_id=target.id, from_member_id=source.id, merged_at=now, point_cents_moved=moved,
                       rewards_moved=[r.code for r in rewards_moved], balance=brief(target.point_cents))
        self.plan.member_changes.append(rows.change(source.id, "merged_out", now, actor, self.recorded_at,
                                                    counterpart_member_id=target.id))
        self.plan.member_changes.append(rows.change(target.id, "merged_in", now, actor, self.recorded_at,
                                                    counterpart_member_id=source.id,
                                                    details=msgspec.to_builtins(out)))
        self._event("member.merged", target.id, now, {
            "from_member_id": source.id, "point_cents_moved": moved, "rewards_moved": out.rewards_moved,
            "balance_point_cents": target.point_cents})
        self._merged[source.id] = out
        return Outcome(True, out)

    def _carry_debt(self, command: CarryDebt) -> Outcome:
        """Each cancelled membership's negative balance becomes the new member's: out of the old one
        (to 0), into the new one, each side an entry naming the other."""
        member = self._member(command.member_id)
        now, actor = self.now, command.actor
        carried, sources = 0, []
        for source_id in sorted(set(command.from_member_ids) - {member.id}):
            source = self._member(source_id)
            debt = source.point_cents
            if source.status != "cancelled" or debt >= 0:
                continue
            self.plan.entries.append(self._entry(source.id, "debt_carried_out", -debt, now, actor,
                                                 counterpart_member_id=member.id))
            self.plan.entries.append(self._entry(member.id, "debt_carried_in", debt, now, actor,
                                                 counterpart_member_id=source.id))
            source.point_cents, member.point_cents = 0, member.point_cents + debt
            carried += debt
            sources.append(source.id)
            self._event("points.carried", source.id, now, {"point_cents": -debt, "to_member_id": member.id,
                                                           "balance_point_cents": 0})
            self._event("points.carried", member.id, now, {"point_cents": debt, "from_member_id": source.id,
                                                           "balance_point_cents": member.point_cents})
        if not sources:
            return Outcome(False, None)
        return Outcome(True, CarriedOver(point_cents=carried, from_member_ids=sources))
    def _expire(self, command: ExpireRewards) -> Outcome:
        member = self._member(command.member_id)
        expired, noticed = [], []
        for reward in self._issued_rewards(member.id):
            if reward.expires_at <= self.now:
                # on the record as of the moment it expired; its points went when it was issued
                reward.status = "expired"
                self.plan.entries.append(self._entry(member.id, "reward_expired", 0, reward.expires_at, command.actor,
                                                     reward_id=reward.id))
                self._event("reward.expired", member.id, reward.expires_at, {
                    "code": reward.code, "value_cents": reward.value_cents, "issued_at": reward.issued_at,
                    "expires_at": reward.expires_at})
                expired.append(reward.code)
            elif (member.status == "active" and reward.expiry_notice_at is None
                  and reward.expires_at - command.notice <= self.now):
                reward.expiry_notice_at = self.now
                self._event("reward.expiring", member.id, self.now, {
                    "code": reward.code, "value_cents": reward.value_cents, "issued_at": reward.issued_at,
                    "expires_at": reward.expires_at})
                noticed.append(reward.code)
        return Outcome(bool(expired or noticed), RewardsExpired(member.id, expired, noticed))

    # --- the checks -------------------------------------------------------------------------

    def _purchase_replay(self, command: PostPurchase) -> Outcome | None:
        def answer(prior: Any) -> PurchaseOut:
            return PurchaseOut(
                purchase_id=prior.ext_id, member_id=prior.member_id, qualifying_cents=prior.qualifying_cents,
                point_cents_earned=prior.point_cents, bonus_point_cents=prior.bonus_point_cents,
                rewards_issued=_issued_out(prior.issued),
                rewards_redeemed=prior.rewards_redeemed, balance=brief(prior.balance_after))

        return _replay("purchase", command.purchase.purchase_id, command.digest, self._posted,
                       self._prior_purchases, answer)

    def _return_replay(self, command: PostReturn) -> Outcome | None:
        def answer(prior: Any) -> ReturnOut:
            return ReturnOut(return_id=prior.ext_id, purchase_id=prior.purchase_ext_id,
                             point_cents_reversed=prior.point_cents_reversed, balance=brief(prior.balance_after),
                             rewards_voided=prior.voided, rewards_reinstated=prior.reinstated)

        return _replay("return", command.ret.return_id, command.digest, self._returned, self._prior_returns, answer)

    def _admit_purchase(self, command: PostPurchase) -> tuple[rules.Rules, list[rows.Reward]]:
        """Every check a new purchase passes, in order; its rules version and the rewards it redeems."""
        p = command.purchase
        _check_purchase(p, self.limits)
        self._check_time(p.occurred_at, history=command.history)
        version = self._rules_at(p)
        member = self._member(p.member_id)
        _refuse_merged(member)
        if member.status != "active":
            raise errors.MemberNotActive(f"member {member.id} is {member.status}; purchases are refused")
        for i, offer in enumerate(p.offers):
            value = self._offers.get(offer.code)
            if value is None:
                raise errors.UnknownOffer(f"offer {offer.code} does not exist", field=f"offers[{i}].code")
            if offer.discount_cents > value:
                raise errors.ValidationFailed(f"the discount exceeds offer {offer.code}'s value",
                                              field=f"offers[{i}].discount_cents")
        redeemed = []
        for tender in p.tenders:
            if tender.reward_code is None:
                continue
            reward_id = self._codes.get(tender.reward_code)
            reward = self._reward(reward_id) if reward_id is not None else None
            if (reward is None or reward.member_id != p.member_id or reward.status != "issued"
                    or not reward.issued_at <= p.occurred_at < reward.expires_at or self.now >= reward.expires_at
                    or tender.amount_cents > reward.value_cents):
                raise errors.RewardNotRedeemable(
                    f"reward {tender.reward_code} is not this member's, not issued, expired, or worth less than "
                    f"tendered", reward_code=tender.reward_code)
            redeemed.append(reward)
        return version, redeemed

    def _check_time(self, when: Any, *, history: bool) -> None:
        if when > self.now + self.limits.clock_skew:
            raise errors.ValidationFailed("occurred_at is in the future", field="occurred_at")
        if not history and when < self.now - self.limits.max_backdate:
            raise errors.ValidationFailed(
                f"occurred_at is more than {_days(self.limits.max_backdate)} ago; older history is imported with "
                f"`rewards import purchases --history`", field="occurred_at")

    def _rules_at(self, p: PurchaseIn) -> rules.Rules:
        try:
            return self.in_force(p.occurred_at)
        except LookupError as exc:
            raise errors.ValidationFailed(str(exc), field="occurred_at") from None

    # --- state ------------------------------------------------------------------------------

    def _member(self, member_id: int) -> rows.Member:
        member = self._members.get(member_id)
        if member is None:
            found = self._snapshot_members.get(member_id)
            if found is None:
                raise errors.NotFound(f"member {member_id} does not exist")
            member = self._members[member_id] = rows.Member(
                id=found.id, status=found.status, point_cents=found.point_cents, rewards_issued=found.rewards_issued,
                cancelled_at=found.cancelled_at, merged_into=found.merged_into)
            self.plan.members[member_id] = member
        return member

    def _reward(self, reward_id: int) -> rows.Reward:
        """The reward as this batch leaves it (a reward read is copied into the plan when first asked for)."""
        reward = self._rewards.get(reward_id)
        if reward is None:
            r = self._snapshot_rewards[reward_id]
            reward = self._rewards[reward_id] = self.plan.changed_rewards[reward_id] = rows.Reward(
                id=r.id, code=r.code, member_id=r.member_id, ordinal=r.ordinal, value_cents=r.value_cents,
                cost_point_cents=r.cost_point_cents, issued_at=r.issued_at, expires_at=r.expires_at,
                purchase_id=r.purchase_id, adjustment_id=r.adjustment_id, status=r.status, redeemed_at=r.redeemed_at,
                redeemed_purchase_id=r.redeemed_purchase_id, voided_at=r.voided_at, expiry_notice_at=r.expiry_notice_at)
        return reward

    def _issued_rewards(self, member_id: int) -> list[rows.Reward]:
        """The member's issued rewards, in the order issued, those past their expiry included (read
        for the members of ExpireRewards commands)."""
        ids = {r.id for r in self._snapshot_rewards.values() if r.member_id == member_id}
        found = [self._reward(i) for i in ids] + [r for r in self.plan.new_rewards.values() if r.member_id == member_id]
        return sorted((r for r in found if r.status == "issued"), key=lambda r: r.ordinal)

    def _open_rewards(self, member_id: int) -> list[rows.Reward]:
        """The member's issued, unexpired rewards, in the order issued (the snapshot holds every open
        reward of the members of returns, cancellations and merges, and the planner those issued in
        the batch)."""
        return [r for r in self._issued_rewards(member_id) if r.expires_at > self.now]

    def _holder(self, member_id: int) -> rows.Member:
        """The member whose points and rewards these are now: itself, or the one it was merged into."""
        member = self._member(member_id)
        return self._member(member.merged_into) if member.merged_into is not None else member

    def _move_reward(self, reward: rows.Reward, source: rows.Member, target: rows.Member, when: Any,
                     actor: Actor) -> None:
        """The reward becomes the target's, its code and expiry kept, under the target's next ordinal."""
        self.plan.entries.append(self._entry(source.id, "reward_moved_out", 0, when, actor, reward_id=reward.id,
                                             counterpart_member_id=target.id))
        target.rewards_issued += 1
        reward.member_id, reward.ordinal = target.id, target.rewards_issued
        self.plan.entries.append(self._entry(target.id, "reward_moved_in", 0, when, actor, reward_id=reward.id,
                                             counterpart_member_id=source.id))

    def _reinstate(self, bought: _Returnable, after: rules.Remaining, member: rows.Member, when: Any, actor: Actor,
                   return_id: int) -> list[rows.Reward]:
        """With `reinstate_rewards_on_return` in force at the return, a return that brings back the
        whole purchase makes each reward it redeemed `issued` again, with its original expiry (to an
        active member: a cancelled one cannot use it)."""
        if any(line.units for line in after.lines) or member.status != "active":
            return []
        try:
            if not self.in_force(when).reinstate_rewards_on_return:
                return []
        except LookupError:
            return []
        ids = {i for i, r in self._snapshot_rewards.items() if r.redeemed_purchase_id == bought.id}
        ids |= {i for i, r in self._rewards.items() if r.redeemed_purchase_id == bought.id}
        found = (self._reward(i) if i in self._snapshot_rewards else self._rewards[i] for i in sorted(ids))
        redeemed = [r for r in found if r.status == "redeemed" and r.redeemed_purchase_id == bought.id]
        for reward in redeemed:
            reward.status, reward.redeemed_at, reward.redeemed_purchase_id = "issued", None, None
            owner = self._member(reward.member_id)
            self.plan.entries.append(self._entry(owner.id, "reward_reinstated", 0, when, actor, purchase_id=bought.id,
                                                 return_id=return_id, reward_id=reward.id))
            if owner.id != member.id:  # redeemed by a duplicate since merged: it goes where its points went
                self._move_reward(reward, owner, member, when, actor)
        return redeemed

    def _issue_rewards(self, member: rows.Member, version: rules.Rules, when: Any, actor: Actor,
                       entries: list[rows.Entry], *, purchase_id: int | None = None,
                       adjustment_id: int | None = None) -> list[rows.Reward]:
        """As many rewards as the balance allows, none while it is below the threshold."""
        issued = []
        threshold = version.reward_threshold_point_cents
        for _ in range(rules.rewards_due(member.point_cents, version)):
            member.rewards_issued += 1
            member.point_cents -= threshold
            reward = rows.Reward(
                id=self._new_id("rewards"), code=self.new_code(), member_id=member.id, ordinal=member.rewards_issued,
                value_cents=version.reward_value_cents, cost_point_cents=threshold, issued_at=when,
                expires_at=rules.reward_expires_at(when, version), purchase_id=purchase_id,
                adjustment_id=adjustment_id)
            self.plan.new_rewards[reward.id] = self._rewards[reward.id] = reward
            self._codes[reward.code] = reward.id
            entries.append(self._entry(member.id, "reward_issued", -threshold, when, actor, purchase_id=purchase_id,
                                       adjustment_id=adjustment_id, reward_id=reward.id,
                                       rules_version=version.version))
            issued.append(reward)
        return issued

    def add_ids(self, table: str, ids: Sequence[int]) -> None:
        """More ids for a table's new rows (after OutOfIds: the command can then be decided again)."""
        self._ids[table][:0] = reversed(ids)

    def _need(self, **counts: int) -> None:
        """Raise OutOfIds before a command changes anything, so it can be decided again."""
        for table, n in counts.items():
            if len(self._ids[table]) < n:
                raise OutOfIds(table, n - len(self._ids[table]))

    def _new_id(self, table: str) -> int:
        return self._ids[table].pop()

    def _event(self, type: str, member_id: int, when: Any, data: dict[str, Any]) -> None:
        self.plan.events.append(rows.Event(type=type, member_id=member_id, occurred_at=when, data=data,
                                           created_at=self.recorded_at))

    def _entry(self, member_id: int, kind: str, point_cents: int, when: Any, actor: Actor, **refs: Any) -> rows.Entry:
        return rows.entry(member_id, kind, point_cents, when, actor, self.recorded_at, **refs)


def _replay(kind: str, key: str, digest: bytes, earlier: dict[str, tuple[bytes, Any]], priors: dict[str, Any],
            answer: Callable[[Any], Any]) -> Outcome | None:
    """The first answer when `key` was posted before (earlier in the batch, or stored) with this very
    body; a conflict with another body; None for a new key."""
    if key in earlier:
        first_digest, first = earlier[key]
        if first_digest != digest:
            raise errors.IdempotencyConflict(f"{kind} {key} was posted with a different body")
        return Outcome(False, first)
    prior = priors.get(key)
    if prior is None:
        return None
    if prior.fingerprint != rows.bytea(digest):
        raise errors.IdempotencyConflict(f"{kind} {key} was posted with a different body")
    return Outcome(False, answer(prior))


def _refuse_merged(member: rows.Member) -> None:
    if member.status == "merged":
        assert member.merged_into is not None
        raise errors.MemberMerged(f"member {member.id} was merged into member {member.merged_into}; use that member",
                                  merged_into=member.merged_into)


def _member_state(m: Any) -> tuple[Any, ...]:
    return m.status, m.point_cents, m.rewards_issued, m.cancelled_at, m.merged_into


def _reward_state(r: Any) -> tuple[Any, ...]:
    return tuple(getattr(r, name) for name in rows.REWARD_STATE)


def _days(span: Any) -> str:
    days = span.total_seconds() / 86400
    return f"{days:g} days" if days != 1 else "1 day"


def _earning(p: PurchaseIn, version: rules.Rules) -> rules.Earning:
    return rules.earning(version, [(x.category, x.amount_cents) for x in p.lines],
                         [(t.method, t.amount_cents) for t in p.tenders])


def _check_purchase(p: PurchaseIn, limits: Limits) -> None:
    """What a purchase must be, whatever the state: USD, within the limit, balanced, each reward
    and offer named once, the offers' discounts within the lines."""
    if p.currency != "USD":
        raise errors.UnsupportedCurrency(f"currency {p.currency!r} is not supported; use USD")
    lines = sum(line.amount_cents for line in p.lines)
    if lines > limits.max_purchase_cents:
        raise errors.ValidationFailed(f"a purchase is at most {limits.max_purchase_cents} cents in all", field="lines")
    tenders = sum(t.amount_cents for t in p.tenders)
    if lines != tenders:
        raise errors.TendersDoNotBalance(f"tenders add up to {tenders} cents but the lines to {lines} cents")
    codes = []
    for i, tender in enumerate(p.tenders):
        is_reward = tender.method == rules.REWARD_TENDER
        if is_reward != (tender.reward_code is not None):
            raise errors.ValidationFailed("a reward tender needs its reward_code, and only a reward tender has one",
                                          field=f"tenders[{i}].reward_code")
        if is_reward:
            if tender.amount_cents == 0:
                raise errors.ValidationFailed("a reward tender pays at least 1 cent", field=f"tenders[{i}].amount_cents")
            codes.append(tender.reward_code)
    if len(set(codes)) != len(codes):
        raise errors.ValidationFailed("a reward can be tendered once", field="tenders")
    seen: set[str] = set()
    for i, offer in enumerate(p.offers):
        if offer.code in seen:
            raise errors.ValidationFailed(f"offer {offer.code} is named twice; an offer counts once a purchase",
                                          field=f"offers[{i}].code")
        seen.add(offer.code)
    if sum(offer.discount_cents for offer in p.offers) > lines:
        raise errors.ValidationFailed("the offers' discounts exceed the purchase's lines", field="offers")


def _after_returns(lines: list[dict[str, Any]], returns: list[list[dict[str, Any]]]) -> rules.Remaining:
    bought = [rules.BoughtLine(x["sku"], x["category"], x["quantity"], x["amount_cents"]) for x in lines]
    remaining = rules.nothing_returned(bought)
    for asked in returns:
        remaining = rules.take_back(bought, remaining,
                                    [rules.ReturnedLine(x["sku"], x["quantity"], x["amount_cents"]) for x in asked])
    return remaining
