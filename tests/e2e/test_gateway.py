"""What only the real gateway shows: the authorizer in front of every route, the key-to-
organization mapping, how bodies travel (text, base64 for other content types, bytes that are
not UTF-8, sizes), and routing. (Input validation in detail: tests/api.)"""
from __future__ import annotations

import json

import pytest

from local.template import Template
from tests.contract import job_routes, shift_id

BAD_AUTH = {
    "missing": None,
    "wrong key": "Bearer wrong-key-0123456789",
    "basic": "Basic xyz",
    "empty bearer": "Bearer ",
    "no scheme": "jsk_test_alpha_0123456789abcdef",
    "key with a suffix": "Bearer jsk_test_alpha_0123456789abcdefX",
    "two keys": "Bearer jsk_test_alpha_0123456789abcdef jsk_test_alpha_0123456789abcdef",
}


def authorized_routes(job_id: str) -> list[tuple[str, str, dict | None]]:
    """Every route of the template that has the authorizer, with a path and a body that would
    change something if it got through."""
    out = []
    for route in Template().routes():
        if route.authorizer is None or route.path == "$default":
            continue
        path = route.path.replace("{job_id}", job_id)
        body = {"metadata": {"by": "intruder"}} if route.method in ("POST", "PATCH") else None
        if route.route_key == "POST /v1/jobs/{job_id}/messages":
            body = {"role": "user", "content": "intruder"}
        if route.route_key == "POST /v1/batches":
            body = {"provider": "simulated", "requests": [{"custom_id": "a", "params": {}}]}
        out.append((route.method, path, body))
    return out


@pytest.mark.parametrize("header", BAD_AUTH.values(), ids=BAD_AUTH.keys())
def test_bad_credentials_are_401_on_every_route_and_change_nothing(api, anonymous, header):
    job = api.create(metadata={"a": 1})
    secret = api.get("/v1/webhook-secret").json()
    headers = {"Authorization": header} if header is not None else {}
    routes = authorized_routes(job["id"])
    assert len(routes) >= 17, routes  # every route but the three public ones and $default
    for method, url, body in routes:
        response = anonymous.request(method, url, json=body, headers=headers)
        assert response.status_code == 401, (method, url, response.status_code, response.text)
        assert response.headers["Content-Type"].startswith("application/json")
        if header is None:
            # no Authorization header at all: with the authorizer's cache on, API Gateway refuses it
            # itself (the header is the cache's identity source), with its own body (contract, section 1)
            assert response.json() == {"message": "Unauthorized"}, (method, url)
            continue
        assert response.headers.get("WWW-Authenticate") == "Bearer", (method, url, response.headers)
        assert response.json()["detail"], (method, url)
    # bad input does not get past authentication either
    assert anonymous.request("POST", "/v1/jobs", data="{bad", headers=headers).status_code == 401
    assert api.job(job["id"]) == job
    assert api.list(f"/v1/jobs/{job['id']}/messages") == []
    assert api.get("/v1/webhook-secret").json() == secret, "no rotation got through"
    assert api.list_ids(after=job["id"]) == [], "no job or batch was created"


def test_bearer_is_case_insensitive(stack, keys):
    import requests

    for scheme in ("bearer", "BEARER", "BeArEr"):
        response = requests.get(f"{stack['base']}/v1/jobs?limit=1", headers={"Authorization": f"{scheme} {keys['a'][0]}"},
                                timeout=30)
        assert response.status_code == 200, (scheme, response.status_code, response.text)


def test_each_key_acts_for_its_organization_and_user(api, other, colleague, keys, tag):
    mine = api.create(metadata={"source_id": tag})
    assert (mine["organization_id"], mine["user_id"]) == keys["a"][1:]
    theirs = other.create(metadata={"source_id": tag})
    assert (theirs["organization_id"], theirs["user_id"]) == keys["b"][1:]
    # another organization's job does not exist for you, on every job route, exactly like a ghost
    ghost = shift_id(mine["id"], 1)
    for (method, path, body), (_, ghost_path, _) in zip(job_routes(mine["id"]), job_routes(ghost)):
        answer, ghost_answer = other.request(method, path, json=body), other.request(method, ghost_path, json=body)
        assert answer.status_code == ghost_answer.status_code == 404, (method, path, answer.text)
        assert answer.json() == {"detail": ghost_answer.json()["detail"].replace(ghost, mine["id"])}
    assert api.job(mine["id"]) == mine
    # a colleague of the same organization shares it
    assert colleague.job(mine["id"]) == mine
    assert colleague.listed([mine["id"]], source_id=tag) == [mine["id"]]
    assert api.listed([mine["id"]], source_id=tag) == [mine["id"]]
    assert other.listed([theirs["id"]], source_id=tag) == [theirs["id"]]


