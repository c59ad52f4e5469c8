"""The stored disclosures and the published terms and notice, through the API."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from tests.conftest import auth, enrollment, unique


async def test_a_new_install_has_the_default_disclosures_and_documents(client, keys):
    shown = await client.get("/v1/program/disclosures", headers=auth(keys["admin"]))
    assert shown.status_code == 200
    d = shown.json()["disclosures"]
    assert d["guest_services"]["phone"] and "@" in d["guest_services"]["email"]
    assert {"rewards", "mailing_list"} <= {p for c in d["categories"] for p in c["programs"]}
    assert d["sale_and_sharing"]["sold"] is False and d["sale_and_sharing"]["shared_for_targeted_advertising"] is False
    assert d["colorado_loyalty"]["deletion_impact"] and d["colorado_loyalty"]["sensitive_data"]
    documents = (await client.get("/v1/program/documents", params={"kind": "notice"},
                                  headers=auth(keys["admin"]))).json()["items"]
    first = documents[0]
    assert (first["kind"], first["version"]) == ("notice", "2023-10-30")
    assert first["sha256"] == hashlib.sha256(first["text"].encode()).hexdigest()
    assert "$10" in first["text"] and "300 points" in first["text"]


async def test_stored_disclosures_are_versioned_and_checked(client, keys):
    admin = auth(keys["admin"])
    before = (await client.get("/v1/program/disclosures", headers=admin)).json()
    broken = before["disclosures"] | {"guest_services": {"phone": "1-800-555-0100", "email": "gs@example.com"}}
    broken["notice"] = {**broken["notice"], "rewards": {**broken["notice"]["rewards"],
                                                         "withdrawal": ["Write to us at {guest_services_email}."]}}
    refused = await client.put("/v1/program/disclosures", json=broken, headers=admin)
    assert refused.status_code == 422
    assert refused.json()["field"] == "notice.rewards.withdrawal"
    assert "guest_services_phone" in refused.json()["detail"]
    assert (await client.get("/v1/program/disclosures", headers=admin)).json()["version"] == before["version"]
    unknown_field = await client.put("/v1/program/disclosures", json=before["disclosures"] | {"x": 1}, headers=admin)
    assert unknown_field.status_code == 422

    changed = before["disclosures"] | {"guest_services": {"phone": "1-800-555-0100", "email": "gs@example.com"}}
    stored = await client.put("/v1/program/disclosures", json=changed, headers=admin)
    assert stored.status_code == 201, stored.text
    assert stored.json()["version"] == before["version"] + 1
    now = (await client.get("/v1/program/disclosures", headers=admin)).json()
    assert now["disclosures"]["guest_services"]["phone"] == "1-800-555-0100"
    restored = await client.put("/v1/program/disclosures", json=before["disclosures"], headers=admin)
    assert restored.json()["version"] == before["version"] + 2


async def test_published_documents_are_immutable_and_take_effect_no_earlier_than_now(client, keys):
    admin = auth(keys["admin"])
    version = unique("N")[:32]
    body = {"kind": "notice", "version": version, "text": "Notice of Financial Incentive, version " + version}
    first = await client.put("/v1/program/documents", json=body, headers=admin)
    assert first.status_code == 201, first.text
    again = await client.put("/v1/program/documents", json=body, headers=admin)
    assert again.status_code == 200 and again.json() == first.json()
    other = await client.put("/v1/program/documents", json=body | {"text": "another text"}, headers=admin)
    assert other.status_code == 409 and other.json()["code"] == "document_version_exists"
    past = await client.put("/v1/program/documents", headers=admin, json={
        "kind": "terms", "version": unique("T")[:32], "text": "t",
        "effective_from": (datetime.now(UTC) - timedelta(days=2)).isoformat()})
    assert past.status_code == 422 and past.json()["field"] == "effective_from"


async def test_enrollment_names_a_published_version_in_effect(client, keys, db):
    staff, admin = auth(keys["guest_services"]), auth(keys["admin"])
    unknown = enrollment(notice_version="1999-01-01")
    refused = await client.post("/v1/members", json=unknown, headers=staff)
    assert refused.status_code == 422
    assert refused.json()["code"] == "unknown_notice_version" and refused.json()["field"] == "notice_version"
    assert await db.run("SELECT 1 FROM members WHERE email = $1", unknown["email"]) == []  # nothing written
    terms = await client.post("/v1/members", json=enrollment(terms_version="nope"), headers=staff)
    assert terms.status_code == 422 and terms.json()["code"] == "unknown_terms_version"

    later = unique("N")[:32]
    published = await client.put("/v1/program/documents", headers=admin, json={
        "kind": "notice", "version": later, "text": "a notice to come",
        "effective_from": (datetime.now(UTC) + timedelta(days=3)).isoformat()})
    assert published.status_code == 201
    not_yet = await client.post("/v1/members", json=enrollment(notice_version=later), headers=staff)
    assert not_yet.status_code == 422 and not_yet.json()["code"] == "unknown_notice_version"

    joined = await client.post("/v1/members", json=enrollment(), headers=staff)
    assert joined.status_code == 201
    (consent,) = await db.run(
        """SELECT n.version, n.kind, n.sha256 FROM consents c JOIN program_documents n ON n.id = c.notice_document_id
           WHERE c.member_id = $1""", joined.json()["member_id"])
    assert (consent["kind"], consent["version"]) == ("notice", "2023-10-30")
