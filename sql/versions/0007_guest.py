"""The guest's own page: one-time sign-in links, server-side guest sessions, guest tokens that
expire, the `web_shop` scope; the sessions' actions recorded as their actor.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02

Locks: `api_keys` briefly (a small table). The foreign keys from `ledger` and
`subscription_events` to the new `guest_sessions` are added NOT VALID (a brief lock, no scan)
and validated afterwards under SHARE UPDATE EXCLUSIVE, which lets postings go on.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None

TIMESTAMPTZ = sa.DateTime(timezone=True)
NOW = sa.text("now()")


def upgrade() -> None:
    # guest tokens end: those made before this revision get 30 days from now, and those of members
    # already cancelled (or erased) end now, as a cancellation ends them from here on
    op.add_column("api_keys", sa.Column("expires_at", TIMESTAMPTZ))
    op.execute("UPDATE api_keys SET expires_at = now() + interval '30 days' WHERE member_id IS NOT NULL")
    op.execute("""UPDATE api_keys SET revoked_at = now() WHERE revoked_at IS NULL
                  AND member_id IN (SELECT id FROM members WHERE status = 'cancelled')""")
    op.create_check_constraint("api_keys_guest_expires", "api_keys", "member_id IS NULL OR expires_at IS NOT NULL")
    op.drop_constraint("api_keys_scopes_check", "api_keys", type_="check")
    op.create_check_constraint(
        "api_keys_scopes_check", "api_keys",
        "cardinality(scopes) > 0 AND scopes <@ ARRAY['checkout', 'guest_services', 'compliance', 'admin', "
        "'web_shop', 'guest']",
    )
    op.create_index("api_keys_member", "api_keys", ["member_id"], postgresql_where=sa.text("member_id IS NOT NULL"))

    op.create_table(
        "sign_in_links",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), primary_key=True),
        sa.Column("member_id", sa.BigInteger(), sa.ForeignKey("members.id", name="sign_in_links_member_id_fkey"),
                  nullable=False),
        sa.Column("token_hash", postgresql.BYTEA(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("created_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
        sa.Column("expires_at", TIMESTAMPTZ, nullable=False),
        sa.Column("used_at", TIMESTAMPTZ),
        sa.Column("created_by_key_id", sa.BigInteger(),
                  sa.ForeignKey("api_keys.id", name="sign_in_links_created_by_key_id_fkey"), nullable=False),
        sa.UniqueConstraint("token_hash", name="sign_in_links_token_hash_key"),
        sa.CheckConstraint("channel IN ('email', 'sms')", name="sign_in_links_channel_check"),
        sa.CheckConstraint("expires_at > created_at", name="sign_in_links_check"),
    )
    op.create_index("sign_in_links_member", "sign_in_links", ["member_id", "created_at"])

    op.create_table(
        "guest_sessions",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), primary_key=True),
        sa.Column("member_id", sa.BigInteger(), sa.ForeignKey("members.id", name="guest_sessions_member_id_fkey"),
                  nullable=False),
        sa.Column("token_hash", postgresql.BYTEA(), nullable=False),
        sa.Column("sign_in_link_id", sa.BigInteger(),
                  sa.ForeignKey("sign_in_links.id", name="guest_sessions_sign_in_link_id_fkey"), nullable=False),
        sa.Column("created_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
        sa.Column("last_seen_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
        sa.Column("ended_at", TIMESTAMPTZ),
        sa.UniqueConstraint("token_hash", name="guest_sessions_token_hash_key"),
        sa.UniqueConstraint("sign_in_link_id", name="guest_sessions_sign_in_link_id_key"),
    )
    op.create_index("guest_sessions_member", "guest_sessions", ["member_id"],
                    postgresql_where=sa.text("ended_at IS NULL"))

    # a session that acts (cancels, changes subscriptions) is the actor recorded
    op.execute("ALTER TABLE ledger ADD CONSTRAINT ledger_actor_session_id_fkey FOREIGN KEY (actor_session_id) "
               "REFERENCES guest_sessions (id) NOT VALID")
    op.execute("ALTER TABLE ledger VALIDATE CONSTRAINT ledger_actor_session_id_fkey")
    op.add_column("subscription_events", sa.Column("actor_session_id", sa.BigInteger()))
    op.execute("ALTER TABLE subscription_events ADD CONSTRAINT subscription_events_actor_session_id_fkey "
               "FOREIGN KEY (actor_session_id) REFERENCES guest_sessions (id) NOT VALID")
    op.execute("ALTER TABLE subscription_events VALIDATE CONSTRAINT subscription_events_actor_session_id_fkey")
    # and of the privacy records, whose session columns came before the sessions (small tables)
    for table, column in _PRIVACY_SESSIONS:
        op.create_foreign_key(f"{table}_{column}_fkey", table, "guest_sessions", [column], ["id"])


_PRIVACY_SESSIONS = [("member_erasures", "actor_session_id"), ("privacy_requests", "filed_by_session_id"),
                     ("privacy_requests", "closed_by_session_id")]


def downgrade() -> None:
    for table, column in _PRIVACY_SESSIONS:
        op.drop_constraint(f"{table}_{column}_fkey", table, type_="foreignkey")
    op.drop_constraint("subscription_events_actor_session_id_fkey", "subscription_events", type_="foreignkey")
    op.drop_column("subscription_events", "actor_session_id")
    op.drop_constraint("ledger_actor_session_id_fkey", "ledger", type_="foreignkey")
    op.drop_index("guest_sessions_member", table_name="guest_sessions")
    op.drop_table("guest_sessions")
    op.drop_index("sign_in_links_member", table_name="sign_in_links")
    op.drop_table("sign_in_links")
    op.drop_index("api_keys_member", table_name="api_keys")
    # the old schema has no web_shop scope: keys that held it alone go, the others lose it
    op.drop_constraint("api_keys_scopes_check", "api_keys", type_="check")
    op.execute("DELETE FROM api_keys WHERE scopes = ARRAY['web_shop']")
    op.execute("UPDATE api_keys SET scopes = array_remove(scopes, 'web_shop') WHERE 'web_shop' = ANY (scopes)")
    op.create_check_constraint(
        "api_keys_scopes_check", "api_keys",
        "cardinality(scopes) > 0 AND scopes <@ ARRAY['checkout', 'guest_services', 'compliance', 'admin', 'guest']",
    )
    op.drop_constraint("api_keys_guest_expires", "api_keys", type_="check")
    op.drop_column("api_keys", "expires_at")
