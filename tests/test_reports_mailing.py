"""The mailing_list report: a subscriber is valued by the offer discounts they redeemed.

The subscriptions, their consent record, the offers and their deliveries are written by
hand with 2025 dates; the purchases that redeem offers go through the API.
"""

from __future__ import annotations

from datetime import date, datetime
from fractions import Fraction
from typing import TYPE_CHECKING

from tests.reference import cents_half_up, local, years_enrolled

if TYPE_CHECKING:
    from tests.reports_support import Program

pytest_plugins = ("tests.reports_support",)  # the private database and its hand-built programs


async def build_mailing_list(p: Program) -> dict[str, int]:
    m1, m2, m3, m4, m5 = [await p.member("2023-01-05") for _ in range(5)]
    s1 = await p.subscription("email", "one@example.com", m1, (("subscribed", "2025-01-10"),))
    s2 = await p.subscription("sms", "+15550000001", m1, (("subscribed", "2025-02-01"),))  # same member: once
    s3 = await p.subscription("email", "two@example.com", m2, (("subscribed", "2025-03-01"),
                                                                ("unsubscribed", "2025-09-01")))
    s4 = await p.subscription("email", "anon@example.com", None, (("subscribed", "2024-06-01"),))
    await p.subscription("sms", "+15550000003", m3, (("subscribed", "2024-01-01"), ("unsubscribed", "2024-12-01")))
    await p.subscription("email", "four@example.com", m4, (("subscribed", "2024-02-01"),
                                                           ("unsubscribed", "2024-05-01"), ("renewed", "2025-06-01")))
    s7 = await p.subscription("email", "five@example.com", m5, (("subscribed", "2025-04-01"),))
    off10 = await p.offer("OFF10", 1000, "email", "2025-03-15")
    txt5 = await p.offer("TXT5", 500, "sms", "2025-04-25")
    for subscription in (s1, s3, s4, s7):
        await p.deliver(off10, subscription, "2025-04-01")
    await p.deliver(txt5, s2, "2025-05-01")
    await p.buy(m1, 9000, "2025-04-10", method="westique_credit_card", offers=(("OFF10", 1000),))
    await p.buy(m1, 4000, "2025-05-10", offers=(("TXT5", 500),))
    await p.buy(m2, 5000, "2025-04-15", offers=(("OFF10", 1000),))
    await p.buy(m2, 3000, "2025-10-01")  # after unsubscribing: still a subscriber of the period
    await p.buy(m3, 2000, "2025-04-20", offers=(("OFF10", 1000),))  # not subscribed in 2025: not counted
    await p.erase(m5, "2025-10-01")  # erasure records the opt-out and clears the address
    return {"m1": m1, "m2": m2, "m3": m3, "m4": m4, "m5": m5}


async def test_mailing_list_report_values_offer_discounts_redeemed(program: Program):
    await build_mailing_list(program)
    report = await program.figures("mailing_list")

    assert report["program"] == "mailing_list"
    assert report["method"]["code"] == "expenses"
    assert "offer discounts" in report["method"]["description"]
    # subscribers: m1 (two subscriptions), m2, the unlinked address, m4 (renewed), m5 (erased)
    noon = lambda d: datetime.fromisoformat(d + "T12:00:00+00:00")  # noqa: E731 - as reports_support.at writes them
    spans = [(noon("2025-01-10"), None),  # m1: email from Jan 10 (texts from Feb 1 overlap it: counted once)
             (noon("2025-03-01"), noon("2025-09-01")),  # m2
             (noon("2024-06-01"), None),  # the unlinked address
             (noon("2025-06-01"), None),  # m4, renewed
             (noon("2025-04-01"), noon("2025-10-01"))]  # m5, until erased
    years = years_enrolled(spans, date(2025, 1, 1), date(2025, 12, 31), local("2026-01-01T00:00"))
    assert report["members"] == {"at_start": 1, "at_end": 3, "enrolled": 4, "cancelled": 2, "erased": 1,
                                 "counted": 5, "member_years": float(round(years, 4))}
    assert report["spend"] == {"qualifying_cents": 9000 + 4000 + 5000 + 3000, "card_cents": 9000}
    assert report["points"] == {"earned_point_cents": None, "bonus_point_cents": None,
                                "reversed_point_cents": None, "forfeited_point_cents": None}
    # offers sent: 4 x $10 by email, 1 x $5 by text; redeemed by subscribers: $10 + $5 (m1), $10 (m2)
    assert report["rewards"] == {
        "issued_count": 5, "issued_cents": 4500, "redeemed_count": 3, "redeemed_cents": 2500,
        "expired_count": 0, "expired_cents": 0, "voided_count": 0, "voided_cents": 0, "redemption_rate": 0.6,
    }
    # values: $15, $10, $0, $0, $0
    assert report["value_per_member_cents"] == {
        "mean": 500, "median": 0, "p25": 0, "p75": 1000, "p90": 1500, "p99": 1500, "max": 1500, "share_zero": 0.6,
    }
    assert report["by_segment"] == {
        "card_holders": {"counted": 1, "mean": 1500, "median": 1500, "p25": 1500, "p75": 1500, "p90": 1500,
                         "p99": 1500, "max": 1500, "share_zero": 0.0, "suppressed": False},
        "others": {"counted": 4, "mean": 250, "median": 0, "p25": 0, "p75": 0, "p90": 1000, "p99": 1000,
                   "max": 1000, "share_zero": 0.75, "suppressed": False},
    }
    assert report["annualized_value_per_member_cents"] == cents_half_up(Fraction(2500) / years)
    repro = report["reproducibility"]
    assert repro["rules_versions"] == [1]
    assert repro["rows_read"] == {"subscriptions": 7, "subscription_events": 12, "offer_deliveries": 5,
                                  "offers": 2, "purchases": 5}
    text = report["notice_text"]
    assert f"{cents_half_up(Fraction(2500) / years) / 100:.2f} per subscriber per year" in text
    assert "5 subscribers" in text
    assert "11 CCR §7081(a)(6)" in text
    # matched offer discounts, never "redeemed no offer" from offers sent
    assert "60% had no offer discount on a purchase matched to them" in text
    assert "redeemed no offer" not in text
    assert "$11.90 in offer discounts for every $100" in text  # $25 / $210
    assert "texting STOP" in text and "unsubscribe" in text
    assert "1-800-555-0142" in text and "email address or mobile phone number" in text
    # the unlinked address is counted at $0: the report says why
    assert any("1 of the 5 subscribers counted are not members" in w for w in report["warnings"])


