"""Events written with the changes they report (the outbox the feed and webhooks read), and members'
card numbers (digits with a Luhn check digit, random, unique; existing members get one).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

# a card number: "7", 14 random digits, and the Luhn check digit of those 15 (the same rule as
# rewards.cards, written here in SQL so the revision also writes out with --sql)
LUHN_DIGIT = """
CREATE FUNCTION pg_temp.luhn_digit(body text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT ((10 - sum(CASE WHEN (length(body) - i) % 2 = 0
                           THEN (substr(body, i, 1)::int * 2) / 10 + (substr(body, i, 1)::int * 2) % 10
                           ELSE substr(body, i, 1)::int END) % 10) % 10)::text
    FROM generate_series(1, length(body)) AS i
$$
"""
NUMBER_EXISTING_MEMBERS = """
UPDATE members SET card_number = n.body || pg_temp.luhn_digit(n.body)
FROM (SELECT id, '7' || lpad((floor(random() * 1e14))::bigint::text, 14, '0') AS body FROM members) n
WHERE members.id = n.id
"""


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), primary_key=True),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", postgresql.JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        # the writing transaction: the feed orders and bounds by it (rewards/events)
        sa.Column("tx", sa.BigInteger(), nullable=False,
                  server_default=sa.text("((pg_current_xact_id())::text)::bigint")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.CheckConstraint("type ~ '^[a-z_]+(\\.[a-z_]+)+$'", name="events_type_check"),
    )
    op.create_index("events_feed", "events", ["tx", "id"])
    op.add_column("members", sa.Column("card_number", sa.Text()))
    op.execute(LUHN_DIGIT)
    op.execute(NUMBER_EXISTING_MEMBERS)
    op.create_index("members_card_number", "members", ["card_number"], unique=True,
                    postgresql_where=sa.text("card_number IS NOT NULL"))
    op.create_check_constraint("members_card_number_check", "members", "card_number ~ '^[0-9]{16}$'")


def downgrade() -> None:
    op.drop_constraint("members_card_number_check", "members", type_="check")
    op.drop_index("members_card_number", table_name="members")
    op.drop_column("members", "card_number")
    op.drop_index("events_feed", table_name="events")
    op.drop_table("events")