# ---- how bodies travel -----------------------------------------------------------------

CONTENT_TYPES = {
    "curl -d (form, base64 at the gateway)": "application/x-www-form-urlencoded",
    "none": None,
    "text/plain": "text/plain; charset=utf-8",
    "octet-stream": "application/octet-stream",
}


@pytest.mark.parametrize("content_type", CONTENT_TYPES.values(), ids=CONTENT_TYPES.keys())
def test_a_json_body_is_read_whatever_its_content_type(api, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    body = json.dumps({"job_type": "run", "metadata": {"word": "crème brûlée ✓"}}, ensure_ascii=False).encode()
    created = api.post("/v1/jobs", data=body, headers=headers)
    assert created.status_code == 201, created.text
    job = created.json()
    assert (job["job_type"], job["metadata"]) == ("run", {"word": "crème brûlée ✓"})
    moved = api.patch(f"/v1/jobs/{job['id']}", data=b'{"status": "pending"}', headers=headers)
    assert moved.status_code == 200 and moved.json()["status"] == "pending", moved.text
    added = api.post(f"/v1/jobs/{job['id']}/messages", data='{"role": "user", "content": "é"}'.encode(), headers=headers)
    assert added.status_code == 201 and added.json()["content"] == "é", added.text


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/jobs/{job}", "/v1/jobs/{job}/messages"])
def test_a_body_that_is_not_utf8_is_400(api, path):
    marker = api.create()
    method = "PATCH" if path == "/v1/jobs/{job}" else "POST"
    response = api.request(method, path.format(job=marker["id"]), data=b"\xff\xfe{", headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["detail"]
    assert api.job(marker["id"]) == marker
    assert api.list_ids(after=marker["id"]) == []


@pytest.mark.parametrize("route", ["create", "update", "message"])
def test_bodies_over_1_mib_are_413(api, route):
    job = api.create()
    body = json.dumps({"metadata": {"x": "é" * 600_000}}, ensure_ascii=False).encode()  # 1.2 MB, 600,000 characters
    assert len(body) > 1024 * 1024 > len(body.decode())
    path = {"create": "/v1/jobs", "update": f"/v1/jobs/{job['id']}", "message": f"/v1/jobs/{job['id']}/messages"}[route]
    method = "PATCH" if route == "update" else "POST"
    response = api.request(method, path, data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 413, (response.status_code, response.text[:300])
    assert api.job(job["id"]) == job
    assert api.list_ids(after=job["id"]) == []


def test_a_batch_body_may_be_up_to_5_mib(api):
    requests_ = [{"custom_id": f"r{i}", "params": {"pad": "p" * 2000}} for i in range(1000)]  # ~2 MB
    body = json.dumps({"provider": "simulated", "requests": requests_})
    assert 1024 * 1024 < len(body) < 5 * 1024 * 1024
    response = api.post("/v1/batches", data=body, headers={"Content-Type": "application/json"})
    # past the 1 MiB of other routes; the simulated provider itself takes 300 KB at most (502)
    assert response.status_code == 502, (response.status_code, response.text[:300])
    too_big = json.dumps({"provider": "simulated", "requests": requests_ * 3})
    assert len(too_big) > 5 * 1024 * 1024
    assert api.post("/v1/batches", data=too_big, headers={"Content-Type": "application/json"}).status_code == 413


def test_unknown_routes_and_methods_answer_json_404(api, anonymous):
    job = api.create()
    for client, method, path in [(anonymous, "GET", "/v1/nope"), (anonymous, "GET", "/v2/jobs"), (api, "GET", "/"),
                                 (api, "PUT", f"/v1/jobs/{job['id']}"), (api, "POST", f"/v1/jobs/{job['id']}"),
                                 (api, "DELETE", "/v1/jobs"), (api, "GET", f"/v1/jobs/{job['id']}/nope")]:
        response = client.request(method, path, json={"status": "pending"})
        assert response.status_code == 404, (method, path, response.status_code, response.text)
        assert response.json() == {"detail": "no such route"}, (method, path)
    assert api.job(job["id"]) == job
