"""The program's disclosures and documents: the stored words of the notice and the report,
and the published versions of the program terms and of the notice of financial incentive that
enrollment consents to. Both append-only: a change is a new version, and a consent points at the
text it accepted. A new install gets the defaults, taken from the program's own notice (the
retailer's privacy policy took effect on 2023-10-30), so enrollment works with no setup.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

POLICY_DATE = datetime(2023, 10, 30, tzinfo=timezone(timedelta(hours=-7)))

DEFAULT_DISCLOSURES = json.loads(r"""{
  "business_name": "Westique",
  "program_names": {
    "rewards": "Westique Rewards",
    "mailing_list": "Westique email and text offers"
  },
  "guest_services": {
    "phone": "1-800-555-0142",
    "email": "guestservices@westique.example",
    "hours": "every day, 8 AM to 8 PM Pacific time"
  },
  "categories": [
    {
      "name": "identifiers",
      "examples": "name, email address, phone number and membership card number",
      "programs": [
        "rewards"
      ]
    },
    {
      "name": "personal characteristics",
      "examples": "birth date, used to apply the program's age limits, and US state of residence",
      "programs": [
        "rewards"
      ]
    },
    {
      "name": "commercial information",
      "examples": "purchase history: the items, amounts, stores, dates and ways of payment of your purchases and returns, and your points and Rewards",
      "programs": [
        "rewards"
      ]
    },
    {
      "name": "identifiers",
      "examples": "email address or mobile phone number",
      "programs": [
        "mailing_list"
      ]
    },
    {
      "name": "commercial information",
      "examples": "the offers sent to you, and the offer codes used on purchases that name your membership",
      "programs": [
        "mailing_list"
      ]
    }
  ],
  "sources": [
    "you, when you enroll or subscribe at a register, online or through Guest Services",
    "our registers and web shop, when you shop, return goods or redeem a Reward or an offer",
    "your mobile carrier's messages, when you text STOP or START"
  ],
  "purposes": [
    "running the program: crediting points, issuing and redeeming Rewards, answering your questions",
    "sending the offers you subscribed to",
    "applying the program's age limits and preventing fraud",
    "estimating the value of members' information for this notice"
  ],
  "sale_and_sharing": {
    "sold": false,
    "shared_for_targeted_advertising": false,
    "categories_sold_or_shared": [],
    "third_party_categories": [
      "service providers that host and operate our systems",
      "email and text message senders, for the offers you subscribed to"
    ],
    "data_brokers": false
  },
  "colorado_loyalty": {
    "partners": [],
    "deletion_impact": "Points and Rewards can only be kept for an identified member, so deleting your personal information ends your membership: points not yet converted to a Reward are forfeited and unredeemed Rewards are voided. We tell you at least 24 hours before, and you can use your Rewards until then.",
    "sensitive_data": "The program collects no sensitive data, and no benefit requires it."
  },
  "labels": {
    "categories": {
      "gift_card": "gift cards",
      "tax": "tax",
      "shipping": "shipping"
    },
    "tenders": {
      "westique_credit_card": "the Westique Credit Card"
    }
  },
  "notice": {
    "rewards": {
      "summary": [
        "{program_name} is a free loyalty program that {business_name} offers in exchange for the personal information you give us when you join and shop as a member.",
        "Members earn {base_earning} for every $1 of qualifying purchases, plus a bonus of {card_bonus} for every $1 paid with {bonus_tenders}, and receive a {reward_value} Reward for every {threshold_points} points."
      ],
      "material_terms": [
        "To run the program we collect and use these categories of personal information: {categories}.",
        "Rewards are issued automatically and expire {validity_days} days after they are issued.",
        "Purchases of {excluded} do not earn points, and neither does the part of a purchase paid with a Reward."
      ],
      "opt_in": [
        "To join, enroll at any {business_name} register, online or through Guest Services, and accept the program terms; membership is free."
      ],
      "withdrawal": [
        "You may withdraw at any time by cancelling your membership at a register, online, or by calling Guest Services at {guest_services_phone} or writing to {guest_services_email}; when you do, points not yet converted to a Reward are forfeited and unredeemed Rewards are voided."
      ],
      "estimate": [
        "In good faith, we estimate the value of a member's personal information to {business_name} at {estimate} per member per year.",
        "The value varies depending on the number of {reward_value} Rewards redeemed."
      ],
      "method": {
        "expenses": [
          "We calculated this estimate from the expenses of providing the incentive ({regulation}): the face value of the {reward_value} Rewards that the {counted} members enrolled {period} redeemed, divided by the time they were enrolled ({member_years} member-years).",
          "Of those members, {share_zero} redeemed no Reward, and one in ten received {p90} or more."
        ],
        "rewards_issued": [
          "We calculated this estimate from the face value of the incentive we offer ({regulation}): every {reward_value} Reward issued to the {counted} members enrolled {period}, including Rewards that expired unused, divided by the time they were enrolled ({member_years} member-years).",
          "It is not an expense, since a Reward that is never used costs us nothing: it values your information at what we offer for it.",
          "Of those members, {share_zero} were issued no Reward, and one in ten was issued {p90} or more."
        ],
        "expenses_plus_program": [
          "We calculated this estimate from expenses ({regulation}): the face value of the {reward_value} Rewards that the {counted} members enrolled {period} redeemed, plus {program_expense} of the program's operating expenses (the systems, staff and communications that collect and keep members' information and provide the Rewards), divided by the time they were enrolled ({member_years} member-years)."
        ]
      },
      "reasonably_related": [
        "We consider the Rewards reasonably related to the value of your information because our estimate is built from them: every $100 of qualifying purchases earns {points_per_100} points, worth {worth_per_100} toward a {reward_value} Reward ({points_per_100_card} points, worth {worth_per_100_card}, when paid with {bonus_tenders}).",
        "Over the period, members redeemed {value_per_100_spend} in Rewards for every $100 of qualifying purchases."
      ]
    },
    "mailing_list": {
      "summary": [
        "{program_name} are a financial incentive that {business_name} offers in exchange for your email address or mobile number: subscribers receive offers with discount codes to use on their purchases."
      ],
      "material_terms": [
        "We use these categories of personal information: {categories}.",
        "Each offer states its own value and expiry, and a discount counts on a purchase that names its code."
      ],
      "opt_in": [
        "To subscribe, give your email address or mobile number at any {business_name} register, or sign up online."
      ],
      "withdrawal": [
        "You may unsubscribe at any time with the link in any of our emails, by texting STOP in reply to any of our texts, or by calling Guest Services at {guest_services_phone} or writing to {guest_services_email}; a later sign-up subscribes you again."
      ],
      "estimate": [
        "In good faith, we estimate the value of a subscriber's personal information to {business_name} at {estimate} per subscriber per year.",
        "The value varies depending on the offers you receive and use."
      ],
      "method": {
        "expenses": [
          "We calculated this estimate from the expenses of providing the incentive ({regulation}): the offer discounts that the {counted} subscribers on our list {period} used on purchases we could match to them, divided by the time they were subscribed ({member_years} subscriber-years).",
          "Of those subscribers, {share_zero} had no offer discount on a purchase matched to them, and one in ten saved {p90} or more."
        ],
        "rewards_issued": [
          "We calculated this estimate from the face value of the incentive we offer ({regulation}): every offer sent to the {counted} subscribers on our list {period}, whether or not it was used, divided by the time they were subscribed ({member_years} subscriber-years).",
          "It is not an expense, since an offer that is never used costs us nothing: it values your information at what we offer for it.",
          "Of those subscribers, {share_zero} were sent no offer, and one in ten was sent offers worth {p90} or more."
        ],
        "expenses_plus_program": [
          "We calculated this estimate from expenses ({regulation}): the offer discounts that the {counted} subscribers on our list {period} used on purchases we could match to them, plus {program_expense} of the mailing list's operating expenses, divided by the time they were subscribed ({member_years} subscriber-years)."
        ]
      },
      "reasonably_related": [
        "We consider the offers reasonably related to the value of your information because our estimate is built from the offers themselves.",
        "Over the period, subscribers saved {value_per_100_spend} in offer discounts for every $100 of their qualifying purchases."
      ]
    }
  }
}""")

DEFAULT_TERMS = """Westique Rewards program terms (version 2023-10-30)

