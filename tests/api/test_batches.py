"""Batches through the API function (contract section 6, README "Batches"): what a submission
refuses, the 10,000-request limit, an unreadable provider, a batch refusing the job routes while
it runs, and the 350 KB result truncation seen through the items route (the batch polled by the
scheduler function, as the schedule runs it).

The providers are the simulated one and ``tests/fake_providers.py`` on 127.0.0.1.
"""
from __future__ import annotations

import json

import pytest

from tests.fake_providers import FakeProviders

MAX_RESULT_BYTES = 350_000  # README: "stored whole up to 350 KB"


@pytest.fixture
def fake(setting):
    """Fake Anthropic and OpenAI servers, configured as the deployment's providers."""
    with FakeProviders(polls_to_finish=0) as server:
        setting("ANTHROPIC_BASE_URL", server.url)
        setting("ANTHROPIC_API_KEY", "sk-ant-test")
        setting("OPENAI_BASE_URL", server.url)
        setting("OPENAI_API_KEY", "sk-openai-test")
        setting("PROVIDER_TIMEOUT_SECONDS", "5")
        yield server


def simulated(*requests: dict, **body) -> dict:
    return {"provider": "simulated", "requests": list(requests) or [{"custom_id": "a", "params": {}}], **body}


def assert_nothing_stored(api) -> None:
    assert api.list("/v1/batches") == []
    assert api.list() == []


# ---- refused submissions ---------------------------------------------------------------

BAD_BATCHES = {
    "unknown provider": ({"provider": "nobody", "requests": [{"custom_id": "a", "params": {}}]}, 422),
    "neither requests nor id": ({"provider": "simulated"}, 422),
    "both requests and id": (simulated(provider_batch_id="x"), 422),
    "empty requests": ({"provider": "simulated", "requests": []}, 422),
    "duplicate custom_id": (simulated({"custom_id": "a", "params": {}}, {"custom_id": "a", "params": {}}), 422),
    "empty custom_id": (simulated({"custom_id": "", "params": {}}), 422),
    "custom_id with a space": (simulated({"custom_id": "bad id!", "params": {}}), 422),
    "params not an object": (simulated({"custom_id": "a", "params": []}), 422),
    "unknown member": (simulated(extra=1), 422),
    "metadata over 64 KiB": (simulated(metadata={"x": "a" * (64 * 1024)}), 422),
    "callback not a url": (simulated(callback_url="not a url"), 422),
    # a bad simulate is invalid input, known before the provider is asked
    "a bad params.simulate": (simulated({"custom_id": "a", "params": {"simulate": "exploded"}}), 422),
}


@pytest.mark.parametrize("body, status", BAD_BATCHES.values(), ids=BAD_BATCHES.keys())
def test_a_refused_batch_stores_nothing(api, body, status):
    answer = api.post("/v1/batches", json=body)
    assert answer.status_code == status, answer.text
    assert answer.json()["detail"]
    assert_nothing_stored(api)


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
def test_a_provider_without_a_key_is_422(api, setting, provider):
    setting(f"{provider.upper()}_API_KEY", None)
    setting(f"{provider.upper()}_API_KEY_PARAMETER", None)
    answer = api.post("/v1/batches", json={"provider": provider, "requests": [{"custom_id": "a", "params": {}}]})
    assert answer.status_code == 422, answer.text
    assert_nothing_stored(api)


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
def test_an_unreadable_provider_answer_at_submission_is_502_and_stores_nothing(api, fake, provider):
    fake.fail_next.append("malformed")  # 200 with a body that is not JSON
    answer = api.post("/v1/batches", json={"provider": provider, "requests": [{"custom_id": "a", "params": {"model": "m"}}]})
    assert answer.status_code == 502, answer.text
    assert answer.json()["detail"]
    assert_nothing_stored(api)
    # the fault was the provider's: the same submission goes through once it answers properly
    again = api.post("/v1/batches", json={"provider": provider, "requests": [{"custom_id": "a", "params": {"model": "m"}}]})
    assert again.status_code == 201, again.text


@pytest.mark.parametrize("fault", [500, "timeout"])
def test_a_provider_failing_at_submission_is_502_and_stores_nothing(api, fake, setting, fault):
    setting("PROVIDER_TIMEOUT_SECONDS", "1")
    fake.fail_next.append(fault)
    answer = api.post("/v1/batches", json={"provider": "anthropic", "requests": [{"custom_id": "a", "params": {}}]})
    assert answer.status_code == 502, answer.text
    assert_nothing_stored(api)


# ---- 10,000 requests -------------------------------------------------------------------


def requests_of(n: int) -> list[dict]:
    return [{"custom_id": f"r{i}", "params": {"model": "m", "max_tokens": 1}} for i in range(n)]


def test_a_batch_of_exactly_10000_requests_is_submitted(api, fake):
    calls = len(fake.calls)
    answer = api.post("/v1/batches", json={"provider": "anthropic", "requests": requests_of(10_000)})
    assert answer.status_code == 201, answer.text[:300]
    batch = answer.json()
    assert batch["request_counts"]["processing"] == 10_000
    assert fake.batch(batch["provider_batch_id"])["request_counts"]["processing"] == 10_000
    assert len(fake.calls) == calls + 1
    api.patch(f"/v1/batches/{batch['id']}/cancel")  # leave nothing for the provider to run


def test_a_batch_of_10001_requests_is_422_and_never_reaches_the_provider(api, fake):
    calls = len(fake.calls)
    answer = api.post("/v1/batches", json={"provider": "anthropic", "requests": requests_of(10_001)})
    assert answer.status_code == 422, answer.text[:300]
    assert answer.json()["detail"]
    assert len(fake.calls) == calls, "nothing was sent to the provider"
    assert_nothing_stored(api)


