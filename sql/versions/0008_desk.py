"""At the register and the desk: members' email and phone as compared (normalized, indexed, unique
among active members), merged members, staff adjustments, rewards moved and reinstated, debts
carried to a new enrollment, who changed a member (member_changes), enrollment's Idempotency-Key,
and each purchase's store_id as a column.

What it locks, on a program of ten million purchases: adding `purchases.store_id` and filling it
from the stored bodies rewrites every purchase's row while the table is locked for this revision's
transaction (about a minute per ten million rows: postings wait meanwhile); the members are read
once and their normalized email and phone written in batches (a few seconds per million members).
Everything else changes the catalog only.

Existing emails and phones are normalized by `rewards.contacts` (the phonenumbers library), in
Python: there is no SQL for libphonenumber. `alembic upgrade --sql` therefore cannot normalize
them; the SQL it writes refuses to run on a database that has members (run `rewards migrate`
there), and runs as written on an empty one. Two active members whose phones (or emails) turn
out to be one keep it on the older member; the newer one is left unfindable by it, and named in
a warning, for guest services to merge (POST /v1/members/{older}/merge).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import json
import logging

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import postgresql

from rewards.contacts import NotAnEmail, normalize_email, phone_or_none

revision = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None

log = logging.getLogger("alembic.runtime.migration")
BATCH = 10_000
LEDGER_KINDS = ("earn", "card_bonus", "reward_issued", "reward_redeemed", "reward_voided", "return", "forfeit",
                "adjustment", "merge_out", "merge_in", "reward_moved_out", "reward_moved_in", "reward_reinstated",
                "debt_carried_out", "debt_carried_in")
OLD_LEDGER_KINDS = LEDGER_KINDS[:7]
OFFLINE_GUARD = """DO $$ BEGIN
    IF EXISTS (SELECT 1 FROM members WHERE email IS NOT NULL OR phone IS NOT NULL) THEN
        RAISE EXCEPTION 'revision 0005 normalizes the members'' email and phone in Python (phonenumbers): '
                        'run rewards migrate on this database, not the SQL of alembic upgrade --sql';
    END IF;
