"""One request per route of the template through the local stack's gateway, authorizer and Lambda
instances: each route is wired to the right function, with the right authorizer, and answers
what the contract says. (What each route does in detail is tested at the API level, tests/api.)

A list right after a write waits for what it needs: lists read indexes, which in AWS may trail
a write by a moment (``Api.listed``).
"""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from local.template import Template
from tests.contract import JOB_FIELDS, unique


@pytest.fixture(scope="module")
def ids(api, tag_module) -> dict:
    """A job to read, a running job, a job to cancel, one to delete, and a batch."""
    return {
        "job": api.create(metadata={"source_id": tag_module, "smoke": True}),
        "running": api.create(status="running"),
        "cancel": api.create(),
        "delete": api.create(),
        "batch": api.post("/v1/batches", json={
            "provider": "simulated", "metadata": {"source_id": tag_module},
            "requests": [{"custom_id": "q1", "params": {}}]}).json(),
    }


@pytest.fixture(scope="module")
def tag_module() -> str:
    return unique("smoke")


def check(response, status: int, content_type: str = "application/json"):
    assert response.status_code == status, (response.request.method, response.url, response.status_code, response.text[:300])
    assert response.headers["Content-Type"].startswith(content_type), response.headers
    return response.json() if content_type == "application/json" else response.text


def test_every_route_of_the_template_is_smoked_here():
    smoked = {key for key, _ in ROUTES}
    declared = {route.route_key if route.path != "$default" else "$default" for route in Template().routes()}
    assert declared == smoked, f"not smoked: {sorted(declared - smoked)}; not declared: {sorted(smoked - declared)}"


def smoke_health(c, ids):
    assert check(c.anonymous.get("/v1/health"), 200) == {"status": "ok"}


def smoke_openapi(c, ids):
    document = check(c.anonymous.get("/v1/openapi.json"), 200)
    assert str(document["openapi"]).startswith("3.") and "/v1/jobs/{job_id}" in document["paths"]


def smoke_docs(c, ids):
    assert "openapi.json" in check(c.anonymous.get("/v1/docs"), 200, "text/html")


def smoke_create(c, ids):
    job = check(c.api.post("/v1/jobs", json={"job_type": "run"}), 201)
    assert set(job) == JOB_FIELDS and job["job_type"] == "run"


def smoke_list(c, ids):
    job = ids["job"]
    assert c.api.listed([job], source_id=job["metadata"]["source_id"], job_type="job", ids=False) == [job]


def smoke_get(c, ids):
    assert check(c.api.get(f"/v1/jobs/{ids['job']['id']}"), 200) == ids["job"]


def smoke_update(c, ids):
    updated = check(c.api.patch(f"/v1/jobs/{ids['running']['id']}", json={"metadata": {"step": 1}}), 200)
    assert updated["metadata"] == {"step": 1} and updated["status"] == "running"


def smoke_cancel(c, ids):
    assert check(c.api.patch(f"/v1/jobs/{ids['cancel']['id']}/cancel"), 200)["status"] == "cancelled"


def smoke_delete(c, ids):
    assert check(c.api.delete(f"/v1/jobs/{ids['delete']['id']}"), 200)["id"] == ids["delete"]["id"]
    assert check(c.api.get(f"/v1/jobs/{ids['delete']['id']}"), 404)["detail"]


def smoke_add_message(c, ids):
    message = check(c.api.post(f"/v1/jobs/{ids['job']['id']}/messages", json={"role": "user", "content": "hi"}), 201)
    assert message["job_id"] == ids["job"]["id"]


def smoke_list_messages(c, ids):
    path = f"/v1/jobs/{ids['running']['id']}/messages"
    message = check(c.api.post(path, json={"role": "tool", "content": {"k": 1}}), 201)
    check(c.api.get(path), 200)
    assert c.api.listed([message], path, ids=False) == [message]


def smoke_callbacks(c, ids):
    assert check(c.api.get(f"/v1/jobs/{ids['job']['id']}/callbacks"), 200) == []


def smoke_redeliver(c, ids):
    # a job that is not terminal: refused by the function (202 is tested in test_webhooks.py)
    assert check(c.api.post(f"/v1/jobs/{ids['running']['id']}/callbacks/redeliver"), 409)["current_status"] == "running"


def smoke_secret(c, ids):
    assert check(c.api.get("/v1/webhook-secret"), 200)["secret"].startswith("whsec_")


def smoke_rotate(c, ids):
    # bravo's secret, so that alpha's webhook tests keep theirs
    rotated = check(c.other.post("/v1/webhook-secret/rotate"), 200)
    assert check(c.other.get("/v1/webhook-secret"), 200) == rotated


def smoke_create_batch(c, ids):
    batch = check(c.api.post("/v1/batches", json={"provider": "simulated", "requests": [{"custom_id": "a", "params": {}}]}), 201)
    assert batch["job_type"] == "batch" and batch["status"] == "running"


