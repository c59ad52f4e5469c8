"""The report's formats: JSON, CSV (figures as key/value rows, then the distribution), and
an HTML page for counsel (a Jinja template, incentives/templates/counsel.html), its chart
drawn as inline SVG: no external assets, no script, the page is complete as sent."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from html import escape
from typing import Any

import jinja2
import msgspec
from markupsafe import Markup

from incentives.suppression import Bin
from incentives.valuation import Valuation
from incentives import notice
from incentives.methods import METHODS_BY_CODE
from incentives.words import day, dollars, instant, period_words

FORMATS = ("json", "csv", "html")
MEDIA_TYPES = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "html": "text/html; charset=utf-8",
}
BAR_COLOUR = "#2f6f9f"
PROGRAM_NAMES = {"rewards": "Westique Rewards", "mailing_list": "Westique email and text offers"}


def to_json(document: msgspec.Struct, *, indent: int = 2) -> bytes:
    return msgspec.json.format(msgspec.json.encode(document), indent=indent) + b"\n"


def flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """Dotted keys and their values as text: `members.counted`, `by_segment.others.p90`, ..."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from flatten(item, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list):
        yield prefix, " ".join(str(v) for v in value)
    elif value is None:
        yield prefix, ""
    elif isinstance(value, bool):
        yield prefix, "true" if value else "false"
    else:
        yield prefix, str(value)


