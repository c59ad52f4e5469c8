"""The consumer's requests and erasure with notice: privacy requests with their clocks (kept 24
months, 11 CCR §7101, Colorado Rule 6.11), the record of each member's erasure (scheduled with
notice, Colorado Rule 6.05(E), or done at once), and the opt-outs of erased addresses kept as
keyed hashes, with the key they are made with.

`privacy_hash(address)` is HMAC-SHA256 of the address in lower case, keyed with 32 random bytes
drawn here (from two random UUIDs: `gen_random_uuid()` is in core PostgreSQL and reads the
server's strong random source, so the revision also writes out with --sql). The key is stored
as HMAC's two pads, so the function is plain SQL on the core `sha256()`: no extension needed.
The key never changes (triggers refuse an UPDATE, a DELETE or a TRUNCATE): a hash made today
must match the same address in ten years.

`subscriptions_opt_outs_hold`: a subscription of an erased address cannot become active again
unless the opt-out is lifted in the same transaction, which only a new opt-in does
(`rewards.mailing.subscribe`). Any other way in (an import, a restart) is refused by the database.

New tables only, and a trigger on `subscriptions` (a brief lock to create it): nothing is rewritten.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None

# 32 random bytes, zero-padded to SHA-256's 64-byte block, XORed with HMAC's ipad (0x36) and
# opad (0x5c): H(opad_key || H(ipad_key || message)) is then exactly HMAC-SHA256(key, message)
DRAW_KEY = """
WITH drawn AS (
    SELECT decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex')
           || decode(repeat('00', 32), 'hex') AS k
)
INSERT INTO privacy_hash_key (inner_pad, outer_pad)
SELECT (SELECT decode(string_agg(lpad(to_hex(get_byte(k, i) # 54), 2, '0'), '' ORDER BY i), 'hex')
        FROM generate_series(0, 63) AS i),
       (SELECT decode(string_agg(lpad(to_hex(get_byte(k, i) # 92), 2, '0'), '' ORDER BY i), 'hex')
        FROM generate_series(0, 63) AS i)
FROM drawn
"""

PRIVACY_HASH = """
CREATE FUNCTION privacy_hash(address text) RETURNS bytea LANGUAGE sql STABLE STRICT PARALLEL SAFE AS $$
    SELECT sha256(k.outer_pad || sha256(k.inner_pad || convert_to(lower(address), 'UTF8')))
    FROM privacy_hash_key k
$$
"""

OPT_OUTS_HOLD = """
CREATE FUNCTION subscription_opt_out_holds() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'active' AND NEW.address IS NOT NULL AND EXISTS (
        SELECT 1 FROM opt_out_hashes o
        WHERE o.channel = NEW.channel AND o.address_hash = privacy_hash(NEW.address)) THEN
        RAISE EXCEPTION 'this % address was erased and stays opted out: only a new opt-in lifts it', NEW.channel
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$
"""


def _actor(prefix: str, table: str) -> list[sa.Column]:
    return [
        sa.Column(f"{prefix}_key_id", sa.BigInteger(),
                  sa.ForeignKey("api_keys.id", name=f"{table}_{prefix}_key_id_fkey")),
        sa.Column(f"{prefix}_session_id", sa.BigInteger()),
        sa.Column(f"{prefix}_system", sa.Text()),
    ]


def upgrade() -> None:
    op.create_table(
        "privacy_hash_key",
        sa.Column("id", sa.Boolean(), primary_key=True, server_default=sa.text("true")),
        sa.Column("inner_pad", postgresql.BYTEA(), nullable=False),
        sa.Column("outer_pad", postgresql.BYTEA(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.CheckConstraint("id", name="privacy_hash_key_id_check"),
        sa.CheckConstraint("length(inner_pad) = 64 AND length(outer_pad) = 64", name="privacy_hash_key_check"),
    )
    op.execute("CREATE TRIGGER privacy_hash_key_unchanging BEFORE UPDATE OR DELETE ON privacy_hash_key"
               " FOR EACH ROW EXECUTE FUNCTION ledger_is_append_only()")
    op.execute("CREATE TRIGGER privacy_hash_key_kept BEFORE TRUNCATE ON privacy_hash_key"
               " FOR EACH STATEMENT EXECUTE FUNCTION ledger_is_append_only()")
    op.execute(DRAW_KEY)
    op.execute(PRIVACY_HASH)

    op.create_table(
        "opt_out_hashes",
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("address_hash", postgresql.BYTEA(), nullable=False),
        sa.Column("opted_out_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.PrimaryKeyConstraint("channel", "address_hash", name="opt_out_hashes_pkey"),
        sa.CheckConstraint("channel IN ('email', 'sms')", name="opt_out_hashes_channel_check"),
        sa.CheckConstraint("length(address_hash) = 32", name="opt_out_hashes_address_hash_check"),
    )
    op.execute(OPT_OUTS_HOLD)
    op.execute("CREATE TRIGGER subscriptions_opt_outs_hold BEFORE INSERT OR UPDATE OF status, address"
               " ON subscriptions FOR EACH ROW EXECUTE FUNCTION subscription_opt_out_holds()")

    op.create_table(
        "member_erasures",
        sa.Column("member_id", sa.BigInteger(), sa.ForeignKey("members.id", name="member_erasures_member_id_fkey"),
                  primary_key=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("scheduled_for", sa.DateTime(timezone=True), nullable=False),
        sa.Column("point_cents_to_forfeit", sa.BigInteger(), nullable=False),
        sa.Column("rewards_to_void", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True)),
        *_actor("actor", "member_erasures"),
        sa.CheckConstraint("reason IN ('notice_given', 'minor', 'consumer_confirmed', 'no_notice_period', "
                           "'already_cancelled')", name="member_erasures_reason_check"),
        sa.CheckConstraint("scheduled_for >= requested_at", name="member_erasures_check"),
        sa.CheckConstraint("point_cents_to_forfeit >= 0", name="member_erasures_point_cents_to_forfeit_check"),
        sa.CheckConstraint("num_nonnulls(actor_key_id, actor_session_id, actor_system) = 1",
                           name="member_erasures_one_actor"),
    )
    op.create_index("member_erasures_due", "member_erasures", ["scheduled_for"],
                    postgresql_where=sa.text("erased_at IS NULL"))

    op.create_table(
        "privacy_requests",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), primary_key=True),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False, server_default=sa.text("'open'")),
        sa.Column("member_id", sa.BigInteger(),
                  sa.ForeignKey("members.id", name="privacy_requests_member_id_fkey")),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("subject_hash", postgresql.BYTEA()),
        sa.Column("address", sa.Text()),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("verification_method", sa.Text(), nullable=False),
        sa.Column("verified_at", sa.DateTime(timezone=True)),
        sa.Column("details", sa.Text()),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirm_by", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True)),
        sa.Column("closed_at", sa.DateTime(timezone=True)),
        sa.Column("outcome", sa.Text()),
        sa.Column("reason", sa.Text()),
        *_actor("filed_by", "privacy_requests"),
        *_actor("closed_by", "privacy_requests"),
        sa.CheckConstraint("type IN ('access', 'delete', 'correct')", name="privacy_requests_type_check"),
        sa.CheckConstraint("status IN ('open', 'completed', 'denied')", name="privacy_requests_status_check"),
        sa.CheckConstraint("subject IN ('member', 'email', 'phone')", name="privacy_requests_subject_check"),
        sa.CheckConstraint("channel IN ('online', 'phone', 'email', 'mail', 'store', 'agent')",
                           name="privacy_requests_channel_check"),
        sa.CheckConstraint("verification_method IN ('signed_in', 'email_code', 'sms_code', 'in_person_id', "
                           "'matched_data_points', 'authorized_agent', 'not_verified')",
                           name="privacy_requests_verification_method_check"),
        sa.CheckConstraint("(verification_method = 'not_verified') = (verified_at IS NULL)",
                           name="privacy_requests_verified"),
        sa.CheckConstraint("member_id IS NOT NULL OR subject_hash IS NOT NULL", name="privacy_requests_names_someone"),
        sa.CheckConstraint("address IS NULL OR (status = 'open' AND subject_hash IS NOT NULL)",
                           name="privacy_requests_address_while_open"),
        sa.CheckConstraint("confirm_by > received_at AND due_at > received_at", name="privacy_requests_clocks"),
        sa.CheckConstraint("(status = 'open') = (closed_at IS NULL)", name="privacy_requests_closed"),
        sa.CheckConstraint("(status = 'completed') = (outcome IS NOT NULL)"
                           " AND (outcome IS NULL OR outcome IN ('in_whole', 'in_part'))",
                           name="privacy_requests_outcome"),
        sa.CheckConstraint("status <> 'denied' AND outcome IS DISTINCT FROM 'in_part' OR reason IS NOT NULL",
                           name="privacy_requests_reason"),
        sa.CheckConstraint("num_nonnulls(filed_by_key_id, filed_by_session_id, filed_by_system) = 1",
                           name="privacy_requests_filed_by"),
        sa.CheckConstraint("num_nonnulls(closed_by_key_id, closed_by_session_id, closed_by_system)"
                           " = CASE WHEN status = 'open' THEN 0 ELSE 1 END", name="privacy_requests_closed_by"),
    )
    op.create_index("privacy_requests_open", "privacy_requests", ["due_at"],
                    postgresql_where=sa.text("status = 'open'"))
    op.create_index("privacy_requests_received", "privacy_requests", ["received_at"])
    op.create_index("privacy_requests_member", "privacy_requests", ["member_id"],
                    postgresql_where=sa.text("member_id IS NOT NULL"))
    op.create_index("privacy_requests_subject_hash", "privacy_requests", ["subject_hash"],
                    postgresql_where=sa.text("subject_hash IS NOT NULL"))


def downgrade() -> None:
    op.drop_table("privacy_requests")
    op.drop_table("member_erasures")
    op.execute("DROP TRIGGER subscriptions_opt_outs_hold ON subscriptions")
    op.execute("DROP FUNCTION subscription_opt_out_holds()")
    op.drop_table("opt_out_hashes")
    op.execute("DROP FUNCTION privacy_hash(text)")
    op.drop_table("privacy_hash_key")
