"""The posting engine: every change of points and rewards goes through here.

One shape for every way in (HTTP group commit, `rewards import`, `rewards demo`, the desk's
adjustments and merges, a new enrollment's carried debt, and the jobs' reward expiry):
`posting.apply` locks the members a batch touches and reads
what it needs in two statements, `planner.Planner` decides everything in pure Python
(replays and conflicts, member status, offers, redemptions, the balance walk, the rewards
issued and their expiry, returns by units, reinstated rewards, cancellation, adjustments,
merges), and one set-based statement
writes the planned rows. A new kind of posting is a new command (`commands`), a branch of
the planner, and, if it reads something new, a field of the snapshot (`snapshot`).
"""

from __future__ import annotations

from typing import Any

from rewards.config import Settings
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
    system,
)
from rewards.engine.planner import Outcome, RewardsExpired
from rewards.engine.posting import Engine, apply

__all__ = ["Actor", "Adjust", "Cancel", "CarryDebt", "Command", "Engine", "ExpireRewards", "Limits", "Merge",
           "Outcome", "PostPurchase", "PostReturn", "RewardsExpired", "unwrap", "apply", "limits_of", "system"]


def limits_of(settings: Settings) -> Limits:
    return Limits(max_backdate=settings.max_backdate, max_purchase_cents=settings.max_purchase_cents)


def unwrap(outcome: Outcome) -> tuple[bool, Any]:
    """(created, answer) of a posting, or its refusal raised as the DomainError it is."""
    if outcome.error is not None:
        raise outcome.error
    return outcome.created, outcome.answer
