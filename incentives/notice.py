"""The notice paragraph: the good-faith estimate, in the words of the retailer's notice.

11 CCR §7016(b)(5) asks the notice of financial incentive for a good-faith estimate of the
value of the consumer's data and a description of the method used to calculate it; §7016(b)
also asks how to opt in and how to withdraw. §7080(b): a business that cannot calculate a
good-faith estimate may not offer the incentive, so with no estimate there is no paragraph:
`paragraph` refuses with `NoEstimate`.
"""

from __future__ import annotations

from datetime import date
from fractions import Fraction

from incentives.valuation import DAYS_PER_YEAR, NoticeFacts, Period, half_up
from rewards.errors import NoEstimate


def dollars(cents: int | Fraction) -> str:
    """$1,234.56 (exact cents rounded half up)."""
    whole = half_up(cents)
    return f"${whole // 100:,}.{whole % 100:02d}"


def short_dollars(cents: int) -> str:
    """$10 for whole dollars, $10.50 otherwise: how the notice names a Reward."""
    return f"${cents // 100:,}" if cents % 100 == 0 else dollars(cents)


def percent(share: Fraction) -> str:
    return f"{half_up(share * 100)}%"


def _day(d: date) -> str:
    return f"{d:%B} {d.day}, {d.year}"


def period_words(period: Period) -> str:
    """'in 2025' for a calendar year, otherwise 'from March 1, 2025 to March 31, 2025'."""
    if (period.start.month, period.start.day, period.end.month, period.end.day) == (1, 1, 12, 31) \
            and period.start.year == period.end.year:
        return f"in {period.start.year}"
    return f"from {_day(period.start)} to {_day(period.end)}"


def _refuse_without_estimate(facts: NoticeFacts, who: str) -> None:
    if facts.suppressed:
        raise NoEstimate(
            f"fewer {who}s than the minimum cell size were counted {period_words(facts.period)}: "
            "the estimate is withheld, so there is no notice to publish"
        )
    if facts.counted == 0:
        raise NoEstimate(f"no {who} was counted {period_words(facts.period)}: there is no estimate of value "
                         "(11 CCR §7080(b): no estimate, no incentive)")
    if not facts.annualized_cents:
        raise NoEstimate(
            f"the {facts.counted} {who}s counted {period_words(facts.period)} have a value of $0.00 under the "
            f"{facts.method} method: there is no estimate to state (11 CCR §7080(b)); choose another method "
            "or period"
        )


def _per_year(facts: NoticeFacts) -> str:
    return "" if facts.period.days == DAYS_PER_YEAR else ", and expressed per year"


def _rewards_paragraph(facts: NoticeFacts) -> str:
    reward = short_dollars(facts.reward_value_cents)
    when = period_words(facts.period)
    n = f"{facts.counted:,} member{'s' if facts.counted != 1 else ''}"
    basis = {
        "expenses": f"the value of the {reward} Rewards redeemed by the {n} enrolled {when}",
        "rewards_issued": f"the value of the {reward} Rewards issued to the {n} enrolled {when}",
        "expenses_plus_program": (
            f"the value of the {reward} Rewards redeemed by the {n} enrolled {when}, plus "
            f"{dollars(facts.program_expense_cents or 0)} of program operating expenses"
        ),
    }[facts.method]
    sentences = [
        "Westique Rewards is a financial incentive that we offer in exchange for the personal information "
        "you give us when you join and shop as a member.",
        f"In good faith, we estimate the value of a member's personal information to Westique at "
        f"{dollars(facts.annualized_cents or 0)} per member per year.",
        f"We calculated this estimate from the expenses of providing the program's incentive "
        f"({facts.regulation}): {basis}, divided by the number of members{_per_year(facts)}.",
    ]
    varies = [f"The value varies depending on the number of {reward} Rewards redeemed"]
    details = []
    if facts.share_zero:
        details.append(f"{percent(facts.share_zero)} of members redeemed none")
    if facts.p90_cents:
        details.append(f"one member in ten received {dollars(facts.p90_cents)} or more")
    sentences.append(varies[0] + (": " + ", while ".join(details) if details else "") + ".")
    base, card = facts.earning_per_100
    worth = Fraction(base * facts.reward_value_cents, facts.reward_threshold_point_cents)
    worth_card = Fraction(card * facts.reward_value_cents, facts.reward_threshold_point_cents)
    spend = (
        f"Every $100 of qualifying purchases earns {base // 100:,} points, worth {dollars(worth)} toward a "
        f"{reward} Reward ({card // 100:,} points, worth {dollars(worth_card)}, when paid with the Westique "
        "Credit Card)"
    )
    if facts.value_per_100_spend_cents is not None:
        spend += (f"; {when}, members redeemed {dollars(facts.value_per_100_spend_cents)} in Rewards for every "
                  "$100 of qualifying purchases")
    sentences.append(spend + ".")
    sentences.append(
        "To join, enroll at any Westique register or online and accept the program terms; membership is free."
    )
    sentences.append(
        "You may withdraw at any time by cancelling your membership at a register, online or through Guest "
        f"Services; when you do, points not yet converted to a Reward are forfeited and unredeemed {reward} "
        "Rewards are voided."
    )
    return " ".join(sentences)


def _mailing_paragraph(facts: NoticeFacts) -> str:
    when = period_words(facts.period)
    n = f"{facts.counted:,} subscriber{'s' if facts.counted != 1 else ''}"
    basis = {
        "expenses": f"the offer discounts redeemed by the {n} on our list {when}",
        "rewards_issued": f"the value of the offers sent to the {n} on our list {when}",
        "expenses_plus_program": (
            f"the offer discounts redeemed by the {n} on our list {when}, plus "
            f"{dollars(facts.program_expense_cents or 0)} of mailing list operating expenses"
        ),
    }[facts.method]
    sentences = [
        "Westique's email and text offers are a financial incentive that we offer in exchange for your email "
        "address or mobile number.",
        f"In good faith, we estimate the value of a subscriber's personal information to Westique at "
        f"{dollars(facts.annualized_cents or 0)} per subscriber per year.",
        f"We calculated this estimate from the expenses of providing the incentive ({facts.regulation}): "
        f"{basis}, divided by the number of subscribers{_per_year(facts)}.",
    ]
    details = []
    if facts.share_zero:
        details.append(f"{percent(facts.share_zero)} of subscribers redeemed no offer")
    if facts.p90_cents:
        details.append(f"one subscriber in ten received {dollars(facts.p90_cents)} or more")
    varies = "The value varies depending on the offers you receive and redeem"
    if details:
        varies += ": " + ", while ".join(details)
    if facts.value_per_100_spend_cents is not None:
        varies += (f"; {when}, subscribers saved {dollars(facts.value_per_100_spend_cents)} in offer discounts "
                   "for every $100 of qualifying purchases")
    sentences.append(varies + ".")
    sentences.append(
        "To subscribe, give your email address or mobile number at any Westique register or sign up online."
    )
    sentences.append(
        "You may unsubscribe at any time with the link in any of our emails, or by texting STOP in reply to "
        "any of our texts; a later sign-up subscribes you again."
    )
    return " ".join(sentences)


def paragraph(facts: NoticeFacts) -> str:
    """The notice paragraph for the program; refuses (`NoEstimate`, 422) when there is no estimate."""
    who = "member" if facts.program == "rewards" else "subscriber"
    _refuse_without_estimate(facts, who)
    return _rewards_paragraph(facts) if facts.program == "rewards" else _mailing_paragraph(facts)
