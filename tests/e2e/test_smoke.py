def test_health_is_public(anonymous):
    response = anonymous.get("/v1/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_create_and_read(api):
    job = api.create(metadata={"a": 1})
    got = api.get(f"/v1/jobs/{job['id']}")
    assert got.status_code == 200
    assert got.json() == job
