"""``Idempotency-Key`` on ``POST /v1/jobs`` (contract section 3, README "Idempotency"): replays,
the key's scope and format, a replay after the job was deleted. (Two requests racing with one
key need the real process model: tests/e2e/test_concurrency.py.)"""
from __future__ import annotations

import pytest

from tests.contract import unique


def create(client, key: str | None, body: dict | None = None):
    headers = {"Idempotency-Key": key} if key is not None else {}
    return client.post("/v1/jobs", json=body if body is not None else {}, headers=headers)


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
    assert second.json() == first.json()
    third = create(api, key, body)
    assert third.status_code == 201 and replayed(third) and third.json()["id"] == first.json()["id"]
    assert api.list_ids() == [first.json()["id"]], "only one job exists"


def test_the_same_body_written_differently_is_the_same_request(api):
    key = unique("idem")
    first = api.post("/v1/jobs", data='{"metadata": {"a": 1, "b": 2}, "job_type": "run"}',
                     headers={"Idempotency-Key": key, "Content-Type": "application/json"})
    again = api.post("/v1/jobs", data='{"job_type":"run","metadata":{"b":2,"a":1}}',
                     headers={"Idempotency-Key": key, "Content-Type": "application/json"})
    assert first.status_code == again.status_code == 201, (first.text, again.text)
    assert replayed(again) and again.json()["id"] == first.json()["id"]
    assert api.list_ids() == [first.json()["id"]]


def test_replay_returns_the_job_as_it_is_now(api, tag):
    key = unique("idem")
    body = {"metadata": {"source_id": tag}}
    job = create(api, key, body).json()
    moved = api.patch_ok(job["id"], status="pending")
    again = create(api, key, body)
    assert again.status_code == 201 and replayed(again)
    assert again.json() == moved
    assert api.list_ids() == [job["id"]]


def test_same_key_different_body_is_422_and_creates_nothing(api, tag):
    key = unique("idem")
    first = create(api, key, {"metadata": {"source_id": tag}})
    assert first.status_code == 201
    for different in (
        {"metadata": {"source_id": tag, "extra": 1}},
        {"metadata": {"source_id": tag}, "job_type": "run"},
        {"metadata": {"source_id": tag}, "status": "running"},
        {"metadata": {"source_id": tag + "-other"}},
        {},
    ):
        response = create(api, key, different)
        assert response.status_code == 422, (different, response.status_code, response.text)
        assert response.json()["detail"]
        assert not replayed(response)
    assert api.list_ids() == [first.json()["id"]]
    assert api.job(first.json()["id"]) == first.json()


def test_the_same_key_in_another_organization_is_independent(api, other, tag):
    key = unique("idem")
    body = {"metadata": {"source_id": tag}}
    mine = create(api, key, body)
    theirs = create(other, key, body)
    assert mine.status_code == theirs.status_code == 201
    assert not replayed(theirs), "another organization's key is not a replay of mine"
    assert theirs.json()["id"] != mine.json()["id"]
    assert api.list_ids() == [mine.json()["id"]]
    assert other.list_ids() == [theirs.json()["id"]]
    # and each organization replays its own
    assert create(other, key, body).json()["id"] == theirs.json()["id"]
    assert create(api, key, body).json()["id"] == mine.json()["id"]
    # a different body under the same key in the other organization is still refused there only
    assert create(other, key, {"metadata": {"source_id": tag, "x": 1}}).status_code == 422
    assert create(api, key, body).status_code == 201


def test_a_colleague_replays_the_organizations_key(api, colleague):
    key = unique("idem")
    mine = create(api, key, {"metadata": {"a": 1}})
    theirs = create(colleague, key, {"metadata": {"a": 1}})
    assert replayed(theirs) and theirs.json() == mine.json(), "the key is the organization's, not the user's"


def test_different_keys_or_no_key_create_different_jobs(api):
    body = {"metadata": {"same": True}}
    responses = [create(api, unique("idem"), body), create(api, unique("idem"), body), create(api, None, body),
                 create(api, None, body)]
    assert all(r.status_code == 201 and not replayed(r) for r in responses)
    ids = [r.json()["id"] for r in responses]
    assert len(set(ids)) == 4
    assert sorted(api.list_ids()) == sorted(ids)


def test_a_replay_after_the_job_was_deleted_is_409_and_creates_nothing(api):
    key = unique("idem")
    job = create(api, key, {"metadata": {"a": 1}}).json()
    assert api.delete(f"/v1/jobs/{job['id']}").status_code == 200
    again = create(api, key, {"metadata": {"a": 1}})
    assert again.status_code == 409, again.text
    assert again.json()["detail"] and not replayed(again)
    assert api.list_ids() == [], "the replay made no new job"
    assert create(api, key, {"metadata": {"a": 1}}).status_code == 409, "and stays 409"


KEYS_ACCEPTED = {
    "1 byte": "k",
    "255 bytes": "k" * 255,
    "255 bytes of two-byte characters and one": "é" * 127 + "k",
    "printable punctuation and spaces": "order 42: !#$%&'()*+,-./;<=>?@[]^_`{|}~",
}
KEYS_REFUSED = {
    "empty": "",
    "256 bytes": "k" * 256,
    "256 bytes of two-byte characters": "é" * 128,
    "a tab": "order\t42",
    "a control character": "order\x0742",
    "DEL": "order\x7f",
}


@pytest.mark.parametrize("key", KEYS_ACCEPTED.values(), ids=KEYS_ACCEPTED.keys())
def test_keys_of_1_to_255_bytes_of_printable_characters_are_accepted(api, key):
    first = create(api, key, {"metadata": {"k": 1}})
    assert first.status_code == 201, first.text
    again = create(api, key, {"metadata": {"k": 1}})
    assert again.status_code == 201 and replayed(again) and again.json()["id"] == first.json()["id"]
    assert api.list_ids() == [first.json()["id"]]


@pytest.mark.parametrize("key", KEYS_REFUSED.values(), ids=KEYS_REFUSED.keys())
def test_other_keys_are_422_and_create_nothing(api, key):
    response = create(api, key, {"metadata": {"k": 1}})
    assert response.status_code == 422, (response.status_code, response.text)
    assert response.json()["detail"]
    assert api.list_ids() == []
