"""The Client against a stub server: routes, pagination, retries, idempotency keys, errors."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
import requests
from jobsvc_client import NOT_GIVEN, ApiConnectionError, ApiError, Client, ConfigurationError

from tests.client.support import CLOSE, Recorded, Reply, StubServer, free_port

KEY = "jsk_unit_0123456789abcdef"


def make_client(url: str, **kw) -> tuple[Client, list[float]]:
    """A client whose backoff sleeps are recorded instead of slept."""
    client = Client(url, KEY, timeout=10, **kw)
    sleeps: list[float] = []
    client._sleep = sleeps.append
    return client, sleeps


# ---- configuration ----------------------------------------------------------------------


def test_configuration_from_the_environment(monkeypatch, stub):
    monkeypatch.setenv("JOBS_API_URL", stub.url + "/v1/")
    monkeypatch.setenv("JOBS_API_KEY", KEY)
    client = Client()
    assert client.base_url == stub.url
    client.health()
    (request,) = stub.requests
    assert request.path == "/v1/health"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["user-agent"].startswith("jobsvc-client/")


def test_arguments_win_over_the_environment(monkeypatch, stub):
    monkeypatch.setenv("JOBS_API_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("JOBS_API_KEY", "jsk_from_env_000000000")
    Client(stub.url, KEY).health()
    assert stub.requests[0].headers["authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize("url, key, words", [(None, KEY, "JOBS_API_URL"), ("http://127.0.0.1:1", None, "JOBS_API_KEY"), ("ftp://x", KEY, "http")])
def test_missing_configuration_is_a_clear_error(url, key, words):
    with pytest.raises(ConfigurationError, match=words):
        Client(url, key)


# ---- routes -----------------------------------------------------------------------------

JOB_ID = "job-01937000-0000-7000-8000-000000000001"
ROUTES = [
    # (call, method, path, json body or None (none sent), query)
    (lambda c: c.get_job(JOB_ID), "GET", f"/v1/jobs/{JOB_ID}", None, {}),
    (lambda c: c.update_job(JOB_ID, status="pending"), "PATCH", f"/v1/jobs/{JOB_ID}", {"status": "pending"}, {}),
    (lambda c: c.update_job(JOB_ID, metadata={"a": None}, stop_reason=None, ttft_ns=5), "PATCH", f"/v1/jobs/{JOB_ID}",
     {"metadata": {"a": None}, "stop_reason": None, "ttft_ns": 5}, {}),
    (lambda c: c.update_job(JOB_ID, callback_url=None, total_duration_ns=NOT_GIVEN), "PATCH", f"/v1/jobs/{JOB_ID}", {"callback_url": None}, {}),
    (lambda c: c.cancel_job(JOB_ID), "PATCH", f"/v1/jobs/{JOB_ID}/cancel", None, {}),
    (lambda c: c.delete_job(JOB_ID), "DELETE", f"/v1/jobs/{JOB_ID}", None, {}),
    (lambda c: c.add_message(JOB_ID, role="user", content={"q": 1}), "POST", f"/v1/jobs/{JOB_ID}/messages", {"role": "user", "content": {"q": 1}}, {}),
    (lambda c: list(c.list_messages(JOB_ID, role="tool", limit=5, order="desc")), "GET", f"/v1/jobs/{JOB_ID}/messages", None,
     {"role": "tool", "limit": "5", "order": "desc"}),
    (lambda c: list(c.list_callbacks(JOB_ID)), "GET", f"/v1/jobs/{JOB_ID}/callbacks", None, {}),
    (lambda c: c.redeliver(JOB_ID), "POST", f"/v1/jobs/{JOB_ID}/callbacks/redeliver", None, {}),
    (lambda c: c.history(JOB_ID), "GET", f"/v1/jobs/{JOB_ID}/history", None, {}),
    (lambda c: c.stats(), "GET", "/v1/stats", None, {}),
    (lambda c: c.stats(hours=6, job_type="run"), "GET", "/v1/stats", None, {"hours": "6", "job_type": "run"}),
    (lambda c: c.bulk_cancel(source_id="s", limit=10), "POST", "/v1/jobs/cancel", {"source_id": "s", "limit": 10}, {}),
    (lambda c: c.bulk_cancel(status="pending", created_before=datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)), "POST", "/v1/jobs/cancel",
     {"status": "pending", "created_before": "2026-01-02T03:04:05.000000Z"}, {}),
    (lambda c: c.recover_callbacks("2026-01-01T00:00:00Z"), "POST", "/v1/callbacks/recover", {"since": "2026-01-01T00:00:00Z"}, {}),
    (lambda c: c.recover_callbacks(datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=2))), until="2026-01-02T00:00:00Z"), "POST",
     "/v1/callbacks/recover", {"since": "2025-12-31T22:00:00.000000Z", "until": "2026-01-02T00:00:00Z"}, {}),
    (lambda c: c.webhook_secret(), "GET", "/v1/webhook-secret", None, {}),
    (lambda c: c.rotate_webhook_secret(), "POST", "/v1/webhook-secret/rotate", None, {}),
    (lambda c: c.create_batch(provider="simulated", requests=[{"custom_id": "q", "params": {}}]), "POST", "/v1/batches",
     {"provider": "simulated", "requests": [{"custom_id": "q", "params": {}}]}, {}),
    (lambda c: c.get_batch(JOB_ID), "GET", f"/v1/batches/{JOB_ID}", None, {}),
    (lambda c: list(c.list_batches(status="running", active=False)), "GET", "/v1/batches", None, {"status": "running", "active": "false"}),
    (lambda c: list(c.list_batch_items(JOB_ID, after="q1", limit=2)), "GET", f"/v1/batches/{JOB_ID}/items", None, {"after": "q1", "limit": "2"}),
    (lambda c: c.cancel_batch(JOB_ID), "PATCH", f"/v1/batches/{JOB_ID}/cancel", None, {}),
    (lambda c: c.health(), "GET", "/v1/health", None, {}),
]


@pytest.mark.parametrize("call, method, path, body, query", ROUTES)
def test_each_method_calls_its_route(stub, call, method, path, body, query):
    answer = [] if method == "GET" and ("messages" in path or "callbacks" in path or "history" in path or path.endswith(("batches", "items"))) else {"ok": True}
    stub.handler = lambda r: Reply(200, answer)
    client, _ = make_client(stub.url)
    assert call(client) == answer
    (request,) = stub.requests
    assert (request.method, request.path, request.query) == (method, path, query)
    assert request.json() == body


def test_create_sends_only_what_is_given_and_an_idempotency_key(stub):
    stub.handler = lambda r: Reply(201, {"id": JOB_ID})
    client, _ = make_client(stub.url)
    assert client.create_job() == {"id": JOB_ID}
    client.create_job(job_type="run", status="running", metadata={"source_id": "a"}, heartbeat_timeout_seconds=30, background=False)
    client.create_job(idempotency_key="order-42")
    first, second, third = stub.requests
    assert first.json() == {}
    assert second.json() == {"job_type": "run", "status": "running", "metadata": {"source_id": "a"}, "heartbeat_timeout_seconds": 30, "background": False}
    assert uuid.UUID(first.headers["idempotency-key"]).version == 4
    assert first.headers["idempotency-key"] != second.headers["idempotency-key"]
    assert third.headers["idempotency-key"] == "order-42"


def test_list_query_formats_values(stub):
    stub.handler = lambda r: Reply(200, [])
    client, _ = make_client(stub.url)
    when = datetime(2026, 11, 28, 15, 4, 5, 123456, tzinfo=timezone.utc)
    assert list(client.list_jobs(status="running", active=True, job_type="run", source_id="a b&c", updated_before=when,
                                 before="job-b", after="job-a", order="asc", limit=7)) == []
    assert stub.requests[0].query == {
        "status": "running", "active": "true", "job_type": "run", "source_id": "a b&c",
        "updated_before": "2026-11-28T15:04:05.123456Z", "before": "job-b", "after": "job-a", "order": "asc", "limit": "7",
    }
    list(client.list_jobs(updated_before="2026-01-01T00:00:00Z"))
    assert stub.requests[1].query == {"updated_before": "2026-01-01T00:00:00Z"}


def test_ids_are_escaped_in_paths(stub):
    stub.handler = lambda r: Reply(404, {"detail": "no such job"})
    client, _ = make_client(stub.url)
    with pytest.raises(ApiError):
        client.get_job("../webhook-secret")
    assert stub.requests[0].path == "/v1/jobs/..%2Fwebhook-secret"


def test_bulk_cancel_needs_a_filter(stub):
    client, _ = make_client(stub.url)
    with pytest.raises(ValueError):
        client.bulk_cancel(limit=10)
    assert stub.requests == []


# ---- pagination -------------------------------------------------------------------------


def paged(stub: StubServer, pages: list[list[dict]], link: str = "relative") -> None:
    """Serve ``pages`` one after the other, each linking to the next with a Link header."""

    def handler(request: Recorded) -> Reply:
        n = int(request.query.get("page", "0"))
        headers = {}
        if n + 1 < len(pages):
            target = f"/v1/jobs?page={n + 1}&limit=3"
            if link == "absolute":
                target = stub.url + target
            # several links, quoted parameters holding commas and semicolons, rel lists
            headers["Link"] = f'<{stub.url}/v1/jobs?page=0>; rel="first"; title="a, b; c", <{target}>; rel="next last"'
        return Reply(200, pages[n], headers)

    stub.handler = handler


@pytest.mark.parametrize("link", ["relative", "absolute"])
def test_lists_follow_link_next_through_every_page(stub, link):
    pages = [[{"id": "a"}, {"id": "b"}, {"id": "c"}], [{"id": "d"}], [], [{"id": "e"}, {"id": "f"}]]
    paged(stub, pages, link)
    client, _ = make_client(stub.url)
    iterator = client.list_jobs(status="running", limit=3)
    assert stub.requests == []  # lazy: nothing is fetched before it is needed
    assert next(iterator) == {"id": "a"}
    assert len(stub.requests) == 1
    assert [j["id"] for j in iterator] == ["b", "c", "d", "e", "f"]
    assert [r.query for r in stub.requests] == [
        {"status": "running", "limit": "3"}, {"page": "1", "limit": "3"}, {"page": "2", "limit": "3"}, {"page": "3", "limit": "3"},
    ]


def test_a_list_without_link_is_one_page(stub):
    stub.handler = lambda r: Reply(200, [{"id": "a"}, {"id": "b"}])
    client, _ = make_client(stub.url)
    assert [j["id"] for j in client.list_jobs(limit=2)] == ["a", "b"]
    assert len(stub.requests) == 1


def test_a_link_without_next_ends_the_list(stub):
    stub.handler = lambda r: Reply(200, [{"id": "a"}], {"Link": f'<{stub.url}/v1/jobs?x=1>; rel="prev"'})
    client, _ = make_client(stub.url)
    assert list(client.list_jobs()) == [{"id": "a"}]
    assert len(stub.requests) == 1


def test_a_page_linking_to_itself_does_not_loop(stub):
    stub.handler = lambda r: Reply(200, [{"id": "a"}], {"Link": '</v1/jobs?page=1>; rel="next"'})
    client, _ = make_client(stub.url)
    assert len(list(client.list_jobs())) == 2  # the first page, then page=1 once
    assert len(stub.requests) == 2


def test_the_api_key_is_not_sent_to_another_origin(stub):
    other = StubServer(lambda r: Reply(200, [{"id": "z"}]))
    try:
        stub.handler = lambda r: Reply(200, [{"id": "a"}], {"Link": f'<{other.url}/v1/jobs?page=2>; rel="next"'})
        client, _ = make_client(stub.url)
        assert [j["id"] for j in client.list_jobs()] == ["a", "z"]
        assert stub.requests[0].headers["authorization"] == f"Bearer {KEY}"
        assert "authorization" not in other.requests[0].headers
    finally:
        other.close()


def test_history_follows_pages_too(stub):
    def handler(request: Recorded) -> Reply:
        if request.query.get("p") == "2":
            return Reply(200, [{"status": "running"}])
        return Reply(200, [{"status": "created"}], {"Link": '<?p=2>; rel="next"'})

    stub.handler = handler
    client, _ = make_client(stub.url)
    assert client.history(JOB_ID) == [{"status": "created"}, {"status": "running"}]


# ---- retries ----------------------------------------------------------------------------


def script(stub: StubServer, replies: list) -> None:
    """Answer the n-th request with replies[n] (the last one from then on)."""

    def handler(request: Recorded):
        n = len(stub.requests) - 1
        return replies[min(n, len(replies) - 1)]

    stub.handler = handler


def test_a_503_then_200_is_retried(stub):
    script(stub, [Reply(503, {"detail": "busy"}), Reply(200, {"id": JOB_ID})])
    client, sleeps = make_client(stub.url)
    assert client.get_job(JOB_ID) == {"id": JOB_ID}
    assert len(stub.requests) == 2
    assert len(sleeps) == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
def test_retries_stop_after_max_retries(stub, status):
    script(stub, [Reply(status, {"detail": "still failing"})])
    client, sleeps = make_client(stub.url, max_retries=3, backoff_base=0.5, backoff_max=1.5)
    with pytest.raises(ApiError) as caught:
        client.get_job(JOB_ID)
    assert caught.value.status_code == status and caught.value.detail == "still failing"
    assert len(stub.requests) == 4
    # exponential backoff with full jitter: each delay in [0, min(cap, base * 2**n)]
    assert len(sleeps) == 3
    assert all(0 <= s <= cap for s, cap in zip(sleeps, [0.5, 1.0, 1.5]))


@pytest.mark.parametrize("status", [400, 401, 404, 409, 413, 422])
def test_client_errors_are_not_retried(stub, status):
    script(stub, [Reply(status, {"detail": "no"})])
    client, sleeps = make_client(stub.url)
    with pytest.raises(ApiError):
        client.update_job(JOB_ID, status="running")
    assert len(stub.requests) == 1 and sleeps == []


def test_429_honours_retry_after_seconds(stub):
    script(stub, [Reply(429, {"detail": "slow down"}, {"Retry-After": "3"}), Reply(200, {"ok": 1})])
    client, sleeps = make_client(stub.url)
    assert client.stats() == {"ok": 1}
    assert sleeps == [3.0]
    assert len(stub.requests) == 2


def test_retry_after_as_a_date_and_capped(stub):
    later = format_datetime(datetime.now(timezone.utc) + timedelta(hours=1), usegmt=True)
    script(stub, [Reply(503, None, {"Retry-After": later}), Reply(429, None, {"Retry-After": "1000"}), Reply(200, {})])
    client, sleeps = make_client(stub.url, max_retry_after=7)
    client.health()
    assert sleeps == [7, 7]


def test_connection_refused_then_success():
    port = free_port()  # nothing listens there yet: the first attempt is refused
    started: list[StubServer] = []
    client = Client(f"http://127.0.0.1:{port}", KEY, timeout=10)

    def sleep(seconds: float) -> None:  # the backoff: the server comes up meanwhile
        if not started:
            started.append(StubServer(lambda r: Reply(200, {"id": JOB_ID}), port=port))

    client._sleep = sleep
    try:
        assert client.get_job(JOB_ID) == {"id": JOB_ID}
        assert len(started[0].requests) == 1
    finally:
        for server in started:
            server.close()


def test_connection_refused_every_time_is_a_connection_error():
    client = Client(f"http://127.0.0.1:{free_port()}", KEY, timeout=10, max_retries=2)
    sleeps: list[float] = []
    client._sleep = sleeps.append
    with pytest.raises(ApiConnectionError) as caught:
        client.health()
    assert isinstance(caught.value.__cause__, requests.ConnectionError)
    assert len(sleeps) == 2


def test_a_retried_create_reuses_its_idempotency_key(stub):
    script(stub, [Reply(503, {"detail": "x"}), CLOSE, Reply(201, {"id": JOB_ID})])
    client, _ = make_client(stub.url)
    assert client.create_job(job_type="run") == {"id": JOB_ID}
    keys = [r.headers["idempotency-key"] for r in stub.requests]
    assert len(keys) == 3 and len(set(keys)) == 1
    assert uuid.UUID(keys[0]).version == 4
    assert [r.json() for r in stub.requests] == [{"job_type": "run"}] * 3


def test_a_create_meeting_its_own_earlier_attempt_in_progress_retries(stub):
    in_progress = Reply(409, {"detail": "another request with this Idempotency-Key is in progress; retry"})
    script(stub, [CLOSE, in_progress, Reply(201, {"id": JOB_ID}, {"Idempotent-Replayed": "true"})])
    client, _ = make_client(stub.url)
    assert client.create_job() == {"id": JOB_ID}
    assert len(stub.requests) == 3


def test_a_create_conflict_on_the_first_attempt_is_an_error(stub):
    # nothing of this call reached the server before: the key is someone else's, or its job
    # was deleted; retrying would not help
    script(stub, [Reply(409, {"detail": "replay of a deleted job"})])
    client, _ = make_client(stub.url)
    with pytest.raises(ApiError) as caught:
        client.create_job(idempotency_key="k")
    assert caught.value.status_code == 409 and len(stub.requests) == 1


def test_operations_unsafe_to_repeat_are_not_retried_after_a_lost_answer(stub):
    stub.handler = lambda r: CLOSE  # the request arrives, the answer is lost
    client, _ = make_client(stub.url)
    with pytest.raises(ApiConnectionError):
        client.add_message(JOB_ID, role="user", content="hi")
    assert len(stub.requests) == 1
    with pytest.raises(ApiConnectionError):
        client.rotate_webhook_secret()  # a second rotation would drop the old secret
    assert len(stub.requests) == 2
    stub.requests.clear()
    script(stub, [Reply(503, {"detail": "x"}), Reply(201, {})])
    with pytest.raises(ApiError):
        client.create_batch(provider="simulated", requests=[])
    assert len(stub.requests) == 1


def test_operations_unsafe_to_repeat_are_retried_when_nothing_was_sent():
    port = free_port()
    started: list[StubServer] = []
    client = Client(f"http://127.0.0.1:{port}", KEY, timeout=10)
    client._sleep = lambda s: started or started.append(StubServer(lambda r: Reply(201, {"id": "message-1"}), port=port))
    try:
        assert client.add_message(JOB_ID, role="user", content="hi") == {"id": "message-1"}
    finally:
        for server in started:
            server.close()


def test_429_is_retried_for_unsafe_operations_too(stub):
    script(stub, [Reply(429, None, {"Retry-After": "0"}), Reply(200, {"secret": "whsec_x"})])
    client, _ = make_client(stub.url)
    assert client.rotate_webhook_secret() == {"secret": "whsec_x"}
    assert len(stub.requests) == 2


def test_a_cancel_whose_answer_was_lost_still_succeeds(stub):
    cancelled = {"id": JOB_ID, "status": "cancelled", "stop_reason": "cancelled"}
    script(stub, [CLOSE, Reply(409, {"detail": "job is cancelled", "current_status": "cancelled"}), Reply(200, cancelled)])
    client, _ = make_client(stub.url)
    assert client.cancel_job(JOB_ID) == cancelled
    assert [(r.method, r.path) for r in stub.requests] == [
        ("PATCH", f"/v1/jobs/{JOB_ID}/cancel"), ("PATCH", f"/v1/jobs/{JOB_ID}/cancel"), ("GET", f"/v1/jobs/{JOB_ID}"),
    ]


def test_a_cancel_of_a_cancelled_job_is_a_409_when_nothing_was_retried(stub):
    script(stub, [Reply(409, {"detail": "job is cancelled", "current_status": "cancelled"})])
    client, _ = make_client(stub.url)
    with pytest.raises(ApiError) as caught:
        client.cancel_job(JOB_ID)
    assert caught.value.status_code == 409 and caught.value.current_status == "cancelled"


# ---- errors -----------------------------------------------------------------------------


def test_error_with_a_detail_message(stub):
    script(stub, [Reply(404, {"detail": f"job {JOB_ID} not found"})])
    client, _ = make_client(stub.url)
    with pytest.raises(ApiError) as caught:
        client.get_job(JOB_ID)
    error = caught.value
    assert (error.status_code, error.detail) == (404, f"job {JOB_ID} not found")
    assert error.response.status_code == 404
    assert str(error) == f"404 job {JOB_ID} not found"
    assert error.current_status is None


def test_error_with_validation_problems(stub):
    problems = [{"loc": ["body", "status"], "msg": "Input should be 'created'", "type": "enum"}]
    script(stub, [Reply(422, {"detail": problems})])
    client, _ = make_client(stub.url)
    with pytest.raises(ApiError) as caught:
        client.create_job(status="nope")
    assert caught.value.detail == problems
    assert str(caught.value) == "422 status: Input should be 'created'"


def test_conflict_carries_the_current_status(stub):
    script(stub, [Reply(409, {"detail": "cannot move", "current_status": "completed"})])
    client, _ = make_client(stub.url)
    with pytest.raises(ApiError) as caught:
        client.update_job(JOB_ID, status="running")
    assert caught.value.current_status == "completed"


def test_error_that_is_not_json(stub):
    script(stub, [Reply(400, raw=b"<html>Bad Request</html>")])
    client, _ = make_client(stub.url)
    with pytest.raises(ApiError) as caught:
        client.get_job(JOB_ID)
    assert (caught.value.status_code, caught.value.detail) == (400, "<html>Bad Request</html>")


def test_error_with_an_empty_body_gives_the_reason(stub):
    script(stub, [Reply(403, raw=b"")])
    client, _ = make_client(stub.url)
    with pytest.raises(ApiError) as caught:
        client.get_job(JOB_ID)
    assert (caught.value.status_code, caught.value.detail) == (403, "Forbidden")


def test_a_list_answer_that_is_not_an_array_is_an_error(stub):
    script(stub, [Reply(200, {"not": "a list"})])
    client, _ = make_client(stub.url)
    with pytest.raises(ApiError):
        list(client.list_jobs())