def smoke_list_batches(c, ids):
    batch = ids["batch"]
    assert c.api.listed([batch["id"]], "/v1/batches", source_id=batch["metadata"]["source_id"]) == [batch["id"]]


def smoke_get_batch(c, ids):
    assert check(c.api.get(f"/v1/batches/{ids['batch']['id']}"), 200)["provider"] == "simulated"


def smoke_batch_items(c, ids):
    assert isinstance(check(c.api.get(f"/v1/batches/{ids['batch']['id']}/items"), 200), list)


def smoke_cancel_batch(c, ids):
    # a batch of its own, cancelled at once (the simulated provider ends one on its third poll)
    batch = check(c.api.post("/v1/batches", json={"provider": "simulated", "requests": [{"custom_id": "a", "params": {}}]}), 201)
    answer = check(c.api.patch(f"/v1/batches/{batch['id']}/cancel"), 202)
    assert answer["cancel_requested"] is True and answer["status"] == "running"


def smoke_history(c, ids):
    history = check(c.api.get(f"/v1/jobs/{ids['job']['id']}/history"), 200)
    assert [(h["status"], h["from"]) for h in history] == [("created", None)] and history[0]["actor"] == "user:user-a"


def smoke_stats(c, ids):
    stats = check(c.api.get("/v1/stats", params={"hours": 1}), 200)
    assert set(stats) == {"counts", "window"} and stats["counts"]["created"] >= 0


def smoke_bulk_cancel(c, ids):
    assert check(c.api.post("/v1/jobs/cancel", json={"source_id": unique("none")}), 200) == {"cancelled": [], "more": False}
    assert check(c.api.post("/v1/jobs/cancel", json={}), 422)["detail"]


def smoke_recover(c, ids):
    assert check(c.api.post("/v1/callbacks/recover", json={"since": "2026-01-01T00:00:00Z"}), 202)["queued"] >= 0


def smoke_page(path: str, content_type: str):
    def smoke(c, ids):
        response = c.anonymous.get(path)
        assert response.status_code == 200 and response.headers["Content-Type"].startswith(content_type), path
        assert response.content and "cdn" not in response.text[:200].lower()
    return smoke


def smoke_default(c, ids):
    assert check(c.anonymous.get("/v1/no-such-route"), 404) == {"detail": "no such route"}
    assert check(c.api.delete("/v1/jobs"), 404) == {"detail": "no such route"}


ROUTES = [
    ("GET /v1/health", smoke_health),
    ("GET /v1/openapi.json", smoke_openapi),
    ("GET /v1/docs", smoke_docs),
    ("POST /v1/jobs", smoke_create),
    ("GET /v1/jobs", smoke_list),
    ("GET /v1/jobs/{job_id}", smoke_get),
    ("PATCH /v1/jobs/{job_id}", smoke_update),
    ("PATCH /v1/jobs/{job_id}/cancel", smoke_cancel),
    ("DELETE /v1/jobs/{job_id}", smoke_delete),
    ("POST /v1/jobs/{job_id}/messages", smoke_add_message),
    ("GET /v1/jobs/{job_id}/messages", smoke_list_messages),
    ("GET /v1/jobs/{job_id}/callbacks", smoke_callbacks),
    ("POST /v1/jobs/{job_id}/callbacks/redeliver", smoke_redeliver),
    ("GET /v1/webhook-secret", smoke_secret),
    ("POST /v1/webhook-secret/rotate", smoke_rotate),
    ("POST /v1/batches", smoke_create_batch),
    ("GET /v1/batches", smoke_list_batches),
    ("GET /v1/batches/{job_id}", smoke_get_batch),
    ("GET /v1/batches/{job_id}/items", smoke_batch_items),
    ("PATCH /v1/batches/{job_id}/cancel", smoke_cancel_batch),
    ("GET /v1/jobs/{job_id}/history", smoke_history),
    ("GET /v1/stats", smoke_stats),
    ("POST /v1/jobs/cancel", smoke_bulk_cancel),
    ("POST /v1/callbacks/recover", smoke_recover),
    ("GET /console", smoke_page("/console", "text/html")),
    ("GET /console/app.js", smoke_page("/console/app.js", "text/javascript")),
    ("GET /console/app.css", smoke_page("/console/app.css", "text/css")),
    ("GET /v1/docs/init.js", smoke_page("/v1/docs/init.js", "text/javascript")),
    ("GET /v1/docs/swagger-ui-bundle.js", smoke_page("/v1/docs/swagger-ui-bundle.js", "text/javascript")),
    ("GET /v1/docs/swagger-ui.css", smoke_page("/v1/docs/swagger-ui.css", "text/css")),
    ("$default", smoke_default),
]


@pytest.mark.parametrize("route, smoke", ROUTES, ids=[key for key, _ in ROUTES])
def test_route(api, other, anonymous, ids, route, smoke):
    smoke(SimpleNamespace(api=api, other=other, anonymous=anonymous), ids)
