"""Reward expiry, a job: put every reward that reached its expiry on the record, and tell members
ahead of time.

The job finds the members with something due and posts an `ExpireRewards` command for each
through the engine, which decides (`rewards.engine.planner`): a reward past its expiry gets its
`reward_expired` ledger entry (no points: they were taken when it was issued), the status
`expired` and a `reward.expired` event; an active member's reward that expires within
REWARDS_EXPIRY_NOTICE (7 days by default) gets its `reward.expiring` event, once. The job runs
every quarter of REWARDS_EXPIRY_INTERVAL (1 hour by default), and `rewards verify` reports any
reward left past its expiry without its entry for longer than that interval.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from rewards.engine import Engine, ExpireRewards, RewardsExpired, system

EXPIRY = system("reward_expiry")
MEMBERS_PER_TRANSACTION = 200

# Members with a reward past its expiry, or (no notice yet) within the notice of it, after $2.
DUE = """
SELECT DISTINCT member_id FROM rewards
WHERE status = 'issued' AND expires_at <= now() + $1::interval AND (expires_at <= now() OR expiry_notice_at IS NULL)
  AND member_id > $2
ORDER BY member_id LIMIT $3"""


@dataclass
class ExpiryRun:
    members: int = 0
    expired: list[str] = field(default_factory=list)
    noticed: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{len(self.expired)} rewards expired, {len(self.noticed)} expiring notices, {self.members} members"


async def expire_due(engine: Engine, notice: timedelta, *, batch: int = MEMBERS_PER_TRANSACTION) -> ExpiryRun:
    """One run of the job: every member with something due, `batch` members a transaction, each
    member once (a refused command is not asked again until the next run)."""
    run = ExpiryRun()
    after = 0
    while True:
        due = [r["member_id"] for r in await engine.db.run(DUE, notice, after, batch)]
        if not due:
            return run
        outcomes = await engine.run([ExpireRewards(member_id, notice, EXPIRY) for member_id in due])
        for outcome in outcomes:
            if isinstance(outcome.answer, RewardsExpired):
                run.expired += outcome.answer.expired
                run.noticed += outcome.answer.noticed
        run.members += len(due)
        after = due[-1]
