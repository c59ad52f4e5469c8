"""One posting engine: decisions in Python, the plpgsql post_purchases dropped; returns by units;
a reward's cost; who made each ledger entry.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # every decision about a posting is made by rewards/engine; the database only stores its plan
    op.execute("DROP FUNCTION post_purchases")

    # what a reward cost in point-cents: what a return that voids it gives back
    op.add_column("rewards", sa.Column("cost_point_cents", sa.BigInteger()))
    op.execute("""UPDATE rewards w SET cost_point_cents = -l.point_cents FROM ledger l
                  WHERE l.reward_id = w.id AND l.kind = 'reward_issued'""")
    op.alter_column("rewards", "cost_point_cents", nullable=False)
    op.create_check_constraint("rewards_cost_point_cents_check", "rewards", "cost_point_cents > 0")

    # returns posted before the points followed the units were computed by amount: verify cannot
    # recompute them (existing rows get false through the column's default, new rows true)
    op.add_column("purchase_returns", sa.Column("by_units", sa.Boolean(), nullable=False,
                                                server_default=sa.text("false")))
    op.alter_column("purchase_returns", "by_units", server_default=sa.text("true"))

    # who made each entry: exactly one of an API key, a guest session, the service itself. Entries
    # written before get `migrated` through the column's default, so the append-only ledger is
    # never updated
    op.add_column("ledger", sa.Column("actor_key_id", sa.BigInteger(), sa.ForeignKey("api_keys.id",
                                                                                     name="ledger_actor_key_id_fkey")))
    op.add_column("ledger", sa.Column("actor_session_id", sa.BigInteger()))
    op.add_column("ledger", sa.Column("actor_system", sa.Text(), server_default=sa.text("'migrated'")))
    op.alter_column("ledger", "actor_system", server_default=None)
    op.create_check_constraint("ledger_one_actor", "ledger",
                               "num_nonnulls(actor_key_id, actor_session_id, actor_system) = 1")

    # a reward voided by a return gives its points back; voided at cancellation, nothing
    op.drop_constraint("ledger_check5", "ledger", type_="check")
    op.create_check_constraint("ledger_redeemed_moves_no_points", "ledger",
                               "kind <> 'reward_redeemed' OR point_cents = 0")
    op.create_check_constraint("ledger_voided_gives_back", "ledger", "kind <> 'reward_voided' OR point_cents >= 0")


def downgrade() -> None:
    """Back to the baseline's schema. A ledger holding rewards voided by returns (points given back)
    cannot be: the baseline's check refuses them, and the downgrade stops there."""
    op.drop_constraint("ledger_voided_gives_back", "ledger", type_="check")
    op.drop_constraint("ledger_redeemed_moves_no_points", "ledger", type_="check")
    op.create_check_constraint("ledger_check5", "ledger",
                               "kind NOT IN ('reward_redeemed', 'reward_voided') OR point_cents = 0")
    op.drop_constraint("ledger_one_actor", "ledger", type_="check")
    for column in ("actor_system", "actor_session_id", "actor_key_id"):
        op.drop_column("ledger", column)
    op.drop_column("purchase_returns", "by_units")
    op.drop_column("rewards", "cost_point_cents")
    op.execute(_baseline().POST_PURCHASES)


def _baseline() -> ModuleType:
    """The baseline revision's module, for the function it created (revisions are files, not a package)."""
    path = Path(__file__).with_name("0001_baseline.py")
    spec = importlib.util.spec_from_file_location("rewards_revision_0001", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