END $$"""


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    _members()
    _purchases()
    _adjustments()
    _rewards()
    _ledger()
    _member_changes()
    _enrollment_keys()


def _members() -> None:
    op.add_column("members", sa.Column("email_normalized", sa.Text()))
    op.add_column("members", sa.Column("phone_normalized", sa.Text()))
    op.add_column("members", sa.Column("merged_into", sa.BigInteger(),
                                       sa.ForeignKey("members.id", name="members_merged_into_fkey")))
    if context.is_offline_mode():
        op.execute(OFFLINE_GUARD)
    else:
        _normalize_contacts(op.get_bind())
    op.drop_index("members_active_email", table_name="members")
    op.drop_index("members_active_phone", table_name="members")
    op.create_index("members_active_email", "members", ["email_normalized"], unique=True,
                    postgresql_where=sa.text("status = 'active'"))
    op.create_index("members_active_phone", "members", ["phone_normalized"], unique=True,
                    postgresql_where=sa.text("status = 'active'"))
    for column in ("email_normalized", "phone_normalized", "external_id", "merged_into"):
        name = "members_" + column.removesuffix("_normalized")
        op.create_index(name, "members", [column], postgresql_where=sa.text(f"{column} IS NOT NULL"))
    op.drop_constraint("members_status_check", "members", type_="check")
    op.create_check_constraint("members_status_check", "members", "status IN ('active', 'cancelled', 'merged')")
    op.drop_constraint("members_check", "members", type_="check")
    op.create_check_constraint("members_check", "members", "(status = 'active') = (cancelled_at IS NULL)")
    op.drop_constraint("members_check1", "members", type_="check")
    op.create_check_constraint(
        "members_check1", "members",
        "erased_at IS NULL OR (status <> 'active' AND name IS NULL AND email IS NULL"
        " AND phone IS NULL AND birth_date IS NULL AND external_id IS NULL"
        " AND email_normalized IS NULL AND phone_normalized IS NULL)")
    op.create_check_constraint("members_merged_check", "members",
                               "(status = 'merged') = (merged_into IS NOT NULL) AND merged_into <> id")


def _normalize_contacts(conn: sa.Connection) -> None:
    """Every member's email and phone as rewards.contacts compares them; an active member whose
    normalized email or phone an older active member already has keeps it NULL (and is named)."""
    taken: dict[str, set[str]] = {"email": set(), "phone": set()}
    clashes: list[int] = []
    last = 0
    while True:
        rows = conn.execute(sa.text(
            "SELECT id, status, email, phone FROM members WHERE id > :last AND (email IS NOT NULL OR phone IS NOT "
            "NULL) ORDER BY id LIMIT :n"), {"last": last, "n": BATCH}).all()
        if not rows:
            break
        last = rows[-1].id
        found = []
        for row in rows:
            email = _email(row.email)
            phone = phone_or_none(row.phone) if row.phone else None
            if row.status == "active":
                if email in taken["email"] or phone in taken["phone"]:
                    clashes.append(row.id)
                email = None if email in taken["email"] else email
                phone = None if phone in taken["phone"] else phone
                taken["email"] |= {email} if email else set()
                taken["phone"] |= {phone} if phone else set()
            found.append({"id": row.id, "email": email, "phone": phone})
        conn.execute(sa.text(
            "UPDATE members m SET email_normalized = x.email, phone_normalized = x.phone "
            "FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS x(id bigint, email text, phone text) WHERE m.id = x.id"),
            {"rows": json.dumps(found)})
    if clashes:
        log.warning("members whose email or phone an older active member has: %s; they cannot be found by it "
                    "until merged into the older one (POST /v1/members/{older}/merge) or corrected",
                    ", ".join(map(str, clashes)))


def _email(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        return normalize_email(text)
    except NotAnEmail:
        return None


def _purchases() -> None:
    op.add_column("purchases", sa.Column("store_id", sa.Text()))
    op.execute("UPDATE purchases SET store_id = body->>'store_id'")
    op.alter_column("purchases", "store_id", nullable=False)
    op.create_index("purchases_store", "purchases", ["store_id", "occurred_at"])


def _adjustments() -> None:
    op.create_table(
        "adjustments",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), primary_key=True),
        sa.Column("ext_id", sa.Text(), nullable=False),
        sa.Column("member_id", sa.BigInteger(), sa.ForeignKey("members.id", name="adjustments_member_id_fkey"),
                  nullable=False),
        sa.Column("point_cents", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("note", sa.Text()),
        sa.Column("fingerprint", postgresql.BYTEA(), nullable=False),
        sa.Column("body", postgresql.JSONB(), nullable=False),
        sa.Column("balance_after", sa.BigInteger(), nullable=False),
        sa.Column("occurred_at", _ts(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False, server_default=sa.text("now()")),
        sa.UniqueConstraint("ext_id", name="adjustments_ext_id_key"),
        sa.CheckConstraint("point_cents <> 0", name="adjustments_point_cents_check"),
        sa.CheckConstraint("reason IN ('goodwill', 'correction', 'migration', 'other')",
                           name="adjustments_reason_check"),
    )
    op.create_index("adjustments_member", "adjustments", ["member_id"])


def _rewards() -> None:
    op.alter_column("rewards", "purchase_id", nullable=True)
    op.add_column("rewards", sa.Column("adjustment_id", sa.BigInteger(),
                                       sa.ForeignKey("adjustments.id", name="rewards_adjustment_id_fkey")))
    op.create_check_constraint("rewards_issued_by_check", "rewards", "num_nonnulls(purchase_id, adjustment_id) = 1")


def _kinds(kinds: tuple[str, ...]) -> str:
    return f"kind IN ({', '.join(repr(k) for k in kinds)})"


def _ledger() -> None:
    op.add_column("ledger", sa.Column("adjustment_id", sa.BigInteger(),
                                      sa.ForeignKey("adjustments.id", name="ledger_adjustment_id_fkey")))
    op.add_column("ledger", sa.Column("counterpart_member_id", sa.BigInteger(),
                                      sa.ForeignKey("members.id", name="ledger_counterpart_member_id_fkey")))
    op.drop_constraint("ledger_kind_check", "ledger", type_="check")
    op.create_check_constraint("ledger_kind_check", "ledger", _kinds(LEDGER_KINDS))
    for name, condition in CHECKS:
        op.create_check_constraint(name, "ledger", condition)


CHECKS = (
    ("ledger_adjustment_check", "kind <> 'adjustment' OR (point_cents <> 0 AND adjustment_id IS NOT NULL)"),
    ("ledger_moved_check", "kind NOT IN ('merge_out', 'merge_in', 'debt_carried_out', 'debt_carried_in') "
                           "OR (point_cents <> 0 AND counterpart_member_id IS NOT NULL)"),
    ("ledger_debt_out_check", "kind <> 'debt_carried_out' OR point_cents > 0"),
    ("ledger_debt_in_check", "kind <> 'debt_carried_in' OR point_cents < 0"),
    ("ledger_reward_moves_check", "kind NOT IN ('reward_moved_out', 'reward_moved_in', 'reward_reinstated') "
                                  "OR (point_cents = 0 AND reward_id IS NOT NULL)"),
    ("ledger_reward_moves_check1", "kind NOT IN ('reward_moved_out', 'reward_moved_in') "
                                   "OR counterpart_member_id IS NOT NULL"),
    ("ledger_reinstated_check", "kind <> 'reward_reinstated' OR return_id IS NOT NULL"),
)


def _member_changes() -> None:
    op.create_table(
        "member_changes",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), primary_key=True),
        sa.Column("member_id", sa.BigInteger(), sa.ForeignKey("members.id", name="member_changes_member_id_fkey"),
                  nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("details", postgresql.JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("counterpart_member_id", sa.BigInteger(),
                  sa.ForeignKey("members.id", name="member_changes_counterpart_member_id_fkey")),
        sa.Column("occurred_at", _ts(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False, server_default=sa.text("now()")),
        sa.Column("actor_key_id", sa.BigInteger(), sa.ForeignKey("api_keys.id", name="member_changes_actor_key_id_fkey")),
        sa.Column("actor_session_id", sa.BigInteger(),
                  sa.ForeignKey("guest_sessions.id", name="member_changes_actor_session_id_fkey")),
        sa.Column("actor_system", sa.Text()),
        sa.CheckConstraint("kind IN ('enrolled', 'corrected', 'cancelled', 'erased', 'merged_out', 'merged_in')",
                           name="member_changes_kind_check"),
        sa.CheckConstraint("(kind IN ('merged_out', 'merged_in')) = (counterpart_member_id IS NOT NULL)",
                           name="member_changes_check"),
        sa.CheckConstraint("num_nonnulls(actor_key_id, actor_session_id, actor_system) = 1",
                           name="member_changes_one_actor"),
    )
    op.create_index("member_changes_member", "member_changes", ["member_id", "id"])
    op.execute("CREATE TRIGGER member_changes_append_only BEFORE UPDATE OR DELETE ON member_changes "
               "FOR EACH ROW EXECUTE FUNCTION ledger_is_append_only()")
    # what happened before this revision, by whom unknown (as the ledger's entries of before: `migrated`)
    op.execute("""INSERT INTO member_changes (member_id, kind, occurred_at, actor_system)
                  SELECT id, 'enrolled', enrolled_at, 'migrated' FROM members
                  UNION ALL SELECT id, 'cancelled', cancelled_at, 'migrated' FROM members WHERE cancelled_at IS NOT NULL
                  UNION ALL SELECT id, 'erased', erased_at, 'migrated' FROM members WHERE erased_at IS NOT NULL
                  ORDER BY 3, 1""")


def _enrollment_keys() -> None:
    op.create_table(
        "enrollment_keys",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), primary_key=True),
        sa.Column("api_key_id", sa.BigInteger(), sa.ForeignKey("api_keys.id", name="enrollment_keys_api_key_id_fkey"),
                  nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("fingerprint", postgresql.BYTEA(), nullable=False),
        sa.Column("member_id", sa.BigInteger(), sa.ForeignKey("members.id", name="enrollment_keys_member_id_fkey"),
                  nullable=False),
        sa.Column("answer", postgresql.JSONB(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False, server_default=sa.text("now()")),
        sa.UniqueConstraint("api_key_id", "key", name="enrollment_keys_api_key_id_key_key"),
    )
    op.create_index("enrollment_keys_member", "enrollment_keys", ["member_id"])


def downgrade() -> None:
    """Back to 0007. A program with merged members, adjustments, or ledger entries of the new kinds
    cannot go back: the old checks refuse them, and the downgrade stops there."""
    op.drop_table("enrollment_keys")
    op.drop_table("member_changes")
    for name, _ in CHECKS:
        op.drop_constraint(name, "ledger", type_="check")
    op.drop_constraint("ledger_kind_check", "ledger", type_="check")
    op.create_check_constraint("ledger_kind_check", "ledger", _kinds(OLD_LEDGER_KINDS))
    op.drop_column("ledger", "counterpart_member_id")
    op.drop_column("ledger", "adjustment_id")
    op.drop_constraint("rewards_issued_by_check", "rewards", type_="check")
    op.drop_column("rewards", "adjustment_id")
    op.alter_column("rewards", "purchase_id", nullable=False)
    op.drop_table("adjustments")
    op.drop_index("purchases_store", table_name="purchases")
    op.drop_column("purchases", "store_id")
    op.drop_constraint("members_merged_check", "members", type_="check")
    op.drop_constraint("members_check1", "members", type_="check")
    op.create_check_constraint(
        "members_check1", "members",
        "erased_at IS NULL OR (status = 'cancelled' AND name IS NULL AND email IS NULL"
        " AND phone IS NULL AND birth_date IS NULL AND external_id IS NULL)")
    op.drop_constraint("members_check", "members", type_="check")
    op.create_check_constraint("members_check", "members", "(status = 'cancelled') = (cancelled_at IS NOT NULL)")
    op.drop_constraint("members_status_check", "members", type_="check")
    op.create_check_constraint("members_status_check", "members", "status IN ('active', 'cancelled')")
    for name in ("members_merged_into", "members_external_id", "members_phone", "members_email",
                 "members_active_phone", "members_active_email"):
        op.drop_index(name, table_name="members")
    op.create_index("members_active_email", "members", [sa.text("lower(email)")], unique=True,
                    postgresql_where=sa.text("status = 'active'"))
    op.create_index("members_active_phone", "members", ["phone"], unique=True,
                    postgresql_where=sa.text("status = 'active'"))
    for column in ("merged_into", "phone_normalized", "email_normalized"):
        op.drop_column("members", column)
