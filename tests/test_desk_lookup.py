"""Finding a member at the register and the desk: GET /v1/members?phone=|email=|external_id=|card=."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from rewards.cards import luhn_digit
from tests.conftest import auth, unique
from tests.desk_support import enroll, enrolled, fresh_phone

FIVE = ["+1{n}", "1{n}", "{n}", "+01{n}", "001{n}"]


async def find(client: AsyncTestClient, token: str, **query: str) -> Any:
    return await client.get("/v1/members", params=query, headers=auth(token))


async def test_five_spellings_of_one_number_find_one_member_and_enroll_it_once(
        client: AsyncTestClient, keys: dict[str, str]) -> None:
    number = fresh_phone()
    first = await enrolled(client, keys, name="Ann Lee", phone=FIVE[0].format(n=number))
    for spelling in FIVE:
        found = await find(client, keys["checkout"], phone=spelling.format(n=number))
        assert found.status_code == 200, found.text
        assert [m["member_id"] for m in found.json()["items"]] == [first["member_id"]], spelling
    for spelling in FIVE[1:]:
        again = await enroll(client, keys, phone=spelling.format(n=number))
        assert again.status_code == 409, (spelling, again.text)
        problem = again.json()
        assert problem["code"] == "duplicate_member"
        assert (problem["member_id"], problem["field"], problem["constraint"]) == (
            first["member_id"], "phone", "members_active_phone")


async def test_the_answer_shows_the_first_name_and_an_initial_and_no_contact_data(
        client: AsyncTestClient, keys: dict[str, str]) -> None:
    number = fresh_phone()
    member = await enrolled(client, keys, name="Ann Lee", phone=number)
    found = (await find(client, keys["checkout"], phone=f"({number[:3]}) {number[3:6]}-{number[6:]}")).json()
    assert found == {"items": [{"member_id": member["member_id"], "status": "active", "display_name": "Ann L.",
                                "card_number": member["card_number"], "points": 0}]}


async def test_an_email_is_found_trimmed_in_any_case_and_a_full_width_letter_is_the_same_address(
        client: AsyncTestClient, keys: dict[str, str]) -> None:
    tag = unique("ann")
    member = await enrolled(client, keys, email=f"{tag}@example.com")
    for written in (f"  {tag.upper()}@EXAMPLE.com ", f"ａ{tag[1:]}@example.com"):
        found = (await find(client, keys["guest_services"], email=written)).json()["items"]
        assert [m["member_id"] for m in found] == [member["member_id"]], written
    again = await enroll(client, keys, email=f"ａ{tag[1:]}@Example.com")
    assert again.status_code == 409 and again.json()["field"] == "email", again.text


async def test_a_card_and_an_external_id_find_their_member(client: AsyncTestClient, keys: dict[str, str]) -> None:
    external = unique("EXT")
    member = await enrolled(client, keys, external_id=external)
    by_card = (await find(client, keys["checkout"], card=member["card_number"])).json()["items"]
    by_external = (await find(client, keys["checkout"], external_id=external)).json()["items"]
    assert [m["member_id"] for m in by_card] == [m["member_id"] for m in by_external] == [member["member_id"]]


async def test_a_card_number_with_a_wrong_check_digit_is_a_validation_error(
        client: AsyncTestClient, keys: dict[str, str]) -> None:
    number = (await enrolled(client, keys))["card_number"]
    wrong = number[:-1] + str((int(number[-1]) + 1) % 10)
    for bad in (wrong, number[:-1], number + "0", "7" * 16 if luhn_digit("7" * 15) != "7" else "7" * 15 + "0"):
        answer = await find(client, keys["checkout"], card=bad)
        assert answer.status_code == 422, bad
        assert (answer.json()["code"], answer.json()["field"]) == ("validation_error", "card")


@pytest.mark.parametrize("phone", ["not a phone", "555-0123", "0155550100", "+1"])
async def test_a_phone_that_is_not_a_phone_is_a_validation_error(client: AsyncTestClient, keys: dict[str, str],
                                                                 phone: str) -> None:
    answer = await find(client, keys["checkout"], phone=phone)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert (answer.json()["code"], answer.json()["field"]) == ("validation_error", "phone")


@pytest.mark.parametrize("query", [{}, {"phone": "2135550123", "email": "a@example.com"},
                                   {"card": "7000000000000000", "external_id": "X1"}])
async def test_exactly_one_way_of_finding_is_named(client: AsyncTestClient, keys: dict[str, str],
                                                   query: dict[str, str]) -> None:
    answer = await find(client, keys["checkout"], **query)
    assert answer.status_code == 422 and answer.json()["code"] == "validation_error", answer.text


async def test_no_match_is_200_with_no_items(client: AsyncTestClient, keys: dict[str, str]) -> None:
    answer = await find(client, keys["checkout"], phone=fresh_phone())
    assert answer.status_code == 200 and answer.json() == {"items": []}


async def test_checkout_finds_active_members_and_guest_services_cancelled_ones_too(
        client: AsyncTestClient, keys: dict[str, str]) -> None:
    number = fresh_phone()
    old = await enrolled(client, keys, phone=number)
    cancelled = await client.post(f"/v1/members/{old['member_id']}/cancel", headers=auth(keys["guest_services"]))
    assert cancelled.status_code == 200
    assert (await find(client, keys["checkout"], phone=number)).json() == {"items": []}
    desk = (await find(client, keys["guest_services"], phone=number)).json()["items"]
    assert [(m["member_id"], m["status"]) for m in desk] == [(old["member_id"], "cancelled")]
    # the guest joins again: the register sees the new membership, the desk both, the active first
    new = await enrolled(client, keys, phone=f"+1{number}")
    register = (await find(client, keys["checkout"], phone=number)).json()["items"]
    assert [m["member_id"] for m in register] == [new["member_id"]]
    desk = (await find(client, keys["guest_services"], phone=number)).json()["items"]
    assert [(m["member_id"], m["status"]) for m in desk] == [(new["member_id"], "active"),
                                                              (old["member_id"], "cancelled")]


async def test_an_erased_member_is_never_found(client: AsyncTestClient, keys: dict[str, str]) -> None:
    number, external, email = fresh_phone(), unique("EXT"), f"{unique('gone')}@example.com"
    member = await enrolled(client, keys, phone=number, external_id=external, email=email)
    erased = await client.delete(f"/v1/members/{member['member_id']}/personal-data?immediate=true&reason=consumer_confirmed",
                                 headers=auth(keys["guest_services"]))
    assert erased.status_code == 200, erased.text
    for token in (keys["checkout"], keys["guest_services"], keys["all"]):
        for query in ({"phone": number}, {"email": email}, {"external_id": external},
                      {"card": member["card_number"]}):
            answer = await find(client, token, **query)
            assert answer.status_code == 200 and answer.json() == {"items": []}, query


async def test_a_merged_member_is_not_found_its_target_is(client: AsyncTestClient, keys: dict[str, str]) -> None:
    number = fresh_phone()
    duplicate = await enrolled(client, keys, phone=number)
    target = await enrolled(client, keys)
    merged = await client.post(f"/v1/members/{target['member_id']}/merge", headers=auth(keys["guest_services"]),
                               json={"from_member_id": duplicate["member_id"]})
    assert merged.status_code == 201, merged.text
    assert (await find(client, keys["guest_services"], phone=number)).json() == {"items": []}
    assert (await find(client, keys["guest_services"], card=duplicate["card_number"])).json() == {"items": []}
    found = (await find(client, keys["checkout"], card=target["card_number"])).json()["items"]
    assert [m["member_id"] for m in found] == [target["member_id"]]


async def test_a_guest_token_cannot_look_members_up(client: AsyncTestClient, keys: dict[str, str], db: Any) -> None:
    from rewards.auth import GUEST, create_key

    number = fresh_phone()
    member = await enrolled(client, keys, phone=number)
    guest = await create_key(db, [GUEST], member_id=member["member_id"])
    answer = await find(client, guest, phone=number)
    assert answer.status_code == 403 and answer.json()["code"] == "forbidden"
