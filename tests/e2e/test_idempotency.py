"""``Idempotency-Key`` on ``POST /v1/jobs`` (contract section 3)."""
from __future__ import annotations

from e2e_support import unique


def create(client, key: str | None, body: dict):
    headers = {"Idempotency-Key": key} if key is not None else {}
    return client.post("/v1/jobs", json=body, headers=headers)


def replayed(response) -> bool:
    return response.headers.get("Idempotent-Replayed", "").lower() == "true"


def test_same_key_same_body_returns_the_same_job_once(api, tag):
    key = unique("idem")
    body = {"job_type": "run", "metadata": {"source_id": tag, "n": 1}, "background": True}
    first = create(api, key, body)
    assert first.status_code == 201, first.text
    assert not replayed(first), "the first create is not a replay"
    second = create(api, key, body)
    assert second.status_code == 201, second.text
    assert replayed(second)
    assert second.json()["id"] == first.json()["id"]
    assert second.json() == first.json()
    assert api.list_ids(source_id=tag) == [first.json()["id"]], "only one job exists"
    third = create(api, key, body)
    assert third.status_code == 201 and replayed(third) and third.json()["id"] == first.json()["id"]
    assert len(api.list(source_id=tag)) == 1


def test_replay_returns_the_job_as_it_is_now(api, tag):
    key = unique("idem")
    body = {"metadata": {"source_id": tag}}
    job = create(api, key, body).json()
    moved = api.patch_ok(job["id"], status="pending")
    again = create(api, key, body)
    assert again.status_code == 201 and replayed(again)
    assert again.json()["id"] == job["id"]
    assert again.json()["status"] == moved["status"] == "pending"
    assert api.list_ids(source_id=tag) == [job["id"]]


def test_same_key_different_body_is_422_and_creates_nothing(api, tag):
    key = unique("idem")
    first = create(api, key, {"metadata": {"source_id": tag}})
    assert first.status_code == 201
    for different in (
        {"metadata": {"source_id": tag, "extra": 1}},
        {"metadata": {"source_id": tag}, "job_type": "run"},
        {"metadata": {"source_id": tag}, "status": "running"},
        {"metadata": {"source_id": tag + "-other"}},
    ):
        response = create(api, key, different)
        assert response.status_code == 422, (different, response.status_code, response.text)
        assert response.json()["detail"]
        assert not replayed(response)
    assert api.list_ids(source_id=tag) == [first.json()["id"]]
    assert api.list_ids(source_id=tag + "-other") == []
    assert api.job(first.json()["id"]) == first.json()


def test_the_same_key_in_another_organization_is_independent(api, other, tag):
    key = unique("idem")
    body = {"metadata": {"source_id": tag}}
    mine = create(api, key, body)
    theirs = create(other, key, body)
    assert mine.status_code == theirs.status_code == 201
    assert not replayed(theirs), "another organization's key is not a replay of mine"
    assert theirs.json()["id"] != mine.json()["id"]
    assert theirs.json()["organization_id"] != mine.json()["organization_id"]
    assert api.list_ids(source_id=tag) == [mine.json()["id"]]
    assert other.list_ids(source_id=tag) == [theirs.json()["id"]]
    # and each organization replays its own
    assert create(other, key, body).json()["id"] == theirs.json()["id"]
    assert create(api, key, body).json()["id"] == mine.json()["id"]
    # a different body under the same key in the other organization is still refused there only
    assert create(other, key, {"metadata": {"source_id": tag, "x": 1}}).status_code == 422


def test_different_keys_or_no_key_create_different_jobs(api, tag):
    body = {"metadata": {"source_id": tag}}
    a = create(api, unique("idem"), body)
    b = create(api, unique("idem"), body)
    c = create(api, None, body)
    d = create(api, None, body)
    assert all(r.status_code == 201 and not replayed(r) for r in (a, b, c, d))
    assert len({r.json()["id"] for r in (a, b, c, d)}) == 4
    assert len(api.list_ids(source_id=tag)) == 4
