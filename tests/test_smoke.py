from tests.conftest import auth, purchase


async def test_enroll_purchase_balance_end_to_end(client, keys, member):
    posted = await client.post("/v1/purchases", json=purchase(member, 30000), headers=auth(keys["checkout"]))
    assert posted.status_code == 201, posted.text
    assert posted.json()["point_cents_earned"] == 30000
    assert len(posted.json()["rewards_issued"]) == 1
    balance = await client.get(f"/v1/members/{member}/balance", headers=auth(keys["checkout"]))
    assert balance.json()["points"] == 0
    assert balance.json()["rewards"][0]["status"] == "issued"
