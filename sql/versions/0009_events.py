"""The events feed, webhooks and reward expiry: the passes that put events in commit order, the
webhooks (each with its position in the feed) and the deliveries that needed a retry, the
`integrations` scope, and expiry on the record (a
`reward_expired` ledger entry, a reward status `expired`, and when the `reward.expiring`
notice was written).

Locks: the CHECKs replaced on `ledger`, `rewards` and `api_keys` are added NOT VALID and then
validated, so those tables are locked against writes only for the catalog change, never for a
scan; the new index on `rewards` (open rewards by expiry) is built under a SHARE lock: reads go
on, postings wait while it builds (seconds for millions of rewards). Every other step makes a
new table or a nullable column without a default (a catalog change).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None

KINDS_BEFORE = ("'earn', 'card_bonus', 'reward_issued', 'reward_redeemed', 'reward_voided', 'return', 'forfeit', "
                "'adjustment', 'merge_out', 'merge_in', 'reward_moved_out', 'reward_moved_in', 'reward_reinstated', "
                "'debt_carried_out', 'debt_carried_in'")
SCOPES_BEFORE = "'checkout', 'guest_services', 'compliance', 'admin', 'web_shop', 'guest'"
STATUSES_BEFORE = "'issued', 'redeemed', 'voided'"


def _replace_check(table: str, name: str, condition: str) -> None:
    """Drop the CHECK `name` and add it again as `condition`, validated without blocking writes."""
    op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
    op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} CHECK ({condition}) NOT VALID")
    op.execute(f"ALTER TABLE {table} VALIDATE CONSTRAINT {name}")


def _add_check(table: str, name: str, condition: str) -> None:
    op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} CHECK ({condition}) NOT VALID")
    op.execute(f"ALTER TABLE {table} VALIDATE CONSTRAINT {name}")


def upgrade() -> None:
    # the event feed's integrators get keys of their own
    _replace_check("api_keys", "api_keys_scopes_check",
                   f"cardinality(scopes) > 0 AND scopes <@ ARRAY[{SCOPES_BEFORE}, 'integrations']")

    # expiry on the record: an entry that moves no points, and the reward's status
    _replace_check("ledger", "ledger_kind_check", f"kind IN ({KINDS_BEFORE}, 'reward_expired')")
    _add_check("ledger", "ledger_expired_moves_no_points",
               "kind <> 'reward_expired' OR (point_cents = 0 AND reward_id IS NOT NULL)")
    _replace_check("rewards", "rewards_status_check", f"status IN ({STATUSES_BEFORE}, 'expired')")
    op.add_column("rewards", sa.Column("expiry_notice_at", sa.DateTime(timezone=True)))
    op.create_index("rewards_open_by_expiry", "rewards", ["expires_at"],
                    postgresql_where=sa.text("status = 'issued'"))

    # the feed's passes: each one the events that became visible between two snapshots
    op.create_table(
        "event_passes",
        sa.Column("pass", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("snapshot_xmax", sa.BigInteger(), nullable=False),
        sa.Column("snapshot_xip", postgresql.ARRAY(sa.BigInteger()), nullable=False),
        sa.Column("after_xmax", sa.BigInteger(), nullable=False),
        sa.Column("after_xip", postgresql.ARRAY(sa.BigInteger()), nullable=False),
        sa.Column("sealed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.CheckConstraint("pass > 0", name="event_passes_pass_check"),
    )
    # erasure finds the messages sent to a subscription's address
    op.create_index("events_message_subscription", "events", [sa.text("((data ->> 'subscription_id'))")],
                    postgresql_where=sa.text("type = 'offer.delivery'"))

    op.create_table(
        "webhooks",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), primary_key=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("types", postgresql.ARRAY(sa.Text()), nullable=False, server_default=sa.text("'{}'")),
        sa.Column("description", sa.Text(), nullable=False, server_default=sa.text("''")),
        sa.Column("secret_sealed", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.Column("created_by_key_id", sa.BigInteger(),
                  sa.ForeignKey("api_keys.id", name="webhooks_created_by_key_id_fkey")),
        sa.Column("position_pass", sa.BigInteger(), nullable=False),
        sa.Column("position_tx", sa.BigInteger(), nullable=False),
        sa.Column("position_id", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("url ~ '^https?://'", name="webhooks_url_check"),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), primary_key=True),
        sa.Column("webhook_id", sa.BigInteger(),
                  sa.ForeignKey("webhooks.id", name="webhook_deliveries_webhook_id_fkey", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("event_id", sa.BigInteger(), sa.ForeignKey("events.id", name="webhook_deliveries_event_id_fkey"),
                  nullable=False),
        sa.Column("status", sa.Text(), nullable=False, server_default=sa.text("'pending'")),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True)),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True)),
        sa.Column("last_response_status", sa.Integer()),
        sa.Column("last_error", sa.Text()),
        sa.Column("delivered_at", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.UniqueConstraint("webhook_id", "event_id", name="webhook_deliveries_webhook_id_event_id_key"),
        sa.CheckConstraint("status IN ('pending', 'delivered', 'failed')", name="webhook_deliveries_status_check"),
        sa.CheckConstraint("attempts >= 0", name="webhook_deliveries_attempts_check"),
        sa.CheckConstraint("(status = 'pending') = (next_attempt_at IS NOT NULL)", name="webhook_deliveries_check"),
        sa.CheckConstraint("(status = 'delivered') = (delivered_at IS NOT NULL)", name="webhook_deliveries_check1"),
    )
    op.create_index("webhook_deliveries_due", "webhook_deliveries", ["next_attempt_at"],
                    postgresql_where=sa.text("status = 'pending'"))
    op.create_index("webhook_deliveries_listed", "webhook_deliveries", ["webhook_id", "status", "id"])


def downgrade() -> None:
    """Back to 0008. Refused (by the CHECKs put back) while an expired reward or an `integrations`
    key exists: their records would lose their meaning."""
    op.drop_table("webhook_deliveries")
    op.drop_table("webhooks")
    op.drop_index("events_message_subscription", table_name="events")
    op.drop_table("event_passes")
    op.drop_index("rewards_open_by_expiry", table_name="rewards")
    op.drop_column("rewards", "expiry_notice_at")
    _replace_check("rewards", "rewards_status_check", f"status IN ({STATUSES_BEFORE})")
    op.execute("ALTER TABLE ledger DROP CONSTRAINT ledger_expired_moves_no_points")
    _replace_check("ledger", "ledger_kind_check", f"kind IN ({KINDS_BEFORE})")
    _replace_check("api_keys", "api_keys_scopes_check", f"cardinality(scopes) > 0 AND scopes <@ ARRAY[{SCOPES_BEFORE}]")
