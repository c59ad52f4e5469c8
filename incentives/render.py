"""The report's formats: JSON, CSV (figures as key/value rows, then the distribution), and
an HTML page a compliance officer prints, its chart drawn as inline SVG (no external assets,
no script: the page is complete as sent)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from html import escape
from typing import Any

import msgspec

from incentives.suppression import Bin
from incentives.valuation import Valuation
from incentives.words import dollars, period_words

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
body { font: 14px/1.45 Georgia, 'Times New Roman', serif; color: #1b1b1b; margin: 2.2em auto; max-width: 52em;
       padding: 0 1.2em; }
h1 { font-size: 1.6em; margin: 0 0 .2em; } h2 { font-size: 1.15em; margin: 1.6em 0 .5em;
     border-bottom: 1px solid #bbb; padding-bottom: .2em; }
.sub { color: #555; margin: 0 0 1.2em; }
.estimate { font-size: 1.25em; margin: .8em 0; } .estimate strong { font-size: 1.4em; }
.notice { border: 2px solid #1b1b1b; padding: .9em 1.1em; background: #fafafa; }
table { border-collapse: collapse; width: 100%; margin: .4em 0 .8em; font-size: .95em; }
th, td { text-align: left; padding: .25em .6em; border-bottom: 1px solid #ddd; vertical-align: top; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
.digest { font-family: 'DejaVu Sans Mono', monospace; font-size: .85em; word-break: break-all; }
figure { margin: .6em 0 1em; } figcaption { color: #555; font-size: .9em; }
@media print { body { margin: 0; max-width: none; } h2 { break-after: avoid; } figure, table { break-inside: avoid; } }
"""


def _money(cents: int | None) -> str:
    return "—" if cents is None else dollars(cents)


