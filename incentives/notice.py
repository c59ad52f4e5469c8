"""The notice paragraph: the stored disclosures' sentences, filled in with the report's figures.

11 CCR §7016(b) asks the notice of financial incentive for (1) a succinct summary of the
incentive, (2) its material terms, including the categories of personal information it
implicates and the value of the consumer's data, (3) how to opt in, (4) the right to
withdraw at any time and how, and (5) how the incentive is reasonably related to the value
of the data, with (A) a good-faith estimate of that value and (B) a description of the
method used to calculate it. The words of each element come from the stored disclosures
(`incentives.disclosures`); this module only supplies the figures they quote: the
estimate, the program's own numbers from the rules in force ($10 per 300 points, the card
bonus, the expiry, what does not qualify), the categories, Guest Services' phone and email.

The report withholds the paragraph (`notice_withheld`) when there is no estimate to state;
this module is then not called.
"""

from __future__ import annotations

from fractions import Fraction

from incentives.disclosures import Disclosures, NoticeTemplates, NoticeWords
from incentives.valuation import NoticeFacts
from incentives.words import dollars, listing, percent, period_words, short_dollars
from rewards import rules as program_rules
from rewards.rules import Rules

ELEMENTS = ("summary", "material_terms", "opt_in", "withdrawal", "estimate", "method", "reasonably_related")


def _points(point_cents: int) -> str:
    whole, part = divmod(point_cents, 100)
    return f"{whole:,}" if not part else f"{whole:,}.{part:02d}"


def _earning(points: int) -> str:
    return f"{points:,} point{'' if points == 1 else 's'}"


def categories(disclosures: Disclosures, program: str) -> str:
    """The categories of personal information the program uses, with their examples."""
    return "; ".join(f"{c.name} ({c.examples})" for c in disclosures.categories if program in c.programs)


def rules_words(version: Rules, disclosures: Disclosures) -> dict[str, str]:
    """The program's own numbers, as the notice quotes them, from the rules in force."""
    labels = disclosures.labels
    lines = [("merchandise", 10_000)]
    base = program_rules.earning(version, lines, [("cash", 10_000)]).point_cents
    tender = version.bonus_tenders[0] if version.bonus_tenders else "westique_credit_card"
    card = program_rules.earning(version, lines, [(tender, 10_000)]).point_cents
    rate = Fraction(version.reward_value_cents, version.reward_threshold_point_cents)
    return {
        "reward_value": short_dollars(version.reward_value_cents),
        "threshold_points": f"{version.reward_threshold_points:,}",
        "base_earning": _earning(version.points_per_dollar),
        "card_bonus": _earning(version.card_bonus_points_per_dollar),
        "bonus_tenders": listing([labels.tenders.get(t, t.replace("_", " ")) for t in version.bonus_tenders]),
        "validity_days": f"{version.reward_validity_days:,}",
        "excluded": listing([labels.categories.get(c, c.replace("_", " ")) for c in version.excluded_categories]),
        "points_per_100": _points(base),
        "points_per_100_card": _points(card),
        "worth_per_100": dollars(base * rate),
        "worth_per_100_card": dollars(card * rate),
    }


def placeholders(facts: NoticeFacts) -> dict[str, str | None]:
    """Every placeholder's words; None for a figure that is withheld or does not exist."""
    d = facts.disclosures
    values: dict[str, str | None] = {
        "business_name": d.business_name,
        "program_name": d.program_names.get(facts.program),  # type: ignore[call-overload]
        "guest_services_phone": d.guest_services.phone,
        "guest_services_email": d.guest_services.email,
        "categories": categories(d, facts.program),
        "estimate": None if facts.annualized_cents is None else dollars(facts.annualized_cents),
        "counted": f"{facts.counted:,}",
        "period": period_words(facts.period.start, facts.period.end),
        "member_years": f"{float(facts.member_years):,.2f}",
        "regulation": facts.regulation,
        "program_expense": None if facts.program_expense_cents is None else dollars(facts.program_expense_cents),
        "share_zero": None if facts.share_zero is None else percent(facts.share_zero),
        "p90": None if not facts.p90_cents else dollars(facts.p90_cents),
        "value_per_100_spend": None if facts.value_per_100_spend_cents is None
        else dollars(facts.value_per_100_spend_cents),
    }
    if facts.program == "rewards":
        values |= rules_words(facts.rules, d)
    return values


def _sentences(templates: list[str], values: dict[str, str | None]) -> list[str]:
    """Each sentence filled in; a sentence quoting a figure that is None is left out."""
    out = []
    for template in templates:
        words = NoticeWords(template)
        names = words.get_identifiers()
        if all(values.get(name) is not None for name in names):
            out.append(words.substitute({name: values[name] for name in names}))
    return out


def elements(facts: NoticeFacts) -> dict[str, list[str]]:
    """The paragraph's sentences, by element of §7016(b)."""
    templates: NoticeTemplates = getattr(facts.disclosures.notice, facts.program)
    values = placeholders(facts)
    found = {}
    for name in ELEMENTS:
        chosen = templates.method[facts.method] if name == "method" else getattr(templates, name)  # type: ignore[index]
        found[name] = _sentences(chosen, values)
    return found


def paragraph(facts: NoticeFacts) -> str:
    """The notice paragraph for the program, its elements in the order of §7016(b)."""
    return " ".join(sentence for sentences in elements(facts).values() for sentence in sentences)

