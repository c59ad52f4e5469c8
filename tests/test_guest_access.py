"""Signing in to the guest's page, and what ends a guest's access.

Sign-in links (one use, 15 minutes, a hash stored, 5 an hour, their event), the session's
cookie and its lapse, CSRF, the session as the actor of what the page changes, guest tokens'
TTL, and the end of every session and guest token with a cancellation or an erasure, at once
on every worker. Through the app (Litestar's test client) and the real database; the pages in a
real browser are tests/test_guest_pages_chromium.py.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from rewards import sign_in
from rewards.app import create_app
from rewards.auth import GUEST, Authenticator, create_key
from rewards.config import load_settings
from rewards.engine import Actor, Cancel, unwrap
from rewards.privacy.erasure import erase_now
from rewards.migrations import migrate
from tests.conftest import TESTS, auth, enrollment, purchase
from tests.databases import scratch_database
from tests.guest_support import BROWSER, csrf_of, follow, path_of, session_cookie, sign_in_link, signed_in
from tests.test_api_members import problem


async def events_of(db: Any, member_id: int, kind: str) -> list[dict[str, Any]]:
    rows = await db.run("SELECT data FROM events WHERE member_id = $1 AND type = $2 ORDER BY id", member_id, kind)
    return [r["data"] for r in rows]


# --- links ---------------------------------------------------------------------------------------


async def test_a_link_lasts_15_minutes_and_only_its_tokens_hash_is_stored(client, keys, db, member) -> None:
    before = datetime.now(UTC)
    made = await client.post(f"/v1/members/{member}/sign-in-links", json={}, headers=auth(keys["guest_services"]))
    assert made.status_code == 201, made.text
    assert made.headers["cache-control"] == "no-store"
    url, expires_at = made.json()["url"], datetime.fromisoformat(made.json()["expires_at"])
    assert url.startswith(load_settings().public_url + "/me/sign-in?token=")
    assert before + timedelta(minutes=14, seconds=55) < expires_at <= datetime.now(UTC) + timedelta(minutes=15)
    token = parse_qs(urlsplit(url).query)["token"][0]
    assert len(token) >= 43  # 256 bits
    [row] = await db.run("SELECT token_hash, channel, used_at FROM sign_in_links WHERE member_id = $1", member)
    assert bytes(row["token_hash"]) == hashlib.sha256(token.encode()).digest()
    assert (row["channel"], row["used_at"]) == ("email", None)
    stored = await db.run("SELECT count(*) AS n FROM sign_in_links WHERE token_hash::text LIKE '%' || $1 || '%'",
                          token)
    assert stored[0]["n"] == 0


async def test_the_link_travels_to_the_members_email_or_phone_in_its_event(client, keys, db, make_member) -> None:
    body = enrollment()
    member = await make_member(**{k: body[k] for k in ("email", "phone")})
    by_email = await sign_in_link(client, keys["web_shop"], member)  # the web shop's own scope may ask
    by_text = await sign_in_link(client, keys["guest_services"], member, channel="sms")
    sent = await events_of(db, member, "sign_in_link.created")
    assert [(e["channel"], e["address"], e["url"]) for e in sent] == [
        ("email", body["email"], by_email), ("sms", body["phone"], by_text)]
    assert all(datetime.fromisoformat(e["expires_at"]) > datetime.now(UTC) for e in sent)


async def test_five_links_an_hour_then_429_with_the_wait_and_nothing_written(client, keys, db, make_member) -> None:
    member, other = await make_member(), await make_member()
    for _ in range(sign_in.LINKS_PER_HOUR):
        await sign_in_link(client, keys["guest_services"], member)
    counted = await db.run("SELECT (SELECT count(*) FROM sign_in_links) AS links, (SELECT count(*) FROM events) AS e")
    refused = await client.post(f"/v1/members/{member}/sign-in-links", json={}, headers=auth(keys["guest_services"]))
    body = problem(refused, 429, "rate_limited")
    assert 3500 < body["retry_after"] <= 3600 and refused.headers["retry-after"] == str(body["retry_after"])
    assert await db.run("SELECT (SELECT count(*) FROM sign_in_links) AS links, (SELECT count(*) FROM events) AS e") \
        == counted
    # the limit is the member's: another member is not held back
    await sign_in_link(client, keys["guest_services"], other)
    # an hour later the oldest no longer counts
    await db.run("UPDATE sign_in_links SET created_at = created_at - interval '61 minutes', "
                 "expires_at = expires_at - interval '61 minutes' WHERE member_id = $1", member)
    await sign_in_link(client, keys["guest_services"], member)


async def test_a_link_asks_for_a_known_active_member_and_a_channel(client, keys, member) -> None:
    staff = auth(keys["guest_services"])
    problem(await client.post("/v1/members/999999999/sign-in-links", json={}, headers=staff), 404, "not_found")
    bad = await client.post(f"/v1/members/{member}/sign-in-links", json={"channel": "fax"}, headers=staff)
    assert problem(bad, 422, "validation_error")["field"] == "channel"
    await client.post(f"/v1/members/{member}/cancel", headers=staff)
    problem(await client.post(f"/v1/members/{member}/sign-in-links", json={}, headers=staff), 409,
            "member_not_active")


# --- sessions ------------------------------------------------------------------------------------


async def test_a_link_starts_a_session_once_with_an_httponly_lax_cookie_then_says_it_was_used(
    client, keys, db, member
) -> None:
    url = await sign_in_link(client, keys["guest_services"], member)
    first = await follow(client, url)
    assert first.status_code == 303 and first.headers["location"] == "/me"
    assert first.headers["cache-control"] == "no-store"
    cookie = first.headers["set-cookie"]
    assert cookie.startswith("westique_session=")
    attributes = {a.strip().lower() for a in cookie.split(";")[1:]}
    assert {"httponly", "samesite=lax", "path=/"} <= attributes
    assert "secure" not in attributes  # REWARDS_PUBLIC_URL is http here
    assert not any(a.startswith(("max-age", "expires")) for a in attributes)  # gone when the browser closes
    page = await client.get("/me", headers={**BROWSER, **session_cookie(first)})
    assert page.status_code == 200, page.text
    [row] = await db.run("SELECT s.token_hash, l.used_at FROM guest_sessions s JOIN sign_in_links l "
                         "ON l.id = s.sign_in_link_id WHERE s.member_id = $1", member)
    assert row["used_at"] is not None
    assert bytes(row["token_hash"]) == hashlib.sha256(session_cookie(first)["cookie"].split("=", 1)[1].encode()).digest()

    again = await follow(client, url)
    assert again.status_code == 410 and "text/html" in again.headers["content-type"]
    assert "was used already" in again.text and "link_expired" in again.text
    assert "set-cookie" not in again.headers
    api = await client.get(path_of(url), follow_redirects=False)  # not a browser: problem+json
    assert problem(api, 410, "link_expired")["detail"].startswith("this sign-in link was used already")


async def test_an_expired_link_or_one_never_made_explains_itself(client, keys, db, member) -> None:
    url = await sign_in_link(client, keys["guest_services"], member)
    await db.run("UPDATE sign_in_links SET created_at = created_at - interval '16 minutes', "
                 "expires_at = expires_at - interval '16 minutes' WHERE member_id = $1", member)
    expired = await follow(client, url)
    assert expired.status_code == 410 and "expired" in expired.text
    assert (await db.run("SELECT count(*) AS n FROM guest_sessions WHERE member_id = $1", member))[0]["n"] == 0
    unknown = await follow(client, "/me/sign-in?token=" + "x" * 43)
    assert unknown.status_code == 404 and "invalid_link" in unknown.text
    assert (await follow(client, "/me/sign-in")).status_code == 404


async def test_without_a_live_session_a_page_says_how_to_sign_in(client, keys, db, member) -> None:
    nobody = await client.get("/me", headers=BROWSER)
    assert nobody.status_code == 401 and "sign_in_required" in nobody.text and "register" in nobody.text
    assert (await client.get("/me", headers={**BROWSER, "cookie": "westique_session=forged"})).status_code == 401
    problem(await client.get("/me/activity"), 401, "sign_in_required")

    browser = await signed_in(client, keys["guest_services"], member)
    assert (await client.get("/me", headers=browser)).status_code == 200
    # 30 minutes without a request: lapsed
    await db.run("UPDATE guest_sessions SET last_seen_at = now() - interval '31 minutes' WHERE member_id = $1", member)
    assert (await client.get("/me", headers=browser)).status_code == 401
    # in use, but started more than 12 hours ago: lapsed too
    browser = await signed_in(client, keys["guest_services"], member)
    await db.run("UPDATE guest_sessions SET created_at = now() - interval '12 hours 1 minute' "
                 "WHERE member_id = $1 AND ended_at IS NULL", member)
    assert (await client.get("/me", headers=browser)).status_code == 401


async def test_a_request_keeps_the_session_alive(client, keys, db, member) -> None:
    browser = await signed_in(client, keys["guest_services"], member)
    await db.run("UPDATE guest_sessions SET last_seen_at = now() - interval '29 minutes' WHERE member_id = $1", member)
    assert (await client.get("/me/activity", headers=browser)).status_code == 200
    [row] = await db.run("SELECT now() - last_seen_at AS idle FROM guest_sessions WHERE member_id = $1", member)
    assert row["idle"] < timedelta(minutes=1)


async def test_signing_out_ends_the_session_and_clears_the_cookie(client, keys, db, member) -> None:
    browser = await signed_in(client, keys["guest_services"], member)
    csrf = csrf_of((await client.get("/me", headers=browser)).text)
    out = await client.post("/me/sign-out", data={"csrf_token": csrf}, headers=browser)
    assert out.status_code == 200 and "You are signed out" in out.text
    assert "max-age=0" in out.headers["set-cookie"].lower()
    [row] = await db.run("SELECT ended_at FROM guest_sessions WHERE member_id = $1", member)
    assert row["ended_at"] is not None
    assert (await client.get("/me", headers=browser)).status_code == 401


async def test_behind_https_the_cookie_is_secure_and_host_prefixed(app: Any, keys, member) -> None:
    settings = msgspec.structs.replace(load_settings(), public_url="https://rewards.westique.example")
    async with AsyncTestClient(app=create_app(settings)) as secure:
        url = await sign_in_link(secure, keys["guest_services"], member)
        assert url.startswith("https://rewards.westique.example/me/sign-in?token=")
        answer = await follow(secure, url)
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("__Host-westique_session=")
    assert {"secure", "httponly", "samesite=lax", "path=/"} <= {a.strip().lower() for a in cookie.split(";")[1:]}
    assert "domain" not in cookie.lower()


async def test_the_session_cookie_opens_no_api_route(client, keys, member) -> None:
    browser = await signed_in(client, keys["guest_services"], member)
    for path in (f"/v1/members/{member}", f"/v1/members/{member}/balance", f"/v1/members/{member}/export"):
        problem(await client.get(path, headers={"cookie": browser["cookie"]}), 401, "unauthorized")


# --- the pages' safety ---------------------------------------------------------------------------


async def test_every_page_answers_no_store_and_a_policy_with_no_script(client, keys, member) -> None:
    browser = await signed_in(client, keys["guest_services"], member)
    for path in ("/me", "/me/activity", "/me/subscriptions", "/me/data", "/me/cancel", "/me/data/export.json"):
        answer = await client.get(path, headers=browser)
        assert answer.status_code == 200, (path, answer.text)
        assert answer.headers["cache-control"] == "no-store"
        policy = answer.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "script-src" not in policy and "unsafe-inline" not in policy
        assert "frame-ancestors 'none'" in policy and "form-action 'self'" in policy
        if path.endswith(".json"):
            assert answer.headers["content-disposition"].startswith("attachment;")
            continue
        assert "<script" not in answer.text.lower() and " style=" not in answer.text
        assert answer.text.count('name="csrf_token"') == answer.text.count("<form")


async def test_a_hostile_name_is_shown_as_text(client, keys, make_member) -> None:
    member = await make_member(name="<script>alert('pwned')</script> O'Brien")
    page = await client.get("/me", headers=await signed_in(client, keys["guest_services"], member))
    assert "Hi, &lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;" in page.text
    assert "<script" not in page.text


async def test_a_form_without_the_sessions_token_or_from_another_site_changes_nothing(
    client, keys, db, make_member
) -> None:
    member, other = await make_member(), await make_member()
    browser = await signed_in(client, keys["guest_services"], member)
    theirs = await signed_in(client, keys["guest_services"], other)
    mine = csrf_of((await client.get("/me/cancel", headers=browser)).text)
    other_token = csrf_of((await client.get("/me/cancel", headers=theirs)).text)
    for form, extra in [({}, {}), ({"csrf_token": "0" * 64}, {}), ({"csrf_token": other_token}, {}),
                        ({"csrf_token": mine}, {"sec-fetch-site": "cross-site"}),
                        ({"csrf_token": mine}, {"origin": "https://attacker.example"})]:
        for path in ("/me/cancel", "/me/subscriptions", "/me/sign-out"):
            answer = await client.post(path, data=form, headers={**browser, **extra})
            assert answer.status_code == 403 and "forbidden" in answer.text, (path, form, extra)
    [row] = await db.run("SELECT status FROM members WHERE id = $1", member)
    assert row["status"] == "active"
    assert (await client.get("/me", headers=browser)).status_code == 200


# --- the session as the actor --------------------------------------------------------------------


async def test_cancelling_on_the_page_records_the_session_and_ends_every_access(client, keys, db, member) -> None:
    bought = await client.post("/v1/purchases", json=purchase(member, 35_000), headers=auth(keys["checkout"]))
    assert bought.status_code == 201, bought.text
    guest_token = auth(await create_key(db, [GUEST], member_id=member))
    other_browser = await signed_in(client, keys["guest_services"], member)
    browser = await signed_in(client, keys["guest_services"], member)
    confirm = await client.get("/me/cancel", headers=browser)
    assert "your 50.00 points are given up" in confirm.text and "1 open reward ($10)" in confirm.text
    done = await client.post("/me/cancel", data={"csrf_token": csrf_of(confirm.text)}, headers=browser)
    assert done.status_code == 200 and "Your membership is cancelled" in done.text
    assert "max-age=0" in done.headers["set-cookie"].lower()

    [session] = await db.run("SELECT id FROM guest_sessions WHERE token_hash = $1",
                             hashlib.sha256(browser["cookie"].split("=", 1)[1].encode()).digest())
    entries = await db.run("SELECT kind, actor_session_id, actor_key_id, actor_system FROM ledger "
                           "WHERE member_id = $1 AND kind IN ('forfeit', 'reward_voided')", member)
    assert sorted(e["kind"] for e in entries) == ["forfeit", "reward_voided"]
    assert all((e["actor_session_id"], e["actor_key_id"], e["actor_system"]) == (session["id"], None, None)
               for e in entries)
    # every session and guest token of the member ended with it
    for headers in (browser, other_browser):
        assert (await client.get("/me", headers=headers)).status_code == 401
    problem(await client.get(f"/v1/members/{member}/balance", headers=guest_token), 401, "unauthorized")
    assert await db.run("SELECT id FROM guest_sessions WHERE member_id = $1 AND ended_at IS NULL", member) == []
    assert await db.run("SELECT id FROM api_keys WHERE member_id = $1 AND revoked_at IS NULL", member) == []


async def test_texts_switched_off_and_email_on_are_recorded_with_the_session(client, keys, db, make_member) -> None:
    body = enrollment()
    member = await make_member(**{k: body[k] for k in ("email", "phone")})
    staff = auth(keys["guest_services"])
    made = await client.post("/v1/subscriptions", json={"channel": "sms", "address": body["phone"],
                                                        "source": "store", "member_id": member}, headers=staff)
    assert made.status_code == 201, made.text
    browser = await signed_in(client, keys["guest_services"], member)
    page = await client.get("/me/subscriptions", headers=browser)
    assert re.search(r'id="sms" name="sms" value="on" checked', page.text)
    assert re.search(r'id="email" name="email" value="on">', page.text)

    saved = await client.post("/me/subscriptions", data={"csrf_token": csrf_of(page.text), "email": "on"},
                              headers=browser, follow_redirects=False)
    assert saved.status_code == 303 and saved.headers["location"] == "/me/subscriptions?saved=1"
    shown = await client.get(saved.headers["location"], headers=browser)
    assert "Your choices are saved." in shown.text
    assert re.search(r'id="email" name="email" value="on" checked', shown.text)
    assert re.search(r'id="sms" name="sms" value="on">', shown.text)

    [session] = await db.run("SELECT id FROM guest_sessions WHERE member_id = $1", member)
    changes = await db.run(
        """SELECT s.channel, e.kind, e.source, e.detail, e.actor_session_id FROM subscription_events e
           JOIN subscriptions s ON s.id = e.subscription_id WHERE s.member_id = $1 ORDER BY e.id""", member)
    assert [tuple(c) for c in changes] == [
        ("sms", "subscribed", "store", None, None),
        ("email", "subscribed", "online", None, session["id"]),
        ("sms", "unsubscribed", "online", "guest page", session["id"]),
    ]
    # saving the same choices again records nothing
    await client.post("/me/subscriptions", data={"csrf_token": csrf_of(shown.text), "email": "on"}, headers=browser)
    assert len(await db.run("SELECT e.id FROM subscription_events e JOIN subscriptions s ON s.id = e.subscription_id "
                            "WHERE s.member_id = $1", member)) == 3


async def test_the_activity_is_explained_in_words_twenty_entries_a_page(client, keys, member) -> None:
    for n in range(11):  # 11 purchases paid by card: 22 entries, no reward
        posted = await client.post("/v1/purchases", headers=auth(keys["checkout"]), json=purchase(
            member, 1000 + n, method="westique_credit_card", store_id=f"S{n:03d}"))
        assert posted.status_code == 201, posted.text
    browser = await signed_in(client, keys["guest_services"], member)
    first = (await client.get("/me/activity", headers=browser)).text
    assert first.count('class="when"') == 20
    assert "10.10 points for a purchase at store S010" in first
    assert "10.10 bonus points for paying with the Westique Credit Card (a purchase at store S010)" in first
    older = re.search(r'href="/me/activity\?before=(\d+)">Older', first)
    assert older and "Newest" not in first
    second = (await client.get(f"/me/activity?before={older.group(1)}", headers=browser)).text
    assert second.count('class="when"') == 2 and "Older" not in second and 'href="/me/activity">Newest' in second
    assert "10.00 points for a purchase at store S000" in second and "+10.00" in second
    # a page number that is not one starts at the newest
    assert (await client.get("/me/activity?before=x", headers=browser)).text.count('class="when"') == 20


# --- guest tokens and the end of access ----------------------------------------------------------


async def test_a_guest_token_lasts_30_days_unless_told_and_then_stops(client, db, make_member) -> None:
    member = await make_member()
    default = await create_key(db, [GUEST], member_id=member)
    week = await create_key(db, [GUEST], member_id=member, ttl=timedelta(days=7))
    lasts = [r["lasts"] for r in await db.run(
        "SELECT expires_at - created_at AS lasts FROM api_keys WHERE member_id = $1 ORDER BY id", member)]
    assert lasts == [timedelta(days=30), timedelta(days=7)]
    staff_key = await create_key(db, ["checkout"], label="till 9")
    assert (await db.run("SELECT expires_at FROM api_keys WHERE label = 'till 9'"))[0]["expires_at"] is None
    assert (await client.get(f"/v1/members/{member}/balance", headers=auth(staff_key))).status_code == 200
    assert (await client.get(f"/v1/members/{member}", headers=auth(default))).status_code == 200
    await db.run("UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE token_hash = sha256($1::bytea)",
                 week.encode())
    problem(await client.get(f"/v1/members/{member}", headers=auth(week)), 401, "unauthorized")
    for ttl in (timedelta(days=367), timedelta(0)):
        with pytest.raises(Exception, match="ttl|time to live|at most"):
            await create_key(db, [GUEST], member_id=member, ttl=ttl)


async def test_cancel_and_erasure_end_guest_tokens_at_once_on_every_worker(db, engine, make_member) -> None:
    cancelled, erased = await make_member(), await make_member()
    workers = [Authenticator(db), Authenticator(db)]  # two workers, each with its own cache
    tokens = {m: f"Bearer {await create_key(db, [GUEST], member_id=m)}" for m in (cancelled, erased)}
    staff = f"Bearer {await create_key(db, ['checkout'])}"
    for worker in workers:
        for member, token in tokens.items():
            assert (await worker.principal(token)).member_id == member
        await worker.principal(staff)
    unwrap(await engine.submit(Cancel(cancelled, TESTS)))
    await erase_now(engine, erased, TESTS, "consumer_confirmed")
    for worker in workers:
        for token in tokens.values():
            with pytest.raises(Exception, match="not valid"):
                await worker.principal(token)
        assert (await worker.principal(staff)).scopes == {"checkout"}
    assert await db.run("SELECT id FROM api_keys WHERE member_id = ANY($1::bigint[]) AND revoked_at IS NULL",
                        [cancelled, erased]) == []
    # and no new one is made for them
    for member in (cancelled, erased):
        with pytest.raises(Exception, match="only an active member"):
            await create_key(db, [GUEST], member_id=member)


async def test_erasing_a_member_cancelled_before_ends_what_is_left_and_clears_the_links_address(
    client, keys, db, engine, make_member
) -> None:
    body = enrollment()
    member = await make_member(**{k: body[k] for k in ("email", "phone")})
    browser = await signed_in(client, keys["guest_services"], member)
    unwrap(await engine.submit(Cancel(member, TESTS)))
    # a session that outlived the cancellation (it cannot, but erasure does not rely on it)
    await db.run("UPDATE guest_sessions SET ended_at = NULL WHERE member_id = $1", member)
    await erase_now(engine, member, Actor(system="tests"), "consumer_confirmed")
    assert (await client.get("/me", headers=browser)).status_code == 401
    [event] = await events_of(db, member, "sign_in_link.created")
    assert "address" not in event and event["address_erased_at"]
    assert body["email"] not in str(event)


async def test_keys_create_takes_a_ttl_and_the_web_shop_scope(database_url, client, make_member, db,
                                                              tmp_path: Path) -> None:
    from tests.test_cli import TOKEN, rewards

    member = await make_member()
    code, out, err = await rewards(database_url, "keys", "create", "--scope", "guest", "--member", str(member),
                                   "--ttl", "12h", tmp_path=tmp_path)
    assert code == 0, err
    token = out.splitlines()[-1]
    assert TOKEN.match(token) and "expires" in err
    [row] = await db.run("SELECT expires_at - created_at AS lasts FROM api_keys WHERE token_hash = sha256($1::bytea)",
                         token.encode())
    assert row["lasts"] == timedelta(hours=12)
    code, out, err = await rewards(database_url, "keys", "create", "--scope", "web_shop", "--label", "shop",
                                   tmp_path=tmp_path)
    assert code == 0, err
    link = await client.post(f"/v1/members/{member}/sign-in-links", json={}, headers=auth(out.splitlines()[-1]))
    assert link.status_code == 201, link.text
    code, out, err = await rewards(database_url, "keys", "create", "--scope", "guest", "--member", str(member),
                                   "--ttl", "soon", tmp_path=tmp_path)
    assert code != 0 and not TOKEN.search(out + err) and "duration" in err


async def test_revision_0007_dates_guest_tokens_and_ends_those_of_cancelled_members(database_url) -> None:
    import asyncpg

    async with scratch_database(database_url, "rewards_0007", migrated=False) as url:
        await migrate(url, target="0006")
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(
                """INSERT INTO members (id, name, email, phone, birth_date, state, status, cancelled_at)
                   VALUES (1, 'A', 'a@example.com', '+15550000001', '1980-01-01', 'CA', 'active', NULL),
                          (2, 'B', 'b@example.com', '+15550000002', '1980-01-01', 'CA', 'cancelled', now())""")
            await conn.execute(
                """INSERT INTO api_keys (token_hash, scopes, member_id) VALUES
                   ('\\x01', ARRAY['guest'], 1), ('\\x02', ARRAY['guest'], 2), ('\\x03', ARRAY['checkout'], NULL)""")
        finally:
            await conn.close()
        await migrate(url)
        conn = await asyncpg.connect(url)
        try:
            rows = {r["member_id"]: r for r in await conn.fetch(
                "SELECT member_id, expires_at - now() AS left, revoked_at FROM api_keys ORDER BY id")}
        finally:
            await conn.close()
    assert timedelta(days=29, hours=23) < rows[1]["left"] <= timedelta(days=30) and rows[1]["revoked_at"] is None
    assert rows[2]["revoked_at"] is not None
    assert rows[None]["left"] is None and rows[None]["revoked_at"] is None
