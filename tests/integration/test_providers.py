"""Batch polling against a fake provider server on 127.0.0.1 speaking the Anthropic and OpenAI shapes."""
from __future__ import annotations

import pytest

from jobsvc import batches, errors, scheduler
from jobsvc.storage import jobs as job_store
from jobsvc.auth import Actor
from jobsvc.config import settings
from jobsvc.schemas import BatchCreate
from tests.fake_providers import FakeProviders

ACTOR = Actor("org-p", "user-p")
PROVIDERS = ["anthropic", "openai"]


@pytest.fixture
def fake(table, monkeypatch):
    with FakeProviders(polls_to_finish=2) as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-test")
        monkeypatch.setenv("PROVIDER_TIMEOUT_SECONDS", "1")
        settings.cache_clear()
        yield server
    monkeypatch.undo()
    settings.cache_clear()


def submit(provider: str, *outcomes: str) -> dict:
    requests = [
        {"custom_id": f"req-{i}", "params": {"model": "m", "max_tokens": 8, "messages": [], "fake_outcome": o}}
        for i, o in enumerate(outcomes)
    ]
    batch, created = batches.create_batch(ACTOR, BatchCreate(provider=provider, requests=requests))
    assert created
    return batch


def run() -> scheduler.RunReport:
    return scheduler.run(lambda: 60_000, "test-run")


def read(batch: dict) -> dict:
    return batches.get_batch(ACTOR, batch["id"])