1. Membership is free and open to residents of the United States aged 13 or over; members aged 13 to 17 need a parent's or guardian's consent, and residents of Maine must be 18 or over.
2. Members earn 1 point for every $1 of qualifying purchases, counted to the cent, and 1 bonus point for every $1 paid with the Westique Credit Card. Gift cards, tax and shipping do not qualify, and neither does the part of a purchase paid with a Reward.
3. Every 300 points are converted automatically into a $10 Reward, which expires 90 days after it is issued and can be used once, in store or online.
4. Returned goods take back the points they earned; if that takes the balance below zero, unredeemed Rewards are voided first.
5. You may cancel your membership at any time at a register, online or through Guest Services (1-800-555-0142, guestservices@westique.example). Points not yet converted are forfeited and unredeemed Rewards are voided when you cancel.
6. Westique may change these terms by publishing a new version; a change never takes away points or Rewards already earned.
"""

DEFAULT_NOTICE = """Notice of Financial Incentive: Westique Rewards and Westique email and text offers (version 2023-10-30)

Westique Rewards is a free loyalty program that Westique offers in exchange for the personal information you give us when you join and shop as a member: your name, email address and phone number, your birth date and state of residence, and your purchase history with us. Members earn 1 point per $1 of qualifying purchases and 1 bonus point per $1 paid with the Westique Credit Card, and receive a $10 Reward for every 300 points; Rewards expire 90 days after they are issued, and gift cards, tax and shipping do not earn points. Our email and text offers are a financial incentive offered in exchange for your email address or mobile number.

