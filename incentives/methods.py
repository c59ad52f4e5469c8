"""The valuation methods: what each counts, and the paragraph of 11 CCR §7081(a) it falls under.

§7081(a) lists what a business "shall consider" when it values consumers' data: (1) the
marginal value, (2) the average value and (3) the aggregate value divided by the number of
consumers, of the sale, collection or deletion of their data; (4) revenue and (5) expenses
related to the sale, collection or retention of personal information; (6) expenses related
to the offer, provision or imposition of a financial incentive; (7) profit; and (8) "any
other practical and reasonably reliable method of calculation used in good faith".

- `expenses` counts what the incentive cost: Rewards redeemed (offer discounts used, for
  the mailing list). A Reward that expires unused costs nothing, so it is not counted: (a)(6).
- `rewards_issued` counts the face value of the incentive given out: every Reward issued
  (every offer sent), including those that expire unused. That is not an expense, so it is
  not (a)(6): it is the value the business puts on the data by what it offers for it, a
  practical method used in good faith, (a)(8).
- `expenses_plus_program` adds to the redeemed Rewards the program's operating expense that
  the business supplies (systems, staff, communications): expenses of providing the
  incentive, (a)(6), and of collecting and keeping the members' information, (a)(5).

These descriptions are the report's own documentation of its arithmetic, for compliance
and counsel; the notice's consumer-facing words come from the stored disclosures.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Method:
    code: str
    regulation: str
    basis: str  # what the value of a member is, in a few words (for labels)
    description: dict[str, str]  # by program


METHODS_BY_CODE: dict[str, Method] = {
    "expenses": Method(
        code="expenses",
        regulation="11 CCR §7081(a)(6)",
        basis="expenses of providing the incentive",
        description={
            "rewards": (
                "Expenses related to the provision of the financial incentive (11 CCR §7081(a)(6)): the face "
                "value of the Rewards that members redeemed in the period, the only Rewards that cost the "
                "business anything. Rewards issued but not redeemed, and Rewards that expired unused, are not "
                "counted. Every member enrolled at any time in the period counts once, at $0 if they redeemed "
                "nothing; the annualised figure divides the total by the members' time enrolled in the period "
                "(member-years)."
            ),
            "mailing_list": (
                "Expenses related to the provision of the financial incentive (11 CCR §7081(a)(6)): the offer "
                "discounts that subscribers used on purchases in the period, matched to offers the business "
                "sent. A discount counts only when the purchase names a member, so a subscriber who is not a "
                "member counts at $0. Every subscriber subscribed at any time in the period counts once (a "
                "member with an email and a text subscription once); the annualised figure divides the total "
                "by the subscribers' time subscribed in the period (subscriber-years)."
            ),
        },
    ),
    "rewards_issued": Method(
        code="rewards_issued",
        regulation="11 CCR §7081(a)(8)",
        basis="face value of the incentive offered",
        description={
            "rewards": (
                "Another practical and reasonably reliable method used in good faith (11 CCR §7081(a)(8)): the "
                "face value of every Reward issued to members in the period, whether it was redeemed, is still "
                "open, or expired unused. It is not an expense (a Reward that expires unused costs nothing): it "
                "values the data at what the business offers for it, and is an upper bound of what the "
                "incentive costs. Every member enrolled at any time in the period counts once, at $0 if they "
                "earned no Reward; the annualised figure divides by member-years."
            ),
            "mailing_list": (
                "Another practical and reasonably reliable method used in good faith (11 CCR §7081(a)(8)): the "
                "face value of every offer sent to subscribers in the period, whether or not it was used. It "
                "is not an expense (an offer nobody uses costs nothing): it values the data at what the "
                "business offers for it. Every subscriber subscribed at any time in the period counts once; "
                "the annualised figure divides by subscriber-years."
            ),
        },
    ),
    "expenses_plus_program": Method(
        code="expenses_plus_program",
        regulation="11 CCR §7081(a)(5) and (a)(6)",
        basis="expenses of providing the incentive and of running the program",
        description={
            "rewards": (
                "Expenses related to the provision of the financial incentive (11 CCR §7081(a)(6)) and to the "
                "collection and retention of members' personal information (§7081(a)(5)): the face value of the "
                "Rewards redeemed in the period, plus the program's operating expense for the period as the "
                "business supplied it (the systems, staff and communications that collect and keep members' "
                "information and provide the incentive), shared equally among the members enrolled at any time "
                "in the period; the annualised figure divides the total by member-years."
            ),
            "mailing_list": (
                "Expenses related to the provision of the financial incentive (11 CCR §7081(a)(6)) and to the "
                "collection and retention of subscribers' personal information (§7081(a)(5)): the offer "
                "discounts subscribers used in the period, plus the mailing list's operating expense for the "
                "period as the business supplied it, shared equally among the subscribers subscribed at any "
                "time in the period; the annualised figure divides the total by subscriber-years."
            ),
        },
    ),
}
METHODS: tuple[str, ...] = tuple(METHODS_BY_CODE)