@pytest.mark.parametrize("provider", PROVIDERS)
def test_in_progress_stays_running_with_no_items_then_ends_with_its_items(fake, provider):
    batch = submit(provider, "succeeded", "errored", "succeeded")
    assert batch["status"] == "running" and batch["provider"] == provider
    assert batch["provider_batch_id"] == fake.batch(batch["provider_batch_id"])["id"]
    for _ in range(2):
        assert run().still_running == 1
        assert read(batch)["status"] == "running"
        assert batches.list_items(ACTOR, batch["id"]).items == []
    assert run().ended == {"completed": 1}
    done = read(batch)
    assert done["status"] == "completed" and done["completed_at"] and done["last_poll_error"] is None
    assert done["request_counts"]["succeeded"] == 2 and done["request_counts"]["errored"] == 1
    items = {i["custom_id"]: i for i in batches.list_items(ACTOR, batch["id"]).items}
    assert {k: v["status"] for k, v in items.items()} == {"req-0": "completed", "req-1": "failed", "req-2": "completed"}
    assert items["req-0"]["result"] and items["req-1"]["result"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_every_item_expired_means_expired(fake, provider):
    batch = submit(provider, "expired", "expired")
    for _ in range(3):
        run()
    done = read(batch)
    assert done["status"] == "expired" and done["request_counts"]["expired"] == 2
    assert {i["status"] for i in batches.list_items(ACTOR, batch["id"]).items} <= {"expired"}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_cancelled_batch_is_polled_while_canceling_and_ends_cancelled(fake, provider):
    batch = submit(provider, "succeeded", "succeeded", "succeeded", "succeeded")
    run()
    answer = batches.cancel_batch(ACTOR, batch["id"])
    assert answer["cancel_requested"] is True and answer["status"] == "running"
    assert fake.batch(batch["provider_batch_id"])["_cancel_requested"]
    assert run().ended == {"cancelled": 1}  # canceling, then ended at that poll
    done = read(batch)
    assert done["status"] == "cancelled" and done["stop_reason"] == "cancelled"
    assert done["request_counts"]["canceled"] >= 1
    with pytest.raises(errors.InvalidTransition):
        batches.cancel_batch(ACTOR, batch["id"])


@pytest.mark.parametrize("provider,canceling", [("anthropic", "canceling"), ("openai", "cancelling")])
def test_a_batch_still_canceling_is_polled_until_it_ends(fake, monkeypatch, provider, canceling):
    from jobsvc import providers

    batch = submit(provider, "succeeded", "succeeded")
    batches.cancel_batch(ACTOR, batch["id"])
    adapter_class = type(providers.get(provider))
    real_retrieve = adapter_class.retrieve
    polls = {"n": 0}

    def slow_to_cancel(self, batch_id):
        polls["n"] += 1
        remote = real_retrieve(self, batch_id) if polls["n"] > 2 else None
        if remote is None:  # the provider is still winding the batch down
            return providers.ProviderBatch(batch_id, providers.PROCESSING, {"processing": 2}, canceling)
        return remote

    monkeypatch.setattr(adapter_class, "retrieve", slow_to_cancel)
    assert run().still_running == 1 and run().still_running == 1
    assert read(batch)["status"] == "running"
    assert run().ended == {"cancelled": 1}
    assert polls["n"] == 3


def test_openai_batch_failed_as_a_whole_is_failed(fake):
    batch = submit("openai", "batch_failed", "succeeded")
    assert run().ended == {"failed": 1}
    assert read(batch)["status"] == "failed"


@pytest.mark.parametrize("fault", [500, 503, "timeout", "malformed"])
@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_failed_poll_keeps_the_batch_running_with_its_last_good_state(fake, provider, fault):
    batch = submit(provider, "succeeded", "succeeded")
    run()
    before = read(batch)
    fake.fail_next.append(fault)
    report = run()
    assert report.poll_errors == 1
    after = read(batch)
    assert after["status"] == "running" and after["last_poll_error"]
    assert after["request_counts"] == before["request_counts"]
    for _ in range(3):  # the next runs retry and finish
        run()
    done = read(batch)
    assert done["status"] == "completed" and done["last_poll_error"] is None


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_malformed_results_line_is_a_poll_error_then_retried(fake, provider):
    batch = submit(provider, "succeeded", "succeeded", "errored")
    run(), run()
    fake.fail_next.append("bad_results_line")
    assert run().poll_errors == 1
    assert read(batch)["status"] == "running" and "not JSON" in read(batch)["last_poll_error"]
    assert run().ended == {"completed": 1}
    assert len(batches.list_items(ACTOR, batch["id"]).items) == 3


def test_one_bad_batch_never_stops_the_others(fake, monkeypatch):
    good = [submit("anthropic", "succeeded") for _ in range(3)]
    bad = submit("openai", "succeeded")
    fake.fail_next.append(500)  # whichever batch polls first fails; the others go on
    for _ in range(3):
        run()
    statuses = [read(b)["status"] for b in good + [bad]]
    assert statuses.count("completed") >= 3
    for _ in range(2):
        run()
    assert [read(b)["status"] for b in good + [bad]] == ["completed"] * 4


def test_a_poller_killed_after_storing_items_is_finished_by_the_next_run(fake, monkeypatch):
    batch = submit("anthropic", "succeeded", "errored")
    run(), run()
    real = batches.update_running_batch
    calls = {"n": 0}

    def dies_at_the_end(org, job_id, write, target=None, stop_reason=None):
        if target is not None and calls["n"] == 0:
            calls["n"] += 1
            raise RuntimeError("killed before the transition")
        return real(org, job_id, write, target, stop_reason)

    monkeypatch.setattr(batches, "update_running_batch", dies_at_the_end)
    assert run().poll_errors == 1
    assert read(batch)["status"] == "running" and len(batches.list_items(ACTOR, batch["id"]).items) == 2
    assert run().ended == {"completed": 1}
    assert len(batches.list_items(ACTOR, batch["id"]).items) == 2


def test_two_overlapping_runs_poll_each_batch_once(fake):
    made = [submit("anthropic", "succeeded") for _ in range(3)]
    fake.latency = 0.3
    import threading

    reports = []
    threads = [threading.Thread(target=lambda i=i: reports.append(scheduler.run(lambda: 60_000, f"run-{i}"))) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.ran for r in reports) == [False, True]
    gets = [c for c in fake.calls if c[0] == "GET" and c[1].count("/") == 4]
    assert len(gets) == 3 and {g[1].rsplit("/", 1)[1] for g in gets} == {b["provider_batch_id"] for b in made}


# ---- submission --------------------------------------------------------------------


def test_a_refused_submission_is_502_with_the_providers_message_and_stores_nothing(fake, monkeypatch):
    with pytest.raises(errors.ProviderFailed, match="fake_outcome") as refused:
        submit("anthropic", "no-such-outcome")  # the provider answers 400
    assert refused.value.status_code == 502
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong")
    settings.cache_clear()
    with pytest.raises(errors.ProviderFailed, match="Incorrect API key"):
        submit("openai", "succeeded")  # the provider answers 401
    assert batches.list_batches(ACTOR).items == []


def test_a_provider_down_at_submission_is_502(fake):
    fake.fail_next.append(503)
    with pytest.raises(errors.ProviderFailed):
        submit("anthropic", "succeeded")
    assert batches.list_batches(ACTOR).items == []


def test_registering_an_existing_provider_batch(fake):
    submitted = submit("anthropic", "succeeded")
    remote = submitted["provider_batch_id"]
    # the organization already tracks it: the job that tracks it, not a second job
    tracked, created = batches.create_batch(ACTOR, BatchCreate(provider="anthropic", provider_batch_id=remote))
    assert not created and tracked["id"] == submitted["id"] and tracked["status"] == "running"
    assert [b["id"] for b in batches.list_batches(ACTOR).items] == [submitted["id"]]
    # a batch the provider does not know answers like another organization's: 404
    with pytest.raises(errors.NotFound):
        batches.create_batch(ACTOR, BatchCreate(provider="anthropic", provider_batch_id="msgbatch_nope"))
    # the deployment's provider key is shared: another organization may not track this batch
    with pytest.raises(errors.NotFound):
        batches.create_batch(Actor("org-other", "u"), BatchCreate(provider="anthropic", provider_batch_id=remote))
    assert batches.list_batches(Actor("org-other", "u")).items == []


def test_a_provider_without_a_key_is_422(table, monkeypatch):
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_API_KEY_PARAMETER", "OPENAI_API_KEY", "OPENAI_API_KEY_PARAMETER"):
        monkeypatch.delenv(name, raising=False)
    settings.cache_clear()
    for provider in PROVIDERS:
        with pytest.raises(errors.InvalidInput, match="not configured"):
            submit(provider, "succeeded")
    monkeypatch.undo()
    settings.cache_clear()


@pytest.mark.parametrize("body,message", [
    ({"provider": "simulated"}, "either requests"),
    ({"provider": "simulated", "requests": []}, "empty"),
    ({"provider": "simulated", "requests": [{"custom_id": "a", "params": {}}], "provider_batch_id": "x"}, "either requests"),
    ({"provider": "simulated", "requests": [{"custom_id": "a", "params": {}}, {"custom_id": "a", "params": {}}]}, "twice"),
])
def test_bad_batch_bodies_are_422_and_store_nothing(table, body, message):
    with pytest.raises(errors.InvalidInput, match=message):
        batches.create_batch(ACTOR, BatchCreate(**body))
    assert batches.list_batches(ACTOR).items == []


def test_a_large_result_is_stored_truncated_with_a_flag(fake):
    batch, _ = batches.create_batch(ACTOR, BatchCreate(provider="anthropic", requests=[
        {"custom_id": "big", "params": {"fake_text": "x" * 500_000}},
        {"custom_id": "small", "params": {}},
    ]))
    for _ in range(3):
        run()
    items = {i["custom_id"]: i for i in batches.list_items(ACTOR, batch["id"]).items}
    assert items["big"]["truncated"] is True and isinstance(items["big"]["result"], str)
    assert len(items["big"]["result"].encode()) <= batches.MAX_RESULT_BYTES
    assert items["small"]["truncated"] is False and isinstance(items["small"]["result"], dict)
    assert job_store.get_job(ACTOR.organization_id, batch["id"])[0]["status"] == "completed"


def test_a_cancel_requested_while_the_run_polls_wins_over_completed(fake):
    """The polled copy of the job is older than the cancel: the batch still ends cancelled."""
    batch = submit("anthropic", "succeeded")
    run(), run()
    stale, _ = job_store.get_job(ACTOR.organization_id, batch["id"])  # what the poller read
    batches.cancel_batch(ACTOR, batch["id"])  # lands while the run is polling
    assert batches.poll(stale) == "cancelled"
    assert read(batch)["status"] == "cancelled"


def test_a_malformed_provider_answer_is_a_poll_error(fake, monkeypatch):
    from jobsvc.providers.anthropic import AnthropicProvider

    batch = submit("anthropic", "succeeded")
    monkeypatch.setattr(AnthropicProvider, "retrieve", lambda self, batch_id: self._batch({"id": 1, "processing_status": "in_progress", "request_counts": "many"}))
    assert run().poll_errors == 1
    assert "request_counts" in read(batch)["last_poll_error"] and read(batch)["status"] == "running"


def test_a_results_redirect_to_another_host_does_not_get_the_key(fake):
    """Results served from elsewhere (a CDN) are fetched without the provider key."""
    import http.server
    import threading

    from jobsvc.providers import base

    seen = {}

    class Elsewhere(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            seen["key"] = self.headers.get("x-api-key")
            body = b'{"custom_id": "a", "result": {"type": "expired"}}\n'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            seen["first"] = self.headers.get("x-api-key")
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{cdn.server_address[1]}/results")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass

    cdn = http.server.HTTPServer(("127.0.0.1", 0), Elsewhere)
    origin = http.server.HTTPServer(("127.0.0.1", 0), Redirect)
    for server in (cdn, origin):
        threading.Thread(target=server.handle_request, daemon=True).start()
    session = base.new_session({"x-api-key": "secret-key"})
    response = base.stream(session, f"http://localhost:{origin.server_address[1]}/results", timeout=5)
    assert [line["custom_id"] for line in base.json_lines(response, "test")] == ["a"]
    assert seen == {"first": "secret-key", "key": None}