def to_csv(document: msgspec.Struct, distribution: list[Bin] | None = None) -> bytes:
    """The figures as `key,value` rows; then, after an empty row, the distribution's bins."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["key", "value"])
    writer.writerows(flatten(msgspec.to_builtins(document)))
    if distribution is not None:
        writer.writerow([])
        writer.writerow(["from_cents", "to_cents", "members"])
        writer.writerows([b.from_cents, "" if b.to_cents is None else b.to_cents, b.members] for b in distribution)
    return out.getvalue().encode()


# --- HTML ----------------------------------------------------------------------------------

STYLE = """
:root { --ink: #1c2430; --muted: #5b6573; --rule: #d8dde3; --accent: #2f6f9f; --warn: #8a5a00; --stop: #9b2c2c; }
* { box-sizing: border-box; }
body { font: 15px/1.5 'DejaVu Sans', 'Helvetica Neue', Arial, sans-serif; color: var(--ink); margin: 0 auto; max-width: 60em;
       padding: 2.2em 2em 3em; background: #fff; }
h1 { font-size: 1.85em; margin: .1em 0 .2em; line-height: 1.2; }
h2 { font-size: 1.2em; margin: 1.8em 0 .6em; padding-bottom: .25em; border-bottom: 2px solid var(--ink); }
h3 { font-size: 1em; margin: 1.2em 0 .4em; }
.kicker { text-transform: uppercase; letter-spacing: .08em; font: 600 .72em/1.4 'DejaVu Sans', Arial, sans-serif;
          color: var(--accent); margin: 0; }
.sub, .muted, figcaption, caption { color: var(--muted); }
.sub { margin: 0 0 1.4em; }
.masthead { border-bottom: 1px solid var(--rule); margin-bottom: 1.2em; }
.headline { display: flex; gap: 2em; align-items: center; border: 1px solid var(--rule); border-left: 6px solid var(--accent);
            padding: 1em 1.4em; background: #f6f9fc; }
.headline.withheld { border-left-color: var(--stop); background: #fbf6f6; }
.figure { min-width: 13em; } .figure strong { display: block; font-size: 2.3em; line-height: 1.1; }
.figure .label { display: block; font: 600 .75em 'DejaVu Sans', Arial, sans-serif; text-transform: uppercase;
                 letter-spacing: .06em; color: var(--muted); }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .2em 1em; margin: 0; font-size: .95em; }
dl.facts dt { color: var(--muted); } dl.facts dd { margin: 0; }
.callout { border: 1px solid; border-left-width: 6px; padding: .6em 1.2em; margin: 1.2em 0; }
.callout h2 { border: 0; margin: .3em 0; font-size: 1.05em; }
.callout.warn { border-color: #e7c77d; border-left-color: var(--warn); background: #fffaf0; }
.callout.stop { border-color: #e2a9a9; border-left-color: var(--stop); background: #fdf4f4; }
.callout ul { margin: .3em 0 .5em; padding-left: 1.2em; }
.notice { border: 2px solid var(--ink); padding: .9em 1.2em; background: #fcfcfc; }
.notice p { margin: 0; }
table { border-collapse: collapse; width: 100%; margin: .5em 0 1em; font-size: .93em; }
caption { text-align: left; font-style: italic; padding-bottom: .3em; }
th, td { text-align: left; padding: .3em .6em; border-bottom: 1px solid var(--rule); vertical-align: top; }
thead th { border-bottom: 2px solid var(--ink); font-weight: 600; }
tbody th { font-weight: normal; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.elements th[scope=row] { width: 14em; }
.columns { display: grid; grid-template-columns: 1fr 1fr; gap: 0 2em; }
ul.plain { padding-left: 1.2em; margin: .3em 0; } ul.plain li { margin: .2em 0; }
.digest { font-family: 'DejaVu Sans Mono', monospace; font-size: .8em; word-break: break-all; }
figure { margin: .6em 0 1em; } svg.distribution { max-width: 100%; height: auto; }
.signoff .lines { display: grid; grid-template-columns: 2fr 1fr; gap: 2.2em 2em; margin-top: 2.2em; }
.signoff .lines div { display: flex; flex-direction: column; font-size: .85em; color: var(--muted); }
.signoff .line { border-bottom: 1px solid var(--ink); height: 1.6em; margin-bottom: .3em; }
footer { margin-top: 2.5em; padding-top: .6em; border-top: 1px solid var(--rule); color: var(--muted); font-size: .8em; }
@media print { body { padding: 0; max-width: none; } h2 { break-after: avoid; }
               figure, table, .callout, .signoff { break-inside: avoid; } }
"""

ELEMENT_LABELS = {
    "summary": "(b)(1) Summary of the incentive",
    "material_terms": "(b)(2) Material terms and categories of personal information",
    "opt_in": "(b)(3) How to opt in",
    "withdrawal": "(b)(4) Right to withdraw, and how",
    "estimate": "(b)(5)(A) Good-faith estimate of the value",
    "method": "(b)(5)(B) Method of calculation",
    "reasonably_related": "(b)(5) Why the incentive is reasonably related to the value",
}
WITHHELD_LABELS = {
    "chart": "the chart's small bars (merged)", "by_segment": "card holders and others",
    "spend": "spend", "points": "points", "rewards": "rewards figures", "members.member_years": "member-years",
    "value_per_member_cents": "the value distribution", "annualized_value_per_member_cents": "the annualised value",
}
STATISTIC_LABELS = {"mean": "mean", "median": "median", "p25": "25th percentile", "p75": "75th percentile",
                    "p90": "90th percentile", "p99": "99th percentile", "max": "maximum", "share_zero": "share at $0"}
_TEMPLATES = jinja2.Environment(loader=jinja2.PackageLoader("incentives", "templates"),
                                autoescape=True, trim_blocks=True, lstrip_blocks=True)


def _money(cents: int | None) -> str:
    return "—" if cents is None else dollars(cents)


def _number(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def _share(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.2f}%"


def _points(point_cents: int | None) -> str:
    return "—" if point_cents is None else f"{point_cents / 100:,.2f}"


def _years(value: float | None) -> str:
    return "—" if value is None else f"{value:,.2f}"


def _instant(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _count_and_value(count: int | None, cents: int | None) -> str:
    return "—" if count is None else f"{count:,} · {_money(cents)}"


def _withheld_label(key: str) -> str:
    if key in WITHHELD_LABELS:
        return WITHHELD_LABELS[key]
    *where, statistic = key.split(".")
    group = {"value_per_member_cents": "all", "by_segment.card_holders": "card holders",
             "by_segment.others": "others"}.get(".".join(where), ".".join(where))
    return f"{STATISTIC_LABELS.get(statistic, statistic)} ({group})"


def _bin_label(b: Bin) -> str:
    if b.to_cents is None:
        return f"{dollars(b.from_cents)} or more"
    return dollars(b.from_cents) if b.from_cents == b.to_cents else f"{dollars(b.from_cents)}–{dollars(b.to_cents)}"


def chart_svg(bins: list[Bin], *, who: str = "members", width: int = 760, height: int = 300) -> str:
    """A bar chart of members by value: one `rect.bar` per bin that holds anyone."""
    left, right, top, bottom = 64, 16, 20, 78
    plot_w, plot_h = width - left - right, height - top - bottom
    most = max((b.members for b in bins), default=0)
    parts = [
        f'<svg class="distribution" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(who)} by value per {escape(who[:-1])}">',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#333"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#333"/>',
    ]
    if most:
        for tick in sorted({0, most // 2, most}):
            y = top + plot_h - tick / most * plot_h
            parts.append(f'<line x1="{left - 4}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#e2e2e2"/>')
            parts.append(f'<text x="{left - 8}" y="{y + 4:.1f}" font-size="11" text-anchor="end">{tick:,}</text>')
    slot = plot_w / max(len(bins), 1)
    label_every = max(1, -(-len(bins) // 12))
    for i, b in enumerate(bins):
        x = left + i * slot + slot * 0.1
        if b.members and most:
            h = b.members / most * plot_h
            parts.append(
                f'<rect class="bar" x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{slot * 0.8:.1f}" '
                f'height="{h:.1f}" fill="{BAR_COLOUR}"><title>{escape(_bin_label(b))}: {b.members:,} '
                f'{escape(who)}</title></rect>'
            )
        if i % label_every == 0:
            cx = left + i * slot + slot / 2
            parts.append(
                f'<text x="{cx:.1f}" y="{top + plot_h + 14}" font-size="10" text-anchor="end" '
                f'transform="rotate(-30 {cx:.1f} {top + plot_h + 14})">{escape(_bin_label(b))}</text>'
            )
    parts.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 4}" font-size="11" text-anchor="middle">'
                 f'value per {escape(who[:-1])} in the period</text>')
    parts.append(f'<text x="14" y="{top + plot_h / 2:.1f}" font-size="11" text-anchor="middle" '
                 f'transform="rotate(-90 14 {top + plot_h / 2:.1f})">{escape(who)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _assumptions(valuation: Valuation) -> list[str]:
    r, facts = valuation.report, valuation.notice_facts
    who = "members" if r.program == "rewards" else "subscribers"
    found = [
        f"The period is whole days on the program's calendar ({r.period.time_zone}): from local midnight at the "
        f"start of {day(r.period.from_)} to local midnight after {day(r.period.to)}.",
        f"Every one of the {who} {'enrolled' if r.program == 'rewards' else 'subscribed'} at any time in the period "
        "counts once in the distribution, at $0 if nothing is counted for them.",
        f"The value per year divides the period's total value by the time the {who} counted were "
        f"{'enrolled' if r.program == 'rewards' else 'subscribed'} within the period, up to the as-of time, in "
        "years of 365 days: someone enrolled for a quarter of a year counts 0.25.",
        "Percentiles are values that some member actually has (percentile_disc), never an interpolation; money is "
        "in whole cents, rounded half up once.",
        "The figures describe this period only: a Reward redeemed in it counts even if it was earned before it, and "
        "one earned in it and redeemed later does not.",
    ]
    if r.program == "mailing_list":
        found.append("A purchase names a member, never a subscriber: a subscriber who is not a member cannot be "
                     "matched to offer discounts and counts at $0.")
    if facts.program_expense_cents is not None:
        found.append(f"The program expense of {dollars(facts.program_expense_cents)} is the business's own figure "
                     "for the period, shared equally among those counted; it was not computed from the records.")
    if facts.rules is not None and r.program == "rewards":
        found.append(f"The program's numbers the notice quotes are those of rules version {facts.rules.version}, in "
                     "force at the end of the period.")
    return found


def to_html(valuation: Valuation) -> bytes:
    r, facts = valuation.report, valuation.notice_facts
    d = facts.disclosures
    who_many = "members" if r.program == "rewards" else "subscribers"
    dist, segs = r.value_per_member_cents, r.by_segment

    def cells(key: str) -> list[str]:
        shown = [getattr(dist, key), getattr(segs.card_holders, key), getattr(segs.others, key)]
        return [_share(c) if key == "share_zero" else _money(c) for c in shown]

    distribution = [(f"{who_many.capitalize()} counted",
                     [_number(r.members.counted), _number(segs.card_holders.counted), _number(segs.others.counted)])]
    distribution += [(STATISTIC_LABELS[key].capitalize(), cells(key)) for key in STATISTIC_LABELS]
    rw = r.rewards
    item = "Rewards" if r.program == "rewards" else "Offers"
    per_100 = valuation.value_per_100_spend_cents
    figures = [
        (f"{who_many.capitalize()}", [
            ("At the start", _number(r.members.at_start)), ("At the end", _number(r.members.at_end)),
            ("Enrolled" if r.program == "rewards" else "Opted in", _number(r.members.enrolled)),
            ("Cancelled" if r.program == "rewards" else "Opted out", _number(r.members.cancelled)),
            ("Erased", _number(r.members.erased)), ("Counted (the denominator)", _number(r.members.counted)),
            (f"{who_many[:-1].capitalize()}-years", _years(r.members.member_years)),
        ]),
        ("Spend and points", [
            ("Qualifying spend", _money(r.spend.qualifying_cents)),
            ("of which paid with the Westique Credit Card", _money(r.spend.card_cents)),
            ("Points earned, bonus included", _points(r.points.earned_point_cents)),
            ("of which card bonus", _points(r.points.bonus_point_cents)),
            ("Points taken back by returns", _points(r.points.reversed_point_cents)),
            ("Points forfeited on cancellation", _points(r.points.forfeited_point_cents)),
        ]),
        (item, [
            ("Rewards issued" if r.program == "rewards" else "Offers sent",
             _count_and_value(rw.issued_count, rw.issued_cents)),
            (f"{item} redeemed", _count_and_value(rw.redeemed_count, rw.redeemed_cents)),
            (f"{item} expired unused", _count_and_value(rw.expired_count, rw.expired_cents)),
            (f"{item} voided", _count_and_value(rw.voided_count, rw.voided_cents)),
            ("Redemption rate", _share(rw.redemption_rate)),
            ("Value per $100 of qualifying spend", "—" if per_100 is None else dollars(per_100)),
        ]),
    ]
    repro = r.reproducibility
    reproducibility = [
        ("As of", f"{instant(repro.as_of, r.period.time_zone)} · {_instant(repro.as_of)}"),
        ("Rules versions read", ", ".join(str(v) for v in repro.rules_versions) or "—"),
        ("Disclosures version", str(repro.disclosures_version)),
        *[(f"Rows read: {table.replace('_', ' ')}", f"{n:,}") for table, n in repro.rows_read.items()],
    ]
    elements = []
    if r.notice_text:
        elements = [(ELEMENT_LABELS[name], sentences) for name, sentences in notice.elements(facts).items()]
    page = _TEMPLATES.get_template("counsel.html").render(
        r=r, d=d, style=STYLE, name=d.program_names.get(r.program, PROGRAM_NAMES.get(r.program, r.program)),  # type: ignore[call-overload]
        business=d.business_name, who_one=who_many[:-1], who_many=who_many,
        period_words=period_words(r.period.from_, r.period.to),
        period_words_long=f"{day(r.period.from_)} to {day(r.period.to)} ({r.period.days:,} days)",
        as_of_words=f"the close of {day(r.period.to)} ({r.period.time_zone})"
        if repro.as_of >= facts.period.upper else instant(repro.as_of, r.period.time_zone),
        method_basis=METHODS_BY_CODE[r.method.code].basis, money=_money, number=_number, years=_years,
        elements=elements, assumptions=_assumptions(valuation), histogram=valuation.histogram,
        chart=Markup(chart_svg(valuation.histogram, who=who_many)),  # noqa: S704 - built from escaped parts
        distribution=distribution, figures=figures,
        categories=[c for c in d.categories if r.program in c.programs],
        withheld=[_withheld_label(k) for k in r.suppression.withheld],
        reproducibility=reproducibility,
    )
    return page.encode()