def _number(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def _share(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.2f}%"


def _points(point_cents: int | None) -> str:
    return "—" if point_cents is None else f"{point_cents / 100:,.2f}"


def _instant(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _rows(rows: list[tuple[str, str]]) -> str:
    return "".join(f"<tr><th>{escape(k)}</th><td class='n'>{escape(v)}</td></tr>" for k, v in rows)


def _bin_label(b: Bin) -> str:
    return dollars(b.from_cents) if b.from_cents == b.to_cents else f"{dollars(b.from_cents)}–{dollars(b.to_cents)}"


def chart_svg(bins: list[Bin], *, who: str = "members", width: int = 720, height: int = 300) -> str:
    """A bar chart of members by value: one `rect.bar` per bin that holds anyone."""
    left, right, top, bottom = 56, 16, 20, 64
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
    parts.append(f'<text x="12" y="{top + plot_h / 2:.1f}" font-size="11" text-anchor="middle" '
                 f'transform="rotate(-90 12 {top + plot_h / 2:.1f})">{escape(who)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def to_html(valuation: Valuation) -> bytes:
    r = valuation.report
    who = "members" if r.program == "rewards" else "subscribers"
    name = PROGRAM_NAMES.get(r.program, r.program)
    when = period_words(valuation.notice_facts.period)
    d = r.value_per_member_cents
    segs = r.by_segment

    def dist_row(label: str, key: str) -> str:
        cells = [getattr(d, key), getattr(segs.card_holders, key), getattr(segs.others, key)]
        shown = [_share(c) if key == "share_zero" else _money(c) for c in cells]
        return f"<tr><th>{escape(label)}</th>" + "".join(f"<td class='n'>{escape(c)}</td>" for c in shown) + "</tr>"

    dist = "".join(dist_row(label, key) for label, key in (
        ("Mean", "mean"), ("25th percentile", "p25"), ("Median", "median"), ("75th percentile", "p75"),
        ("90th percentile", "p90"), ("99th percentile", "p99"), ("Maximum", "max"), ("Share with $0", "share_zero"),
    ))
    counted_row = (f"<tr><th>{who.capitalize()} counted</th><td class='n'>{_number(r.members.counted)}</td>"
                   f"<td class='n'>{_number(segs.card_holders.counted)}</td>"
                   f"<td class='n'>{_number(segs.others.counted)}</td></tr>")
    suppressed = ("<p>Segments are withheld: one has fewer members than the minimum cell size.</p>"
                  if segs.card_holders.suppressed else "")
    per_100 = valuation.value_per_100_spend_cents
    rw = r.rewards
    item = "Rewards" if r.program == "rewards" else "Offers"
    figures_rewards = [
        ("Rewards issued" if r.program == "rewards" else "Offers sent",
         f"{rw.issued_count:,} · {dollars(rw.issued_cents)}"),
        (f"{item} redeemed", f"{rw.redeemed_count:,} · {dollars(rw.redeemed_cents)}"),
        (f"{item} expired", f"{rw.expired_count:,} · {dollars(rw.expired_cents)}"),
        (f"{item} voided", f"{rw.voided_count:,} · {dollars(rw.voided_cents)}"),
        ("Redemption rate", _share(rw.redemption_rate)),
    ]
    repro = r.reproducibility
    start, end, as_of = r.period.from_.isoformat(), r.period.to.isoformat(), _instant(repro.as_of)
    html = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Value of personal information: {escape(name)}, {start} to {end}</title>
<style>{STYLE}</style></head>
<body>
<h1>Value of personal information: {escape(name)}</h1>
<p class="sub">Notice of financial incentive figures (11 CCR §7016, §7081) · period {start} to {end}
· method <code>{escape(r.method.code)}</code> · as of {as_of}</p>
<p class="estimate">Good-faith estimate: <strong>{_money(r.annualized_value_per_member_cents)}</strong>
per {who[:-1]} per year (mean {_money(d.mean)} per {who[:-1]} {escape(when)}).</p>

<h2>Notice paragraph</h2>
<div class="notice"><p>{escape(r.notice_text)}</p></div>

<h2>Distribution of value per {who[:-1]}</h2>
<figure>{chart_svg(valuation.histogram, who=who)}
<figcaption>{who.capitalize()} counted {escape(when)}, by the value of their data under the method
({escape(r.method.code)}); each bar is the number of {who} with that value.</figcaption></figure>
<table><thead><tr><th></th><th class="n">All</th><th class="n">Card holders</th><th class="n">Others</th></tr></thead>
<tbody>{counted_row}{dist}</tbody></table>{suppressed}

<h2>Method</h2>
<table><tbody>{_rows([("Method", r.method.code), ("Regulation", r.method.regulation)])}</tbody></table>
<p>{escape(r.method.description)}</p>

<h2>Figures</h2>
<table><tbody>{_rows([
        (f"{who.capitalize()} at start", _number(r.members.at_start)),
        (f"{who.capitalize()} at end", _number(r.members.at_end)),
        ("Enrolled" if r.program == "rewards" else "Opted in", _number(r.members.enrolled)),
        ("Cancelled" if r.program == "rewards" else "Opted out", _number(r.members.cancelled)),
        ("Erased", _number(r.members.erased)),
        (f"{who.capitalize()} counted (the denominator)", _number(r.members.counted)),
        ("Qualifying spend", dollars(r.spend.qualifying_cents)),
        ("  of which paid with the Westique Credit Card", dollars(r.spend.card_cents)),
        ("Points earned (bonus included)", _points(r.points.earned_point_cents)),
        ("  of which card bonus", _points(r.points.bonus_point_cents)),
        ("Points reversed by returns", _points(r.points.reversed_point_cents)),
        ("Points forfeited on cancellation", _points(r.points.forfeited_point_cents)),
        *figures_rewards,
        ("Value per $100 of qualifying spend", "—" if per_100 is None else dollars(per_100)),
        ("Annualised value per " + who[:-1], _money(r.annualized_value_per_member_cents)),
    ])}</tbody></table>

<h2>Reproducibility</h2>
<table><tbody>{_rows([
        ("As of", as_of),
        ("Rules versions", ", ".join(str(v) for v in repro.rules_versions) or "—"),
        *[(f"Rows read: {table}", f"{n:,}") for table, n in repro.rows_read.items()],
    ])}
<tr><th>Digest of the inputs (SHA-256)</th><td class="digest">{escape(repro.digest)}</td></tr></tbody></table>
<p class="sub">The same period asked again gives the same figures and digest until something dated inside the
period is recorded.</p>
</body></html>
"""
    return html.encode()
