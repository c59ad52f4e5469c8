"""The whole schema in one place: every table, column, constraint and index, as SQLAlchemy Core.

This module describes the database as the migrations in `sql/versions/` leave it, and a
test holds the two together (tests/test_schema.py: Alembic's `compare_metadata` against a
migrated database, and the catalog of `metadata.create_all` against the migrated one, which
also covers what Alembic cannot compare: CHECK expressions, partial-index predicates, the
generated column, table options). Change the schema with a new revision (docs/migrations.md),
then change this module to match.

What must never happen is a constraint here, not only an `if` in Python. Constraint names are
the ones PostgreSQL gave them (`<table>_pkey`, `<table>_<column>_fkey`, `<table>_<columns>_key`;
`<table>_<column>_check` for a CHECK on one column, `<table>_check`, `<table>_check1`… for one
over several), written out so that a revision can name them and Alembic compares them by name.

Some things live only in the migrations, because Core has no object for them:
- `ledger_is_append_only()`, the trigger function behind `ledger_append_only`,
  `subscription_events_append_only` and `member_changes_append_only` (and the program
  texts'): entries are inserted, never updated or deleted;
- `engine_snapshot(...)`, the plpgsql function the posting engine reads a batch with
  (rewards/engine/posting.py): the rules lock, the members' locks, and what the planner needs;
- `privacy_hash(address)`, the keyed hash (HMAC-SHA256 with the key in `privacy_hash_key`) that
  erased addresses and the addresses privacy requests name are kept as, and
  `subscription_opt_out_holds()`, the trigger function behind `subscriptions_opt_outs_hold`: a
  subscription of an erased address becomes active again only with a new opt-in;
- the extended statistics `purchases_card_member` (ndistinct over the card holder and the
  rules version) that the incentive-value report's plan depends on.
"""

from __future__ import annotations

