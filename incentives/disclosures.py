"""The program's disclosures: the stored words the notice and the report use.

An admin stores them with `PUT /v1/program/disclosures`; each call keeps a new version
(the report names the version its notice used), and a new install has version 1, written
by the migration from the program's own notice. Nothing the notice says is a constant in
code: the business's name, Guest Services' phone and email, the categories of personal
information, and the notice's sentences themselves, one list per element of 11 CCR
§7016(b), are all here. The sentences are templates: `{estimate}`, `{reward_value}`,
`{guest_services_phone}` and the other names in PLACEHOLDERS are filled in from the
report's figures, the rules in force and these disclosures (`incentives.notice`); `{{` is
a literal brace. A sentence that quotes a figure the report withholds (min_cell_size) or
does not have is left out.

Besides the notice, they hold what California's privacy policy and Colorado's loyalty
program rules (4 CCR 904-3, Rule 6.05(F)(1)) ask to be told at registration: sources and
purposes, whether personal data is sold or processed for targeted advertising and to which
categories of third parties, whether it goes to data brokers, the program's partners and
their benefits, what deleting one's data does to the benefits, and whether any benefit
requires sensitive data.
"""

from __future__ import annotations

import string
from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from rewards.schemas import Inbound

Program = Literal["rewards", "mailing_list"]
MethodCode = Literal["expenses", "rewards_issued", "expenses_plus_program"]
Words = Annotated[str, Meta(min_length=1, max_length=2000, pattern=r"^[^\x00-\x1f\x7f]+$")]
Short = Annotated[str, Meta(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]
Sentences = Annotated[list[Words], Meta(min_length=1, max_length=20)]
SomeWords = Annotated[list[Short], Meta(max_length=50)]


class Strict(Inbound, frozen=True, kw_only=True):
    pass


class GuestServices(Strict, frozen=True, kw_only=True):
    phone: Short
    email: Short
    hours: Short | None = None


class Category(Strict, frozen=True, kw_only=True):
    """A category of personal information, the examples that make it concrete, and who it concerns."""

    name: Short
    examples: Words
    programs: Annotated[list[Program], Meta(min_length=1, max_length=2)]


class SaleAndSharing(Strict, frozen=True, kw_only=True):
    sold: bool
    shared_for_targeted_advertising: bool
    categories_sold_or_shared: SomeWords = msgspec.field(default_factory=list)
    third_party_categories: SomeWords = msgspec.field(default_factory=list)  # who receives personal information, sold or not
    data_brokers: bool = False  # whether personal information goes to data brokers


class Partner(Strict, frozen=True, kw_only=True):
    name: Short
    benefits: Words
    categories: SomeWords = msgspec.field(default_factory=list)


class ColoradoLoyalty(Strict, frozen=True, kw_only=True):
    """4 CCR 904-3, Rule 6.05(F)(1): (a) and (b) are `sale_and_sharing`; (c) to (e) are here."""

    partners: Annotated[list[Partner], Meta(max_length=50)] = msgspec.field(default_factory=list)
    deletion_impact: Words
    sensitive_data: Words


class Labels(Strict, frozen=True, kw_only=True):
    """How the notice names what the rules store as codes (`gift_card`: "gift cards")."""

    categories: dict[Short, Short] = msgspec.field(default_factory=dict)
    tenders: dict[Short, Short] = msgspec.field(default_factory=dict)


class NoticeTemplates(Strict, frozen=True, kw_only=True):
    """The notice paragraph of one program, one list of sentences per element of 11 CCR §7016(b)."""

    summary: Sentences  # (b)(1) a succinct summary of the incentive
    material_terms: Sentences  # (b)(2) its material terms, the categories of personal information
    opt_in: Sentences  # (b)(3) how to opt in
    withdrawal: Sentences  # (b)(4) the right to withdraw at any time, and how
    estimate: Sentences  # (b)(5)(A) the good-faith estimate of the value of the data
    method: dict[MethodCode, Sentences]  # (b)(5)(B) the method, by method used
    reasonably_related: Sentences  # (b)(5) how the incentive is reasonably related to that value


class Notices(Strict, frozen=True, kw_only=True):
    rewards: NoticeTemplates
    mailing_list: NoticeTemplates


class Disclosures(Strict, frozen=True, kw_only=True):
    business_name: Short
    program_names: dict[Program, Short]
    guest_services: GuestServices
    categories: Annotated[list[Category], Meta(min_length=1, max_length=30)]
    sources: Annotated[list[Words], Meta(min_length=1, max_length=30)]
    purposes: Annotated[list[Words], Meta(min_length=1, max_length=30)]
    sale_and_sharing: SaleAndSharing
    colorado_loyalty: ColoradoLoyalty
    labels: Labels = msgspec.field(default_factory=Labels)
    notice: Notices


class DisclosuresOut(msgspec.Struct, kw_only=True):
    version: int
    created_at: datetime
    disclosures: Disclosures


class NoticeWords(string.Template):
    """`{name}` placeholders, `{{` for a literal brace: string.Template with braces as delimiters."""

    delimiter = "{"
    # a string: string.Template compiles it (a compiled pattern would be refused)
    pattern = r"""\{(?:(?P<escaped>\{)|(?P<named>[a-z_][a-z0-9_]*)\}|(?P<braced>(?!))|(?P<invalid>))"""  # type: ignore[assignment]


COMMON = frozenset({
    "business_name", "program_name", "guest_services_phone", "guest_services_email", "categories", "estimate",
    "counted", "period", "member_years", "regulation", "program_expense", "share_zero", "p90",
    "value_per_100_spend",
})
REWARDS_ONLY = frozenset({
    "reward_value", "threshold_points", "base_earning", "card_bonus", "bonus_tenders", "validity_days", "excluded",
    "points_per_100", "points_per_100_card", "worth_per_100", "worth_per_100_card",
})
PLACEHOLDERS: dict[str, frozenset[str]] = {"rewards": COMMON | REWARDS_ONLY, "mailing_list": COMMON}
# what an element cannot do without: the estimate states it, the material terms name the
# categories, withdrawal says how to reach Guest Services, the method cites the regulation
REQUIRED: dict[str, frozenset[str]] = {
    "estimate": frozenset({"estimate"}),
    "material_terms": frozenset({"categories"}),
    "withdrawal": frozenset({"guest_services_phone", "guest_services_email"}),
    "method": frozenset({"regulation"}),
}


def problems(disclosures: Disclosures) -> list[tuple[str, str]]:
    """What is wrong with the disclosures, as (field, message); empty when they can be stored."""
    found: list[tuple[str, str]] = []
    for program in ("rewards", "mailing_list"):
        if program not in disclosures.program_names:
            found.append((f"program_names.{program}", f"program_names names the {program} program"))
        if not any(program in c.programs for c in disclosures.categories):
            found.append(("categories", f"at least one category of personal information concerns {program}"))
        templates: NoticeTemplates = getattr(disclosures.notice, program)
        elements = {name: getattr(templates, name) for name in (
            "summary", "material_terms", "opt_in", "withdrawal", "estimate", "reasonably_related")}
        for code in ("expenses", "rewards_issued", "expenses_plus_program"):
            if code not in templates.method:
                found.append((f"notice.{program}.method", f"the notice words every method, {code} too"))
            else:
                elements[f"method.{code}"] = templates.method[code]
        for element, sentences in elements.items():
            where = f"notice.{program}.{element}"
            used: set[str] = set()
            for sentence in sentences:
                words = NoticeWords(sentence)
                if not words.is_valid():
                    found.append((where, f"a lone brace in {sentence!r}: write {{{{ for a brace"))
                    continue
                names = set(words.get_identifiers())
                unknown = names - PLACEHOLDERS[program]
                if unknown:
                    found.append((where, f"unknown placeholder {{{sorted(unknown)[0]}}}; known: "
                                         f"{', '.join(sorted(PLACEHOLDERS[program]))}"))
                used |= names
            missing = REQUIRED.get(element.partition(".")[0], frozenset()) - used
            if missing:
                found.append((where, f"{element} must state {{{sorted(missing)[0]}}}"))
    sharing = disclosures.sale_and_sharing
    if (sharing.sold or sharing.shared_for_targeted_advertising) != bool(sharing.categories_sold_or_shared):
        found.append(("sale_and_sharing.categories_sold_or_shared",
                      "name the categories sold or shared exactly when personal information is sold or shared"))
    return found
