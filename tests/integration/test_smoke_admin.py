from tests.conftest import history


def test_create_list_revoke_key(client, org, application):
    created = client.post("/admin/v1/api-keys", json={"name": "ci"}, headers=org.headers)
    assert created.status_code == 201
    assert created.json["key"].startswith("tenzo_pk_")
    listed = client.get("/admin/v1/api-keys", headers=org.headers).json["items"]
    assert [item["id"] for item in listed] == [created.json["id"]]
    before = history(application)
    bad = client.post("/admin/v1/api-keys", json={"name": ""}, headers=org.headers)
    assert bad.status_code == 422
    assert history(application) == before
