"""Tenant isolation (contract section 1): another organization's job "does not exist" for you."""
from __future__ import annotations

import pytest

from tests.contract import job_routes, shift_id


@pytest.fixture
def alpha_job(api, tag) -> dict:
    job = api.create(status="running", job_type="run", metadata={"source_id": tag, "secret": "alpha"})
    message = api.post(f"/v1/jobs/{job['id']}/messages", json={"role": "user", "content": "alpha only"})
    assert message.status_code == 201
    return {"job": api.job(job["id"]), "messages": [message.json()], "tag": tag}


def test_every_job_route_answers_404_to_another_organization(api, other, alpha_job):
    job = alpha_job["job"]
    # the same routes on an id that exists nowhere: bravo must not be able to tell the difference
    ghost = shift_id(job["id"], 1)
    for (method, path, body), (_, ghost_path, _) in zip(job_routes(job["id"]), job_routes(ghost)):
        response = other.request(method, path, json=body)
        assert response.status_code == 404, (method, path, response.status_code, response.text)
        detail = response.json()["detail"]
        assert detail
        answer_for_ghost = other.request(method, ghost_path, json=body)
        assert answer_for_ghost.status_code == 404
        assert answer_for_ghost.json() == {"detail": detail.replace(job["id"], ghost)}, (method, path)
        assert "alpha" not in response.text
    assert api.job(job["id"]) == job, "nothing bravo did changed alpha's job"
    assert api.list(f"/v1/jobs/{job['id']}/messages") == alpha_job["messages"]


def test_every_batch_route_answers_404_to_another_organization(api, other):
    batch = api.post("/v1/batches", json={"provider": "simulated", "requests": [{"custom_id": "a", "params": {}}]}).json()
    for method, suffix in [("GET", ""), ("GET", "/items"), ("PATCH", "/cancel")]:
        response = other.request(method, f"/v1/batches/{batch['id']}{suffix}")
        assert response.status_code == 404, (method, suffix, response.text)
    assert other.list("/v1/batches") == [] and other.list(job_type="batch") == []
    assert api.get(f"/v1/batches/{batch['id']}").json() == batch, "bravo's cancel did not reach alpha's batch"


def test_another_organizations_job_is_never_listed(api, other, alpha_job):
    job, tag = alpha_job["job"], alpha_job["tag"]
    finished = api.drive("completed", job_type="run", metadata={"source_id": tag})
    for filters in (
        {},
        {"limit": 1000, "order": "asc"},
        {"status": "running"},
        {"status": "completed"},
        {"active": "true"},
        {"active": "false"},
        {"job_type": "run"},
        {"source_id": tag},
        {"status": "running", "job_type": "run", "source_id": tag},
        {"active": "true", "source_id": tag},
        {"active": "false", "source_id": tag},
    ):
        assert other.list_ids(**filters) == [], filters
        # alpha does see them under the same filters (so the filters themselves would match)
        assert set(api.list_ids(**filters)) & {job["id"], finished["id"]}, filters


def test_each_organization_lists_only_its_own_jobs_under_a_shared_source_id(api, other, tag):
    mine = api.create(metadata={"source_id": tag})
    theirs = other.create(metadata={"source_id": tag})
    assert api.list_ids(source_id=tag) == [mine["id"]]
    assert other.list_ids(source_id=tag) == [theirs["id"]]
    assert theirs["organization_id"] != mine["organization_id"]
    assert api.list() == [mine] and other.list() == [theirs]


def test_bravo_cannot_end_or_delete_alphas_job(api, other, alpha_job):
    job = alpha_job["job"]
    assert other.patch(f"/v1/jobs/{job['id']}/cancel").status_code == 404
    assert other.delete(f"/v1/jobs/{job['id']}").status_code == 404
    assert other.patch(f"/v1/jobs/{job['id']}", json={"status": "failed"}).status_code == 404
    assert api.job(job["id"]) == job
    # and alpha can still use it as usual
    assert api.patch_ok(job["id"], status="completed")["status"] == "completed"


def test_another_user_of_the_same_organization_shares_the_jobs(api, colleague, tag):
    job = api.create(metadata={"source_id": tag})
    assert colleague.job(job["id"]) == job
    assert colleague.list_ids(source_id=tag) == [job["id"]]
    updated = colleague.patch_ok(job["id"], status="pending")
    assert updated["user_id"] == api.user_id, "the job keeps its creator"
    assert api.job(job["id"]) == updated
    assert colleague.get("/v1/webhook-secret").json() == api.get("/v1/webhook-secret").json()


def test_webhook_secrets_belong_to_one_organization(api, other):
    mine, theirs = api.get("/v1/webhook-secret"), other.get("/v1/webhook-secret")
    assert mine.status_code == theirs.status_code == 200
    assert mine.json()["secret"].startswith("whsec_") and mine.json() != theirs.json()
    assert api.get("/v1/webhook-secret").json() == mine.json(), "a secret is kept, not made anew on each read"
    rotated = other.post("/v1/webhook-secret/rotate").json()
    assert api.get("/v1/webhook-secret").json() == mine.json(), "bravo's rotation leaves alpha's secret"
    assert other.get("/v1/webhook-secret").json() == rotated