from sqlalchemy import (
    CHAR,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Computed,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, BYTEA, JSONB

# PostgreSQL's own names for what a CREATE TABLE leaves unnamed, so new tables get the names
# the database would give them; CHECKs and indexes are named one by one below.
NAMING_CONVENTION = {
    "pk": "%(table_name)s_pkey",
    "fk": "%(table_name)s_%(column_0_N_name)s_fkey",
    "uq": "%(table_name)s_%(column_0_N_name)s_key",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

TIMESTAMPTZ = DateTime(timezone=True)
NOW = text("now()")


def _id() -> Column[int]:
    """The surrogate key of most tables (not program_rules, offer_deliveries, event_passes)."""
    return Column("id", BigInteger, Identity(always=False), primary_key=True)


# --- the program --------------------------------------------------------------------------

# Program rules are data, not code; a posting records the version it was computed with.
# Version 1 is inserted by the baseline revision.
program_rules = Table(
    "program_rules",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("effective_from", TIMESTAMPTZ, nullable=False),
    Column("body", JSONB, nullable=False),
    Column("created_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
    CheckConstraint("version > 0", name="program_rules_version_check"),
)

# The words of the notice and the report (incentives/disclosures.py describes them), and the
# published terms and notice that enrollment consents to. Append-only (triggers
# `program_disclosures_append_only`, `program_documents_append_only`): a change is a new version.
program_disclosures = Table(
    "program_disclosures",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("body", JSONB, nullable=False),
    Column("created_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
    CheckConstraint("version > 0", name="program_disclosures_version_check"),
)

program_documents = Table(
    "program_documents",
    metadata,
    _id(),
    Column("kind", Text, nullable=False),
    Column("version", Text, nullable=False),
    Column("text", Text, nullable=False),
    Column("sha256", Text, nullable=False),  # of the text's UTF-8: what a consent accepted
    Column("effective_from", TIMESTAMPTZ, nullable=False),
    Column("published_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
    UniqueConstraint("kind", "version", name="program_documents_kind_version_key"),
    CheckConstraint("kind IN ('terms', 'notice')", name="program_documents_kind_check"),
    CheckConstraint("version ~ '^[A-Za-z0-9._-]{1,32}$'", name="program_documents_version_check"),
    CheckConstraint("length(text) > 0", name="program_documents_text_check"),
    CheckConstraint("sha256 ~ '^[0-9a-f]{64}$'", name="program_documents_sha256_check"),
)

members = Table(
    "members",
    metadata,
    _id(),
    Column("external_id", Text),
    Column("status", Text, nullable=False, server_default=text("'active'")),
    # personal information: NULL once erased
    Column("name", Text),
    Column("email", Text),
    Column("phone", Text),
    Column("birth_date", Date),
    Column("state", CHAR(2), nullable=False),
    Column("enrolled_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
    # when the membership ended: cancelled, or merged into another member (`status` says which)
    Column("cancelled_at", TIMESTAMPTZ),
    Column("erased_at", TIMESTAMPTZ),
    # caches of the ledger, kept in the posting's transaction; `rewards verify` recomputes them
    Column("point_cents", BigInteger, nullable=False, server_default=text("0")),
    # the ordinals handed out: rewards issued to the member, and rewards moved in from a duplicate
    Column("rewards_issued", Integer, nullable=False, server_default=text("0")),
    # the number on the member's card (and its barcode): "7", 14 random digits, a Luhn check digit
    # (rewards.cards); not derived from the id
    Column("card_number", Text),
    # email and phone as compared (rewards.contacts): NFKC, trimmed, case-folded; E.164
    Column("email_normalized", Text),
    Column("phone_normalized", Text),
    # the member a duplicate was merged into (always an active one: merging into it re-points these)
    Column("merged_into", BigInteger, ForeignKey("members.id", name="members_merged_into_fkey")),
    CheckConstraint("status IN ('active', 'cancelled', 'merged')", name="members_status_check"),
    CheckConstraint("card_number ~ '^[0-9]{16}$'", name="members_card_number_check"),
    CheckConstraint("rewards_issued >= 0", name="members_rewards_issued_check"),
    CheckConstraint("(status = 'active') = (cancelled_at IS NULL)", name="members_check"),
    # the erased-member check: an erased member is cancelled and keeps no personal information
    CheckConstraint(
        "erased_at IS NULL OR (status <> 'active' AND name IS NULL AND email IS NULL"
        " AND phone IS NULL AND birth_date IS NULL AND external_id IS NULL"
        " AND email_normalized IS NULL AND phone_normalized IS NULL)",
        name="members_check1",
    ),
    CheckConstraint("(status = 'merged') = (merged_into IS NOT NULL) AND merged_into <> id",
                    name="members_merged_check"),
    # A balance changes at every posting: with room left on each page that update is a HOT
    # update (no new entry in any of the members' indexes); full pages would bloat them all.
    postgresql_with={"fillfactor": 70},
)
# an email, a phone, an external id belongs to one active member at a time
Index("members_active_email", members.c.email_normalized, unique=True,
      postgresql_where=members.c.status == "active")
Index("members_active_phone", members.c.phone_normalized, unique=True, postgresql_where=members.c.status == "active")
Index("members_active_external_id", members.c.external_id, unique=True,
      postgresql_where=members.c.status == "active")
# the desk finds cancelled members too (and enrollment their debts): every member by each
Index("members_email", members.c.email_normalized, postgresql_where=members.c.email_normalized.is_not(None))
Index("members_phone", members.c.phone_normalized, postgresql_where=members.c.phone_normalized.is_not(None))
Index("members_external_id", members.c.external_id, postgresql_where=members.c.external_id.is_not(None))
Index("members_merged_into", members.c.merged_into, postgresql_where=members.c.merged_into.is_not(None))

# The opt-in consent the law asks for: what was shown, when, through which channel.
consents = Table(
    "consents",
    metadata,
    _id(),
    Column("member_id", BigInteger, ForeignKey("members.id"), nullable=False),
    Column("terms_version", Text, nullable=False),
    Column("notice_version", Text, nullable=False),
    Column("channel", Text, nullable=False),
    Column("guardian_consent", Boolean, nullable=False, server_default=text("false")),
    Column("accepted_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
    Column("withdrawn_at", TIMESTAMPTZ),
    # the published texts the consent accepted (NULL for consents given before documents were published)
    Column("terms_document_id", BigInteger, ForeignKey("program_documents.id", name="consents_terms_document_id_fkey")),
    Column("notice_document_id", BigInteger,
           ForeignKey("program_documents.id", name="consents_notice_document_id_fkey")),
    CheckConstraint("channel IN ('store', 'online')", name="consents_channel_check"),
)
Index("members_card_number", members.c.card_number, unique=True,
      postgresql_where=members.c.card_number.is_not(None))
Index("consents_member", consents.c.member_id)

# --- purchases, returns, rewards, the ledger ---------------------------------------------

# What the Westique Credit Card paying part of a purchase means (it makes its buyer a card
# holder in the incentive-value report), computed once when the purchase is written.
CARD_PAID = "body->'tenders' @> '[{\"method\": \"westique_credit_card\"}]'"

purchases = Table(
    "purchases",
    metadata,
    _id(),
    Column("ext_id", Text, nullable=False),  # the API's purchase_id: the idempotency key
    Column("member_id", BigInteger, ForeignKey("members.id"), nullable=False),
    Column("occurred_at", TIMESTAMPTZ, nullable=False),
    Column("rules_version", Integer, ForeignKey("program_rules.version"), nullable=False),
    Column("fingerprint", BYTEA, nullable=False),  # digest of the canonical request
    Column("body", JSONB, nullable=False),  # the canonical request, for returns and audits
    Column("qualifying_cents", BigInteger, nullable=False),
    Column("card_cents", BigInteger, nullable=False),
    Column("point_cents", BigInteger, nullable=False),  # earned, bonus included
    Column("bonus_point_cents", BigInteger, nullable=False),
    Column("balance_after", BigInteger, nullable=False),  # so a replay answers exactly as the first time
    Column("rewards_redeemed", ARRAY(Text), nullable=False, server_default=text("'{}'")),
    Column("created_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
    Column("card_paid", Boolean, Computed(CARD_PAID, persisted=True), nullable=False),
    Column("store_id", Text, nullable=False),  # the body's store_id, for the report by store
    UniqueConstraint("ext_id"),
    CheckConstraint("qualifying_cents >= 0", name="purchases_qualifying_cents_check"),
    CheckConstraint("card_cents >= 0 AND card_cents <= qualifying_cents", name="purchases_check"),
    CheckConstraint("point_cents >= 0", name="purchases_point_cents_check"),
    CheckConstraint("bonus_point_cents >= 0 AND bonus_point_cents <= point_cents", name="purchases_check1"),
)
Index("purchases_member", purchases.c.member_id, purchases.c.occurred_at)
Index("purchases_occurred", purchases.c.occurred_at)
Index("purchases_store", purchases.c.store_id, purchases.c.occurred_at)

purchase_returns = Table(
    "purchase_returns",
    metadata,
    _id(),
    Column("ext_id", Text, nullable=False),  # the API's return_id: the idempotency key
    Column("purchase_id", BigInteger, ForeignKey("purchases.id"), nullable=False),
    Column("member_id", BigInteger, ForeignKey("members.id"), nullable=False),
    Column("occurred_at", TIMESTAMPTZ, nullable=False),
    Column("fingerprint", BYTEA, nullable=False),
    Column("body", JSONB, nullable=False),
    Column("point_cents_reversed", BigInteger, nullable=False),
    Column("balance_after", BigInteger, nullable=False),
    Column("created_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
    # false for returns posted before the points followed the units (computed by amount)
    Column("by_units", Boolean, nullable=False, server_default=text("true")),
    UniqueConstraint("ext_id"),
    CheckConstraint("point_cents_reversed >= 0", name="purchase_returns_point_cents_reversed_check"),
)
Index("purchase_returns_purchase", purchase_returns.c.purchase_id)

rewards = Table(
    "rewards",
    metadata,
    _id(),
    Column("code", Text, nullable=False),
    Column("member_id", BigInteger, ForeignKey("members.id"), nullable=False),
    Column("ordinal", Integer, nullable=False),  # the member's n-th reward
    Column("value_cents", BigInteger, nullable=False),
    Column("issued_at", TIMESTAMPTZ, nullable=False),
    Column("expires_at", TIMESTAMPTZ, nullable=False),
    # the posting that issued it: a purchase, or an adjustment
    Column("purchase_id", BigInteger, ForeignKey("purchases.id")),
    Column("status", Text, nullable=False, server_default=text("'issued'")),
    Column("redeemed_at", TIMESTAMPTZ),
    Column("redeemed_purchase_id", BigInteger, ForeignKey("purchases.id")),
    Column("voided_at", TIMESTAMPTZ),
    Column("cost_point_cents", BigInteger, nullable=False),  # what a return that voids it gives back
    Column("adjustment_id", BigInteger, ForeignKey("adjustments.id", name="rewards_adjustment_id_fkey")),
    # when its `reward.expiring` notice was written (rewards.expiry); NULL before
    Column("expiry_notice_at", TIMESTAMPTZ),
    UniqueConstraint("code"),
    # a reward can never be issued twice: the member's n-th reward exists once
    UniqueConstraint("member_id", "ordinal"),
    CheckConstraint("ordinal > 0", name="rewards_ordinal_check"),
    CheckConstraint("value_cents > 0", name="rewards_value_cents_check"),
    CheckConstraint("expires_at > issued_at", name="rewards_check"),
    # `expired`: its `reward_expired` entry is written (rewards.expiry); until then an issued reward
    # past its expiry is shown as expired all the same (rewards.members.reward_status)
    CheckConstraint("status IN ('issued', 'redeemed', 'voided', 'expired')", name="rewards_status_check"),
    CheckConstraint("(status = 'redeemed') = (redeemed_purchase_id IS NOT NULL AND redeemed_at IS NOT NULL)",
                    name="rewards_check1"),
    CheckConstraint("(status = 'voided') = (voided_at IS NOT NULL)", name="rewards_check2"),
    CheckConstraint("cost_point_cents > 0", name="rewards_cost_point_cents_check"),
    CheckConstraint("num_nonnulls(purchase_id, adjustment_id) = 1", name="rewards_issued_by_check"),
)
Index("rewards_purchase", rewards.c.purchase_id)
Index("rewards_open", rewards.c.member_id, postgresql_where=rewards.c.status == "issued")
# the expiry job's and verify's way to the open rewards that expire soonest
Index("rewards_open_by_expiry", rewards.c.expires_at, postgresql_where=rewards.c.status == "issued")
Index("rewards_redeemed_purchase", rewards.c.redeemed_purchase_id,
      postgresql_where=rewards.c.redeemed_purchase_id.is_not(None))

LEDGER_KINDS = ("earn", "card_bonus", "reward_issued", "reward_redeemed", "reward_voided", "return", "forfeit",
                "adjustment", "merge_out", "merge_in", "reward_moved_out", "reward_moved_in", "reward_reinstated",
                "debt_carried_out", "debt_carried_in", "reward_expired")

# Staff adjustments of points (and opening balances imported from a previous program): the
# ledger's `adjustment` entry names one; `ext_id` is the API's adjustment_id, the idempotency key.
adjustments = Table(
    "adjustments",
    metadata,
    _id(),
    Column("ext_id", Text, nullable=False),
    Column("member_id", BigInteger, ForeignKey("members.id"), nullable=False),
    Column("point_cents", BigInteger, nullable=False),
    Column("reason", Text, nullable=False),
    Column("note", Text),
    Column("fingerprint", BYTEA, nullable=False),  # digest of the canonical request
    Column("body", JSONB, nullable=False),
    Column("balance_after", BigInteger, nullable=False),  # so a replay answers exactly as the first time
    Column("occurred_at", TIMESTAMPTZ, nullable=False),
    Column("created_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
    UniqueConstraint("ext_id"),
    CheckConstraint("point_cents <> 0", name="adjustments_point_cents_check"),
    CheckConstraint("reason IN ('goodwill', 'correction', 'migration', 'other')", name="adjustments_reason_check"),
)
Index("adjustments_member", adjustments.c.member_id)

# Append-only (trigger `ledger_append_only`): every change of points, and every change of a
# reward's state, is an entry.
ledger = Table(
    "ledger",
    metadata,
    _id(),
    Column("member_id", BigInteger, ForeignKey("members.id"), nullable=False),
    Column("kind", Text, nullable=False),
    Column("point_cents", BigInteger, nullable=False),
    Column("purchase_id", BigInteger, ForeignKey("purchases.id")),
    Column("return_id", BigInteger, ForeignKey("purchase_returns.id")),
    Column("reward_id", BigInteger, ForeignKey("rewards.id")),
    Column("rules_version", Integer, ForeignKey("program_rules.version")),
    Column("occurred_at", TIMESTAMPTZ, nullable=False),  # business time (the purchase's, the cancellation's)
    Column("created_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
    # who made the entry: one API key (staff or guest token), one guest session, or the service itself
    Column("actor_key_id", BigInteger, ForeignKey("api_keys.id", name="ledger_actor_key_id_fkey")),
    Column("actor_session_id", BigInteger, ForeignKey("guest_sessions.id", name="ledger_actor_session_id_fkey")),
    Column("actor_system", Text),
    Column("adjustment_id", BigInteger, ForeignKey("adjustments.id", name="ledger_adjustment_id_fkey")),
    # the other member of a merge, or of a debt carried to a new enrollment
    Column("counterpart_member_id", BigInteger,
           ForeignKey("members.id", name="ledger_counterpart_member_id_fkey")),
    CheckConstraint(f"kind IN ({', '.join(repr(k) for k in LEDGER_KINDS)})", name="ledger_kind_check"),
    CheckConstraint("kind NOT IN ('earn', 'card_bonus') OR (point_cents > 0 AND purchase_id IS NOT NULL)",
                    name="ledger_check"),
    CheckConstraint("kind <> 'return' OR (point_cents < 0 AND return_id IS NOT NULL)", name="ledger_check1"),
    CheckConstraint("kind <> 'forfeit' OR point_cents < 0", name="ledger_check2"),
    CheckConstraint("kind NOT IN ('reward_issued', 'reward_redeemed', 'reward_voided') OR reward_id IS NOT NULL",
                    name="ledger_check3"),
    CheckConstraint("kind <> 'adjustment' OR (point_cents <> 0 AND adjustment_id IS NOT NULL)",
                    name="ledger_adjustment_check"),
    # merges and carried debts name the other member; each side is non-zero
    CheckConstraint("kind NOT IN ('merge_out', 'merge_in', 'debt_carried_out', 'debt_carried_in') "
                    "OR (point_cents <> 0 AND counterpart_member_id IS NOT NULL)", name="ledger_moved_check"),
    CheckConstraint("kind <> 'debt_carried_out' OR point_cents > 0", name="ledger_debt_out_check"),
    CheckConstraint("kind <> 'debt_carried_in' OR point_cents < 0", name="ledger_debt_in_check"),
    # a reward moved to the member a duplicate was merged into, or reinstated by a return: no points move
    CheckConstraint("kind NOT IN ('reward_moved_out', 'reward_moved_in', 'reward_reinstated') "
                    "OR (point_cents = 0 AND reward_id IS NOT NULL)", name="ledger_reward_moves_check"),
    CheckConstraint("kind NOT IN ('reward_moved_out', 'reward_moved_in') OR counterpart_member_id IS NOT NULL",
                    name="ledger_reward_moves_check1"),
    CheckConstraint("kind <> 'reward_reinstated' OR return_id IS NOT NULL", name="ledger_reinstated_check"),
    CheckConstraint("kind <> 'reward_issued' OR point_cents < 0", name="ledger_check4"),
    CheckConstraint("kind <> 'reward_redeemed' OR point_cents = 0", name="ledger_redeemed_moves_no_points"),
    # a reward voided by a return gives its points back; voided at cancellation, nothing
    CheckConstraint("kind <> 'reward_voided' OR point_cents >= 0", name="ledger_voided_gives_back"),
    CheckConstraint("num_nonnulls(actor_key_id, actor_session_id, actor_system) = 1", name="ledger_one_actor"),
    # a reward reaching its expiry takes no points: they were taken when it was issued
    CheckConstraint("kind <> 'reward_expired' OR (point_cents = 0 AND reward_id IS NOT NULL)",
                    name="ledger_expired_moves_no_points"),
)
Index("ledger_member", ledger.c.member_id, ledger.c.id)
Index("ledger_occurred", ledger.c.occurred_at)
# points earned are read from the purchases; the few entries that take points back, by index
Index("ledger_taken_back", ledger.c.occurred_at, postgresql_where=ledger.c.kind.in_(["return", "forfeit"]))

# Who changed a member, and how, besides the ledger: enrollment, correction (the names of the
# fields changed, never their values), cancellation, erasure, and both sides of a merge (its
# answer, for a merge asked again). Append-only (trigger `member_changes_append_only`).
member_changes = Table(
    "member_changes",
    metadata,
    _id(),
    Column("member_id", BigInteger, ForeignKey("members.id"), nullable=False),
    Column("kind", Text, nullable=False),
    Column("details", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("counterpart_member_id", BigInteger,
           ForeignKey("members.id", name="member_changes_counterpart_member_id_fkey")),
    Column("occurred_at", TIMESTAMPTZ, nullable=False),
    Column("created_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
    Column("actor_key_id", BigInteger, ForeignKey("api_keys.id", name="member_changes_actor_key_id_fkey")),
    Column("actor_session_id", BigInteger,
           ForeignKey("guest_sessions.id", name="member_changes_actor_session_id_fkey")),
    Column("actor_system", Text),
    CheckConstraint("kind IN ('enrolled', 'corrected', 'cancelled', 'erased', 'merged_out', 'merged_in')",
                    name="member_changes_kind_check"),
    CheckConstraint("(kind IN ('merged_out', 'merged_in')) = (counterpart_member_id IS NOT NULL)",
                    name="member_changes_check"),
    CheckConstraint("num_nonnulls(actor_key_id, actor_session_id, actor_system) = 1",
                    name="member_changes_one_actor"),
)
Index("member_changes_member", member_changes.c.member_id, member_changes.c.id)

# Enrollment's Idempotency-Key: a register's retry answers the first enrollment. A key is the
# caller's own (unique per API key); only a digest of the body is kept, and the rows of an
# erased member are deleted with the rest of their personal data.
enrollment_keys = Table(
    "enrollment_keys",
    metadata,
    _id(),
    Column("api_key_id", BigInteger, ForeignKey("api_keys.id"), nullable=False),
    Column("key", Text, nullable=False),
    Column("fingerprint", BYTEA, nullable=False),
    Column("member_id", BigInteger, ForeignKey("members.id"), nullable=False),
    Column("answer", JSONB, nullable=False),
    Column("created_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
    UniqueConstraint("api_key_id", "key"),
)
Index("enrollment_keys_member", enrollment_keys.c.member_id)

# --- access ------------------------------------------------------------------------------

api_keys = Table(
    "api_keys",
    metadata,
    _id(),
    Column("token_hash", BYTEA, nullable=False),  # sha256 of the token; the token itself is never stored
    Column("scopes", ARRAY(Text), nullable=False),
    Column("member_id", BigInteger, ForeignKey("members.id")),
    Column("label", Text),
    Column("created_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
    Column("revoked_at", TIMESTAMPTZ),  # revoked by hand, or, for a guest token, by its member's cancellation
    Column("expires_at", TIMESTAMPTZ),  # NULL: never (staff keys, unless made with a TTL)
    UniqueConstraint("token_hash"),
    CheckConstraint(
        "cardinality(scopes) > 0"
        " AND scopes <@ ARRAY['checkout', 'guest_services', 'compliance', 'admin', 'web_shop', 'guest',"
        " 'integrations']",
        name="api_keys_scopes_check",
    ),
    # a guest token names its member, and holds the guest scope alone
    CheckConstraint("('guest' = ANY (scopes)) = (member_id IS NOT NULL)", name="api_keys_check"),
    CheckConstraint("NOT ('guest' = ANY (scopes)) OR cardinality(scopes) = 1", name="api_keys_scopes_check1"),
    # a guest token ends (`rewards keys create --ttl`, 30 days by default)
    CheckConstraint("member_id IS NULL OR expires_at IS NOT NULL", name="api_keys_guest_expires"),
)
# a cancellation ends its member's guest tokens
Index("api_keys_member", api_keys.c.member_id, postgresql_where=api_keys.c.member_id.is_not(None))

# One-time links to the guest's page (rewards/sign_in.py): only the token's hash is kept; the
# link itself travels in its `sign_in_link.created` event to the retailer's email or SMS sender.
sign_in_links = Table(
    "sign_in_links",
    metadata,
    _id(),
    Column("member_id", BigInteger, ForeignKey("members.id"), nullable=False),
    Column("token_hash", BYTEA, nullable=False),
    Column("channel", Text, nullable=False),  # where the link was sent: the member's email or phone
    Column("created_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
    Column("expires_at", TIMESTAMPTZ, nullable=False),
    Column("used_at", TIMESTAMPTZ),
    Column("created_by_key_id", BigInteger, ForeignKey("api_keys.id"), nullable=False),  # who asked for it
    UniqueConstraint("token_hash"),
    CheckConstraint("channel IN ('email', 'sms')", name="sign_in_links_channel_check"),
    CheckConstraint("expires_at > created_at", name="sign_in_links_check"),
)
# the per-member rate limit counts a member's recent links
Index("sign_in_links_member", sign_in_links.c.member_id, sign_in_links.c.created_at)

# A guest's browser session on the page, started by one sign-in link; the cookie holds a token of
# which only the hash is kept. Ended by signing out, or by the member's cancellation or erasure
# in its own transaction; idle ones lapse (rewards/sign_in.py).
guest_sessions = Table(
    "guest_sessions",
    metadata,
    _id(),
    Column("member_id", BigInteger, ForeignKey("members.id"), nullable=False),
    Column("token_hash", BYTEA, nullable=False),
    Column("sign_in_link_id", BigInteger, ForeignKey("sign_in_links.id"), nullable=False),
    Column("created_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
    Column("last_seen_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
    Column("ended_at", TIMESTAMPTZ),
    UniqueConstraint("token_hash"),
    UniqueConstraint("sign_in_link_id"),  # a link starts one session
)
Index("guest_sessions_member", guest_sessions.c.member_id, postgresql_where=guest_sessions.c.ended_at.is_(None))

# --- the mailing list and Guest Connect (texts) -------------------------------------------

subscriptions = Table(
    "subscriptions",
    metadata,
    _id(),
    Column("channel", Text, nullable=False),
    Column("address", Text),  # email or phone; NULL once erased
    Column("member_id", BigInteger, ForeignKey("members.id")),
    Column("status", Text, nullable=False),
    # where and when the opt-in now in force was given (a renewal replaces them; the events
    # keep every one): store, online, or sms for a START texted after a STOP
    Column("source", Text, nullable=False),
    Column("subscribed_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
    Column("unsubscribed_at", TIMESTAMPTZ),
    Column("erased_at", TIMESTAMPTZ),
    CheckConstraint("channel IN ('email', 'sms')", name="subscriptions_channel_check"),
    CheckConstraint("status IN ('active', 'unsubscribed')", name="subscriptions_status_check"),
    CheckConstraint("source IN ('store', 'online', 'sms')", name="subscriptions_source_check"),
    CheckConstraint("(status = 'unsubscribed') = (unsubscribed_at IS NOT NULL)", name="subscriptions_check"),
    CheckConstraint("erased_at IS NULL OR address IS NULL", name="subscriptions_check1"),
)
Index("subscriptions_address", subscriptions.c.channel, func.lower(subscriptions.c.address), unique=True,
      postgresql_where=subscriptions.c.address.is_not(None))
Index("subscriptions_member", subscriptions.c.member_id, postgresql_where=subscriptions.c.member_id.is_not(None))

# The consent record: every opt-in and opt-out, with where and when; append-only (trigger
# `subscription_events_append_only`).
subscription_events = Table(
    "subscription_events",
    metadata,
    _id(),
    Column("subscription_id", BigInteger, ForeignKey("subscriptions.id"), nullable=False),
    Column("kind", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("detail", Text),  # the keyword texted, for STOP and friends
    Column("occurred_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
    # the guest's page session that made the change, when one did (source `online`)
    Column("actor_session_id", BigInteger, ForeignKey("guest_sessions.id")),
    CheckConstraint("kind IN ('subscribed', 'renewed', 'unsubscribed')", name="subscription_events_kind_check"),
    CheckConstraint("source IN ('store', 'online', 'link', 'sms', 'erasure')",
                    name="subscription_events_source_check"),
)
Index("subscription_events_subscription", subscription_events.c.subscription_id, subscription_events.c.id)

# An offer is matched by its code; discounts used at checkout travel on the purchase body.
offers = Table(
    "offers",
    metadata,
    _id(),
    Column("code", Text, nullable=False),
    Column("value_cents", BigInteger, nullable=False),
    Column("channel", Text, nullable=False),
    Column("created_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
    UniqueConstraint("code"),
    CheckConstraint("value_cents > 0", name="offers_value_cents_check"),
    CheckConstraint("channel IN ('email', 'sms')", name="offers_channel_check"),
)

# Offers sent: which subscription received which offer, so "offers provided" is counted.
offer_deliveries = Table(
    "offer_deliveries",
    metadata,
    Column("offer_id", BigInteger, ForeignKey("offers.id"), nullable=False),
    Column("subscription_id", BigInteger, ForeignKey("subscriptions.id"), nullable=False),
    Column("sent_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
    PrimaryKeyConstraint("offer_id", "subscription_id"),
)


# --- events: what happened, for the feed and the webhooks ------------------------------------

# Written in the same transaction as the change it reports (rewards/events/). `tx` is the
# writing transaction's id: the passes below say, by it, when each event became visible.
events = Table(
    "events",
    metadata,
    _id(),
    Column("type", Text, nullable=False),
    Column("member_id", BigInteger),
    Column("occurred_at", TIMESTAMPTZ, nullable=False),
    Column("data", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("tx", BigInteger, nullable=False, server_default=text("((pg_current_xact_id())::text)::bigint")),
    Column("created_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
    CheckConstraint("type ~ '^[a-z_]+(\\.[a-z_]+)+$'", name="events_type_check"),
)
Index("events_feed", events.c.tx, events.c.id)


# --- privacy: the consumer's requests, erasure with notice, erased addresses -------------------

# The key of `privacy_hash(address)` (sql/versions/0005), as HMAC-SHA256's inner and outer pads:
# one row, drawn at random by the revision, never changed (triggers `privacy_hash_key_unchanging` and
# `privacy_hash_key_kept` refuse an UPDATE, a DELETE or a TRUNCATE).
privacy_hash_key = Table(
    "privacy_hash_key",
    metadata,
    Column("id", Boolean, primary_key=True, autoincrement=False, server_default=text("true")),
    Column("inner_pad", BYTEA, nullable=False),
    Column("outer_pad", BYTEA, nullable=False),
    Column("created_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
    CheckConstraint("id", name="privacy_hash_key_id_check"),
    CheckConstraint("length(inner_pad) = 64 AND length(outer_pad) = 64", name="privacy_hash_key_check"),
)

# An erased address stays opted out: its keyed hash, not the address. Only a new opt-in
# (rewards.mailing.subscribe) removes it; until then the trigger `subscriptions_opt_outs_hold`
# refuses to make a subscription of that address active.
opt_out_hashes = Table(
    "opt_out_hashes",
    metadata,
    Column("channel", Text, nullable=False),
    Column("address_hash", BYTEA, nullable=False),
    Column("opted_out_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
    PrimaryKeyConstraint("channel", "address_hash", name="opt_out_hashes_pkey"),
    CheckConstraint("channel IN ('email', 'sms')", name="opt_out_hashes_channel_check"),
    CheckConstraint("length(address_hash) = 32", name="opt_out_hashes_address_hash_check"),
)

# Each member's erasure: asked for (and by whom), when it is or was due, what the notice said
# would be lost, and when it happened (rewards/privacy/erasure.py). No personal data.
member_erasures = Table(
    "member_erasures",
    metadata,
    Column("member_id", BigInteger, ForeignKey("members.id", name="member_erasures_member_id_fkey"),
           primary_key=True, autoincrement=False),
    Column("requested_at", TIMESTAMPTZ, nullable=False),
    Column("scheduled_for", TIMESTAMPTZ, nullable=False),
    Column("point_cents_to_forfeit", BigInteger, nullable=False),  # as the notice said, when it was given
    Column("rewards_to_void", ARRAY(Text), nullable=False),
    Column("reason", Text, nullable=False),
    Column("erased_at", TIMESTAMPTZ),
    Column("actor_key_id", BigInteger, ForeignKey("api_keys.id", name="member_erasures_actor_key_id_fkey")),
    Column("actor_session_id", BigInteger,
           ForeignKey("guest_sessions.id", name="member_erasures_actor_session_id_fkey")),
    Column("actor_system", Text),
    CheckConstraint("reason IN ('notice_given', 'minor', 'consumer_confirmed', 'no_notice_period', "
                    "'already_cancelled')", name="member_erasures_reason_check"),
    CheckConstraint("scheduled_for >= requested_at", name="member_erasures_check"),
    CheckConstraint("point_cents_to_forfeit >= 0", name="member_erasures_point_cents_to_forfeit_check"),
    CheckConstraint("num_nonnulls(actor_key_id, actor_session_id, actor_system) = 1",
                    name="member_erasures_one_actor"),
)
Index("member_erasures_due", member_erasures.c.scheduled_for, postgresql_where=member_erasures.c.erased_at.is_(None))

# Consumers' requests to know (access), delete and correct, with their clocks; kept 24 months
# after they close (rewards/privacy/requests.py). `address` is the email or phone a request names
# when it names no member, kept only while the request is open; `subject_hash` is its keyed hash.
privacy_requests = Table(
    "privacy_requests",
    metadata,
    _id(),
    Column("type", Text, nullable=False),
    Column("status", Text, nullable=False, server_default=text("'open'")),
    Column("member_id", BigInteger, ForeignKey("members.id", name="privacy_requests_member_id_fkey")),
    Column("subject", Text, nullable=False),
    Column("subject_hash", BYTEA),
    Column("address", Text),
    Column("channel", Text, nullable=False),
    Column("verification_method", Text, nullable=False),
    Column("verified_at", TIMESTAMPTZ),
    Column("details", Text),
    Column("received_at", TIMESTAMPTZ, nullable=False),
    Column("confirm_by", TIMESTAMPTZ, nullable=False),
    Column("due_at", TIMESTAMPTZ, nullable=False),
    Column("confirmed_at", TIMESTAMPTZ),
    Column("closed_at", TIMESTAMPTZ),
    Column("outcome", Text),
    Column("reason", Text),
    Column("filed_by_key_id", BigInteger, ForeignKey("api_keys.id", name="privacy_requests_filed_by_key_id_fkey")),
    Column("filed_by_session_id", BigInteger,
           ForeignKey("guest_sessions.id", name="privacy_requests_filed_by_session_id_fkey")),
    Column("filed_by_system", Text),
    Column("closed_by_key_id", BigInteger, ForeignKey("api_keys.id", name="privacy_requests_closed_by_key_id_fkey")),
    Column("closed_by_session_id", BigInteger,
           ForeignKey("guest_sessions.id", name="privacy_requests_closed_by_session_id_fkey")),
    Column("closed_by_system", Text),
    CheckConstraint("type IN ('access', 'delete', 'correct')", name="privacy_requests_type_check"),
    CheckConstraint("status IN ('open', 'completed', 'denied')", name="privacy_requests_status_check"),
    CheckConstraint("subject IN ('member', 'email', 'phone')", name="privacy_requests_subject_check"),
    CheckConstraint("channel IN ('online', 'phone', 'email', 'mail', 'store', 'agent')",
                    name="privacy_requests_channel_check"),
    CheckConstraint("verification_method IN ('signed_in', 'email_code', 'sms_code', 'in_person_id', "
                    "'matched_data_points', 'authorized_agent', 'not_verified')",
                    name="privacy_requests_verification_method_check"),
    CheckConstraint("(verification_method = 'not_verified') = (verified_at IS NULL)",
                    name="privacy_requests_verified"),
    CheckConstraint("member_id IS NOT NULL OR subject_hash IS NOT NULL", name="privacy_requests_names_someone"),
    CheckConstraint("address IS NULL OR (status = 'open' AND subject_hash IS NOT NULL)",
                    name="privacy_requests_address_while_open"),
    CheckConstraint("confirm_by > received_at AND due_at > received_at", name="privacy_requests_clocks"),
    CheckConstraint("(status = 'open') = (closed_at IS NULL)", name="privacy_requests_closed"),
    CheckConstraint("(status = 'completed') = (outcome IS NOT NULL)"
                    " AND (outcome IS NULL OR outcome IN ('in_whole', 'in_part'))", name="privacy_requests_outcome"),
    CheckConstraint("status <> 'denied' AND outcome IS DISTINCT FROM 'in_part' OR reason IS NOT NULL",
                    name="privacy_requests_reason"),
    CheckConstraint("num_nonnulls(filed_by_key_id, filed_by_session_id, filed_by_system) = 1",
                    name="privacy_requests_filed_by"),
    CheckConstraint("num_nonnulls(closed_by_key_id, closed_by_session_id, closed_by_system)"
                    " = CASE WHEN status = 'open' THEN 0 ELSE 1 END", name="privacy_requests_closed_by"),
)
Index("privacy_requests_open", privacy_requests.c.due_at, postgresql_where=privacy_requests.c.status == "open")
Index("privacy_requests_received", privacy_requests.c.received_at)
Index("privacy_requests_member", privacy_requests.c.member_id,
      postgresql_where=privacy_requests.c.member_id.is_not(None))
Index("privacy_requests_subject_hash", privacy_requests.c.subject_hash,
      postgresql_where=privacy_requests.c.subject_hash.is_not(None))
# a message's address is personal data: erasure finds the messages of a subscription by it
Index("events_message_subscription", events.c.data["subscription_id"].astext,
      postgresql_where=events.c.type == "offer.delivery")

# The feed's order (rewards/events/feed.py): pass n holds the events of the transactions that
# committed between two snapshots, the one taken by pass n-1 (`after_xmax`, `after_xip`) and
# its own (`snapshot_xmax`, `snapshot_xip`): a transaction is visible in a snapshot when its id
# is below the snapshot's xmax and not in its xip (the ones still running). Passes are numbered one after the other, one
# sealer at a time, so a pass is complete once it can be read.
event_passes = Table(
    "event_passes",
    metadata,
    Column("pass", BigInteger, primary_key=True, autoincrement=False),
    Column("snapshot_xmax", BigInteger, nullable=False),
    Column("snapshot_xip", ARRAY(BigInteger), nullable=False),
    Column("after_xmax", BigInteger, nullable=False),
    Column("after_xip", ARRAY(BigInteger), nullable=False),
    Column("sealed_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
    CheckConstraint("pass > 0", name="event_passes_pass_check"),
)

# Endpoints the events are pushed to (Standard Webhooks). The signing secret is kept sealed with
# a key derived from REWARDS_SECRET_KEY (rewards/events/webhooks.py); `types` empty: every type.
# `position_*`: the webhook's place in the feed (a feed cursor): every event up to it was delivered
# or, having failed, is in webhook_deliveries (rewards/events/delivery.py).
webhooks = Table(
    "webhooks",
    metadata,
    _id(),
    Column("url", Text, nullable=False),
    Column("types", ARRAY(Text), nullable=False, server_default=text("'{}'")),
    Column("description", Text, nullable=False, server_default=text("''")),
    Column("secret_sealed", Text, nullable=False),
    Column("created_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
    Column("created_by_key_id", BigInteger, ForeignKey("api_keys.id", name="webhooks_created_by_key_id_fkey")),
    Column("position_pass", BigInteger, nullable=False),
    Column("position_tx", BigInteger, nullable=False),
    Column("position_id", BigInteger, nullable=False),
    CheckConstraint("url ~ '^https?://'", name="webhooks_url_check"),
)

# An event whose first attempt to a webhook failed: sent again on the retry schedule until a 2xx
# answers, then `failed` after the last attempt. (An event delivered at its first attempt leaves
# no row: the webhook's position moves past it.)
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    _id(),
    Column("webhook_id", BigInteger, ForeignKey("webhooks.id", name="webhook_deliveries_webhook_id_fkey",
                                                ondelete="CASCADE"), nullable=False),
    Column("event_id", BigInteger, ForeignKey("events.id", name="webhook_deliveries_event_id_fkey"), nullable=False),
    Column("status", Text, nullable=False, server_default=text("'pending'")),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    # pending: when it is due (an attempt under way leases it until then)
    Column("next_attempt_at", TIMESTAMPTZ),
    Column("last_attempt_at", TIMESTAMPTZ),
    Column("last_response_status", Integer),
    Column("last_error", Text),
    Column("delivered_at", TIMESTAMPTZ),
    Column("created_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
    # an event is handed to a webhook once
    UniqueConstraint("webhook_id", "event_id", name="webhook_deliveries_webhook_id_event_id_key"),
    CheckConstraint("status IN ('pending', 'delivered', 'failed')", name="webhook_deliveries_status_check"),
    CheckConstraint("attempts >= 0", name="webhook_deliveries_attempts_check"),
    CheckConstraint("(status = 'pending') = (next_attempt_at IS NOT NULL)", name="webhook_deliveries_check"),
    CheckConstraint("(status = 'delivered') = (delivered_at IS NOT NULL)", name="webhook_deliveries_check1"),
)
Index("webhook_deliveries_due", webhook_deliveries.c.next_attempt_at,
      postgresql_where=webhook_deliveries.c.status == "pending")
Index("webhook_deliveries_listed", webhook_deliveries.c.webhook_id, webhook_deliveries.c.status,
      webhook_deliveries.c.id)