To join, enroll at any Westique register, online or through Guest Services and accept the program terms; to subscribe to offers, give your email address or mobile number at a register or online. You may withdraw at any time: cancel your membership at a register, online, or through Guest Services at 1-800-555-0142 or guestservices@westique.example; unsubscribe from offers with the link in any email or by texting STOP.

We estimate the value of your personal information in good faith from the expenses of providing the incentive (11 CCR §7081(a)(6)): the value of the $10 Rewards that members redeem, and of the offer discounts that subscribers use. The value varies depending on the number of $10 Rewards redeemed and the offers used; we publish the current estimate, per member per year, with this notice. The Rewards and offers are reasonably related to that value because our estimate is built from them.
"""


def upgrade() -> None:
    op.create_table(
        "program_disclosures",
        sa.Column("version", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("body", postgresql.JSONB(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.CheckConstraint("version > 0", name="program_disclosures_version_check"),
    )
    op.execute("CREATE TRIGGER program_disclosures_append_only BEFORE UPDATE OR DELETE ON program_disclosures "
               "FOR EACH ROW EXECUTE FUNCTION ledger_is_append_only()")
    op.create_table(
        "program_documents",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), primary_key=True),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("version", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("sha256", sa.Text(), nullable=False),  # of the text's UTF-8: what a consent accepted
        sa.Column("effective_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.UniqueConstraint("kind", "version", name="program_documents_kind_version_key"),
        sa.CheckConstraint("kind IN ('terms', 'notice')", name="program_documents_kind_check"),
        sa.CheckConstraint("version ~ '^[A-Za-z0-9._-]{1,32}$'", name="program_documents_version_check"),
        sa.CheckConstraint("length(text) > 0", name="program_documents_text_check"),
        sa.CheckConstraint("sha256 ~ '^[0-9a-f]{64}$'", name="program_documents_sha256_check"),
    )
    op.execute("CREATE TRIGGER program_documents_append_only BEFORE UPDATE OR DELETE ON program_documents "
               "FOR EACH ROW EXECUTE FUNCTION ledger_is_append_only()")
    # the texts a consent accepted (NULL for consents given before documents were published)
    op.add_column("consents", sa.Column("terms_document_id", sa.BigInteger(), sa.ForeignKey(
        "program_documents.id", name="consents_terms_document_id_fkey")))
    op.add_column("consents", sa.Column("notice_document_id", sa.BigInteger(), sa.ForeignKey(
        "program_documents.id", name="consents_notice_document_id_fkey")))

    # the body as JSON text cast to jsonb, so the revision also writes out with --sql
    disclosures = sa.table("program_disclosures", sa.column("version", sa.Integer()),
                           sa.column("body", postgresql.JSONB()), sa.column("created_at", sa.DateTime(timezone=True)))
    op.execute(disclosures.insert().values(
        version=1, body=sa.cast(sa.literal(json.dumps(DEFAULT_DISCLOSURES), sa.Text()), postgresql.JSONB()),
        created_at=POLICY_DATE))
    documents = sa.table("program_documents", sa.column("kind", sa.Text()), sa.column("version", sa.Text()),
                         sa.column("text", sa.Text()), sa.column("sha256", sa.Text()),
                         sa.column("effective_from", sa.DateTime(timezone=True)),
                         sa.column("published_at", sa.DateTime(timezone=True)))
    op.bulk_insert(documents, [
        {"kind": kind, "version": "2023-10-30", "text": text, "sha256": hashlib.sha256(text.encode()).hexdigest(),
         "effective_from": POLICY_DATE, "published_at": POLICY_DATE}
        for kind, text in (("terms", DEFAULT_TERMS), ("notice", DEFAULT_NOTICE))])


def downgrade() -> None:
    op.drop_column("consents", "notice_document_id")
    op.drop_column("consents", "terms_document_id")
    op.drop_table("program_documents")
    op.drop_table("program_disclosures")