# ---- a running batch refuses the job routes --------------------------------------------


def test_a_running_batch_refuses_patch_and_cancel_on_the_job_routes(api):
    batch = api.post("/v1/batches", json=simulated(metadata={"a": 1})).json()
    assert batch["status"] == "running"
    for method, path, body in [
        ("PATCH", f"/v1/jobs/{batch['id']}", {"metadata": {"a": 2}}),
        ("PATCH", f"/v1/jobs/{batch['id']}", {"status": "completed"}),
        ("PATCH", f"/v1/jobs/{batch['id']}", {"status": "running"}),
        ("PATCH", f"/v1/jobs/{batch['id']}", {"status": "cancelled", "stop_reason": "mine"}),
        ("PATCH", f"/v1/jobs/{batch['id']}", {}),
        ("PATCH", f"/v1/jobs/{batch['id']}/cancel", None),
    ]:
        refused = api.request(method, path, json=body)
        assert refused.status_code == 409, (method, path, body, refused.status_code, refused.text)
        assert refused.json()["current_status"] == "running"
        assert "/v1/batches/" in refused.json()["detail"], "the answer says where a batch is cancelled"
    assert api.get(f"/v1/batches/{batch['id']}").json() == batch, "nothing changed"
    # the batch route is the way
    cancelled = api.patch(f"/v1/batches/{batch['id']}/cancel")
    assert cancelled.status_code == 202 and cancelled.json()["cancel_requested"] is True


def test_a_batch_is_listed_and_read_as_a_job_too(api, tag):
    batch = api.post("/v1/batches", json=simulated(metadata={"source_id": tag})).json()
    as_job = api.job(batch["id"])
    assert as_job["job_type"] == "batch" and as_job["status"] == "running"
    assert {k: batch[k] for k in as_job} == as_job, "the job is the batch without its batch members"
    assert api.list_ids(job_type="batch") == [batch["id"]]
    assert api.list_ids("/v1/batches", source_id=tag) == [batch["id"]]
    assert api.list_ids() == [batch["id"]]


def test_a_batch_route_on_a_plain_job_is_404(api):
    job = api.create()
    assert api.get(f"/v1/batches/{job['id']}").status_code == 404
    assert api.get(f"/v1/batches/{job['id']}/items").status_code == 404
    assert api.patch(f"/v1/batches/{job['id']}/cancel").status_code == 404
    assert api.list("/v1/batches") == []
    assert api.job(job["id"]) == job


# ---- 350 KB results through the items route --------------------------------------------


def run_until_ended(api, run_scheduler, batch_id: str) -> dict:
    for _ in range(10):
        run_scheduler()
        batch = api.get(f"/v1/batches/{batch_id}").json()
        if batch["status"] != "running":
            return batch
    pytest.fail(f"batch {batch_id} still running after 10 scheduler runs: {batch}")


def items(api, batch_id: str) -> dict[str, dict]:
    return {item["custom_id"]: item for item in api.list(f"/v1/batches/{batch_id}/items", limit=1000)}


def serialised(value) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def test_results_are_stored_whole_up_to_350_kb_and_cut_just_over(api, fake, run_scheduler):
    # the size of a result with a reply of n characters is fixed + n: measure the fixed part
    probe = api.post("/v1/batches", json={"provider": "anthropic", "requests": [
        {"custom_id": "probe", "params": {"model": "m", "fake_text": "x" * 1000}}]}).json()
    assert run_until_ended(api, run_scheduler, probe["id"])["status"] == "completed"
    fixed = len(serialised(items(api, probe["id"])["probe"]["result"]).encode()) - 1000

    at = MAX_RESULT_BYTES - fixed
    answer = api.post("/v1/batches", json={"provider": "anthropic", "requests": [
        {"custom_id": "at", "params": {"model": "m", "fake_text": "a" * at}},
        {"custom_id": "over", "params": {"model": "m", "fake_text": "b" * (at + 1)}},
        {"custom_id": "small", "params": {"model": "m", "fake_text": "c"}},
    ]})
    assert answer.status_code == 201, answer.text[:300]
    batch = answer.json()
    done = run_until_ended(api, run_scheduler, batch["id"])
    assert done["status"] == "completed" and done["request_counts"]["succeeded"] == 3

    got = items(api, batch["id"])
    assert [item["status"] for item in got.values()] == ["completed"] * 3
    # exactly 350 KB: whole, as the provider sent it
    assert got["at"]["truncated"] is False
    assert len(serialised(got["at"]["result"]).encode()) == MAX_RESULT_BYTES
    assert got["at"]["result"]["content"][0]["text"] == "a" * at
    # one byte more: a string cut at 350 KB, flagged
    assert got["over"]["truncated"] is True
    assert isinstance(got["over"]["result"], str)
    assert len(got["over"]["result"].encode()) == MAX_RESULT_BYTES
    # (its serialisation is 350,001 bytes: the cut leaves out only the closing brace)
    assert json.loads(got["over"]["result"] + "}")["content"][0]["text"] == "b" * (at + 1)
    assert got["small"]["truncated"] is False and got["small"]["result"]["content"][0]["text"] == "c"
    # and the items route pages over them by custom_id
    assert [i["custom_id"] for i in api.list(f"/v1/batches/{batch['id']}/items", limit=1)] == ["at"]
    assert [i["custom_id"] for i in api.list(f"/v1/batches/{batch['id']}/items", after="at")] == ["over", "small"]
