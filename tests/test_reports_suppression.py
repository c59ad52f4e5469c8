"""min_cell_size: no figure in any format describes fewer members than the cell size.

The program: five members who redeemed nothing, three who redeemed one $10 Reward each,
and one who redeemed five ($50), the only card holder. With min_cell_size 3 the card
holders (one member) and so the others are withheld, and the $50 member must not be found
anywhere: not as a histogram row (`5000,5000,1`), a chart bar ("$50.00: 1 members"), the
maximum, a percentile, or the share at $0.
"""

from __future__ import annotations

import csv
import io
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.reports_support import Program

pytest_plugins = ("tests.reports_support",)  # the private database and its hand-built programs

K = 3


async def build(p: Program) -> None:
    nobody = [await p.member("2024-12-01") for _ in range(5)]
    for member in nobody:
        await p.buy(member, 5000, "2025-02-01")
    for _ in range(3):
        member = await p.member("2024-12-01")
        bought = await p.buy(member, 30000, "2025-03-01")
        await p.buy(member, 1000, "2025-03-05", rewards=(bought["rewards_issued"][0]["code"],))
    big = await p.member("2024-12-01")
    bought = await p.buy(big, 150000, "2025-04-01", method="westique_credit_card")
    codes = tuple(r["code"] for r in bought["rewards_issued"][:5])
    await p.buy(big, 5000, "2025-04-10", rewards=codes)


async def test_without_min_cell_size_the_lone_member_is_visible(program: Program):
    await build(program)
    report = await program.figures()
    assert report["value_per_member_cents"]["max"] == 5000
    assert report["by_segment"]["card_holders"]["counted"] == 1
    csv_text = (await program.report(format="csv")).text
    assert "5000,5000,1" in csv_text


async def test_json_withholds_every_figure_of_fewer_members(program: Program):
    await build(program)
    report = await program.figures(min_cell_size=K)
    d = report["value_per_member_cents"]
    # 9 members: $0 x5, $10 x3, $50 x1; the median and p75 are values 5 and 3 members have
    assert (d["p25"], d["median"], d["p75"]) == (0, 0, 1000)
    assert d["max"] is None and d["p90"] is None and d["p99"] is None
    assert d["share_zero"] == 0.5556  # 5 at $0 and 4 above: both groups at least 3
    assert d["mean"] == 889  # $80 over 9 members: four of them have any value
    for segment in ("card_holders", "others"):
        assert report["by_segment"][segment]["suppressed"] is True
        assert all(v is None for k, v in report["by_segment"][segment].items() if k != "suppressed")
    assert set(report["suppression"]["withheld"]) >= {"by_segment", "value_per_member_cents.max",
                                                      "value_per_member_cents.p90", "value_per_member_cents.p99",
                                                      "chart"}
    assert report["suppression"]["min_cell_size"] == K
    distribution_figures = {**report["value_per_member_cents"], **report["by_segment"]["card_holders"]}
    assert 5000 not in distribution_figures.values()
    assert "$50.00" not in report["notice_text"]


async def test_csv_has_no_row_of_fewer_members(program: Program):
    await build(program)
    response = await program.report(format="csv", min_cell_size=K)
    figures_part, chart_part = response.text.split("\r\n\r\n")
    rows = dict(csv.reader(io.StringIO(figures_part)))
    assert rows["value_per_member_cents.max"] == "" and rows["by_segment.card_holders.counted"] == ""
    bars = list(csv.reader(io.StringIO(chart_part)))[1:]
    # $0 (5), then $10 and more (4): the $50 member merged into an open-ended top bar
    assert bars == [["0", "0", "5"], ["1000", "", "4"]]
    assert all(int(members) >= K for _, _, members in bars)
    assert "5000" not in chart_part


async def test_html_chart_has_no_bar_of_fewer_members(program: Program):
    await build(program)
    page = (await program.report(format="html", min_cell_size=K)).text
    chart = page[page.index("<svg"):page.index("</svg>")]
    titles = re.findall(r"<title>([^<]*)</title>", chart)
    assert titles == ["$0.00: 5 members", "$10.00 or more: 4 members"]
    assert "$50.00" not in chart
    table = page[page.index("Distribution of value"):page.index("Figures for the period")]
    assert "$50.00" not in table
    assert "Card holders and others are withheld" in page
    assert f"Minimum cell size: {K}." in page


async def test_a_population_below_the_cell_size_withholds_the_estimate(program: Program):
    await build(program)
    report = await program.figures(min_cell_size=10)
    assert report["members"]["counted"] == 9
    assert report["notice_text"] is None and "fewer than the minimum cell size" in report["notice_withheld"]
    assert report["spend"] == {"qualifying_cents": None, "card_cents": None}
    assert report["annualized_value_per_member_cents"] is None and report["members"]["member_years"] is None
    csv_text = (await program.report(format="csv", min_cell_size=10)).text
    assert csv_text.split("\r\n\r\n")[1].strip() == "from_cents,to_cents,members"  # no chart rows at all