async def test_mailing_list_offers_sent_method(program: Program):
    await build_mailing_list(program)
    report = await program.figures("mailing_list", method="rewards_issued")
    # m1 $10 + $5, m2 $10, unlinked $10, m5 $10, m4 nothing
    assert report["value_per_member_cents"]["mean"] == 900
    assert report["value_per_member_cents"]["max"] == 1500
    assert report["value_per_member_cents"]["share_zero"] == 0.2
    assert report["method"]["regulation"] == "11 CCR §7081(a)(8)"
    text = report["notice_text"]
    assert "every offer sent to the 5 subscribers on our list in 2025, whether or not it was used" in text
    # offers sent say who was sent none, never who redeemed none
    assert "20% were sent no offer" in text and "redeemed" not in text


async def test_mailing_list_report_reproduces_and_sees_a_late_offer_use(program: Program):
    people = await build_mailing_list(program)
    first = await program.report("mailing_list")
    assert first.content == (await program.report("mailing_list")).content
    await program.buy(people["m4"], 6000, "2025-07-01", offers=(("OFF10", 800),))
    later = (await program.report("mailing_list")).json()
    assert later["reproducibility"]["digest"] != first.json()["reproducibility"]["digest"]
    assert later["rewards"]["redeemed_cents"] == 3300
    assert later["value_per_member_cents"]["share_zero"] == 0.4


async def test_a_period_before_any_subscription_has_no_notice(program: Program):
    await build_mailing_list(program)
    response = await program.report("mailing_list", start="2023-01-01", end="2023-12-31")
    assert response.status_code == 200
    report = response.json()
    assert report["notice_text"] is None and report["members"]["counted"] == 0
    assert "Nobody was counted" in report["notice_withheld"] and "subscribers" in report["notice_withheld"]
    assert any("before the first subscription on record (January 1, 2024)" in w for w in report["warnings"])


async def test_many_distinct_values_are_binned_and_percentiles_are_members_values(program: Program):
    offer = await program.offer("BIG", 5000, "email", "2025-01-02")
    for n in range(1, 27):  # 26 subscribers, who saved $1, $2, ... $26
        member = await program.member("2025-01-05")
        subscription = await program.subscription("email", f"s{n}@example.com", member, (("subscribed", "2025-01-06"),))
        await program.deliver(offer, subscription, "2025-01-07")
        await program.buy(member, 10000, "2025-02-01", offers=(("BIG", n * 100),))
    report = await program.figures("mailing_list")
    # percentile_disc: the first value whose cumulative share reaches p, over 26 values
    assert report["value_per_member_cents"] == {
        "mean": 1350, "median": 1300, "p25": 700, "p75": 2000, "p90": 2400, "p99": 2600, "max": 2600,
        "share_zero": 0.0,
    }
    response = await program.report("mailing_list", format="csv")
    bins = [list(map(int, line.split(","))) for line in response.text.split("\r\n\r\n")[1].split("\r\n")[1:] if line]
    assert bins[0] == [0, 0, 0]  # nobody at $0
    # then bars of a round width: $2.00 (at most 20 bars to cover $26.00), two subscribers each
    assert bins[1:] == [[k * 200 - 199, k * 200, 2] for k in range(1, 14)]
