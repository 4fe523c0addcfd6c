"""track(): the job's state machine around a block of work, against a fake job service."""
from __future__ import annotations

import threading
import time

import pytest
from jobsvc_client import ApiConnectionError, Client, JobCancelled, JobEnded

from tests.client.support import CLOSE, Recorded, Reply, wait_for

KEY = "jsk_unit_0123456789abcdef"


class Boom(Exception):
    pass


def client_for(fake, **kw) -> Client:
    kw.setdefault("backoff_base", 0.01)
    kw.setdefault("backoff_max", 0.02)
    return Client(fake.url, KEY, timeout=10, **kw)


def heartbeats(fake, job_id: str) -> list[Recorded]:
    return [r for r in fake.server.to("PATCH", f"/v1/jobs/{job_id}") if r.json() == {}]


def is_heartbeat(request: Recorded) -> bool:
    return request.method == "PATCH" and request.json() == {}


def test_normal_exit_completes_the_job(fake_jobs):
    client = client_for(fake_jobs)
    with client.track(job_type="run", heartbeat_timeout_seconds=30, metadata={"source_id": "s"}) as t:
        created = fake_jobs.jobs[t.job_id]
        assert created["status"] == "running"
        assert t.job["status"] == "running"
    assert fake_jobs.jobs[t.job_id]["status"] == "completed"
    assert t.job["status"] == "completed"
    (create,) = fake_jobs.server.to("POST", "/v1/jobs")
    assert create.json() == {"job_type": "run", "status": "running", "metadata": {"source_id": "s"}, "heartbeat_timeout_seconds": 30}
    assert create.headers["idempotency-key"]


def test_heartbeats_go_out_and_the_thread_stops_with_the_block(fake_jobs):
    client = client_for(fake_jobs)
    with client.track(heartbeat_timeout_seconds=30, heartbeat_interval=0.05) as t:
        thread = t.heartbeat_thread
        assert thread is not None and thread.is_alive() and thread.daemon
        assert wait_for(lambda: len(heartbeats(fake_jobs, t.job_id)) >= 3, timeout=30)
    assert not thread.is_alive()
    assert fake_jobs.jobs[t.job_id]["status"] == "completed"
    seen = len(fake_jobs.server.requests)
    time.sleep(0.3)  # six intervals: a live thread would have sent more
    assert len(fake_jobs.server.requests) == seen


def test_leaving_the_block_waits_for_a_heartbeat_in_flight(fake_jobs):
    arrived, release = threading.Event(), threading.Event()

    def slow_heartbeat() -> Reply:
        arrived.set()
        release.wait(30)
        return Reply(503, {"detail": "slow"})

    fake_jobs.fault(is_heartbeat, slow_heartbeat)
    client = client_for(fake_jobs)
    with client.track(heartbeat_interval=0.01) as t:
        assert arrived.wait(30)  # a heartbeat is in flight now
        threading.Timer(0.2, release.set).start()
    # the block's end joined the thread: it is over, and the job completed after it
    assert release.is_set() and not t.heartbeat_thread.is_alive()
    assert fake_jobs.jobs[t.job_id]["status"] == "completed"


def test_the_default_interval_is_a_third_of_the_timeout(fake_jobs, monkeypatch):
    intervals: list[float] = []
    from jobsvc_client import _track

    original = _track.Tracker._heartbeats
    monkeypatch.setattr(_track.Tracker, "_heartbeats", lambda self, interval: intervals.append(interval))
    with client_for(fake_jobs).track(heartbeat_timeout_seconds=30):
        pass
    assert intervals == [10.0]
    monkeypatch.setattr(_track.Tracker, "_heartbeats", original)
    with client_for(fake_jobs).track(heartbeat_timeout_seconds=None) as t:
        assert t.heartbeat_thread is None  # no timeout: nothing to keep alive


def test_an_exception_fails_the_job_with_its_class_name_and_propagates(fake_jobs):
    client = client_for(fake_jobs)
    with pytest.raises(Boom, match="bad input"):
        with client.track(heartbeat_interval=0.05) as t:
            raise Boom("bad input")
    job = fake_jobs.jobs[t.job_id]
    assert (job["status"], job["stop_reason"]) == ("failed", "Boom")
    assert not t.heartbeat_thread.is_alive()


def test_keyboard_interrupt_cancels_the_job_and_propagates(fake_jobs):
    client = client_for(fake_jobs)
    with pytest.raises(KeyboardInterrupt):
        with client.track(heartbeat_interval=0.05) as t:
            raise KeyboardInterrupt
    assert fake_jobs.jobs[t.job_id]["status"] == "cancelled"
    assert fake_jobs.server.to("PATCH", f"/v1/jobs/{t.job_id}/cancel")
    assert not t.heartbeat_thread.is_alive()


def test_a_cancel_from_outside_is_noticed_from_the_heartbeats_409(fake_jobs):
    client = client_for(fake_jobs)
    with client.track(heartbeat_interval=0.05, check_interval=3600) as t:
        t.check()  # nothing yet
        fake_jobs.set_status(t.job_id, "cancelled", "cancelled")
        assert wait_for(lambda: t.cancelled, timeout=30)
        # the heartbeat's 409 said so: check() needs no request of its own
        gets = len(fake_jobs.server.to("GET"))
        with pytest.raises(JobCancelled) as caught:
            t.check()
        assert len(fake_jobs.server.to("GET")) == gets
        assert caught.value.job_id == t.job_id and caught.value.status == "cancelled"
        assert wait_for(lambda: not t.heartbeat_thread.is_alive(), timeout=30)  # no more heartbeats
    # the block ended normally: no attempt to complete a cancelled job
    assert not [r for r in fake_jobs.server.to("PATCH", f"/v1/jobs/{t.job_id}") if (r.json() or {}).get("status") == "completed"]
    assert fake_jobs.jobs[t.job_id]["status"] == "cancelled"


def test_job_cancelled_raised_in_the_block_leaves_the_job_cancelled(fake_jobs):
    client = client_for(fake_jobs)
    with pytest.raises(JobCancelled):
        with client.track(heartbeat_interval=3600) as t:
            fake_jobs.set_status(t.job_id, "cancelled", "cancelled")
            t.check(refresh=True)
    job_patches = [r.json() for r in fake_jobs.server.to("PATCH", f"/v1/jobs/{t.job_id}")]
    assert job_patches == []  # neither failed nor completed was attempted
    assert fake_jobs.jobs[t.job_id]["status"] == "cancelled"


def test_check_reads_the_job_when_its_news_are_old(fake_jobs):
    client = client_for(fake_jobs)
    with pytest.raises(JobCancelled):
        with client.track(heartbeat_timeout_seconds=None, check_interval=0) as t:
            t.check()
            fake_jobs.set_status(t.job_id, "cancelled", "cancelled")
            t.check()
    assert len(fake_jobs.server.to("GET", f"/v1/jobs/{t.job_id}")) >= 2


def test_check_does_not_ask_again_within_the_check_interval(fake_jobs):
    client = client_for(fake_jobs)
    with client.track(heartbeat_timeout_seconds=None, check_interval=3600) as t:
        for _ in range(50):
            t.check()
    assert fake_jobs.server.to("GET") == []


def test_update_reports_progress_and_counts_as_a_heartbeat(fake_jobs):
    client = client_for(fake_jobs)
    with client.track(metadata={"a": 1}, heartbeat_interval=3600) as t:
        job = t.update(metadata={"step": 2, "a": None}, ttft_ns=5)
        assert job["metadata"] == {"step": 2} and job["ttft_ns"] == 5
        assert t.job["metadata"] == {"step": 2}
        fake_jobs.set_status(t.job_id, "cancelled")
        with pytest.raises(JobCancelled):
            t.update(metadata={"step": 3})
        assert t.cancelled


def test_an_end_other_than_cancel_is_job_ended(fake_jobs):
    client = client_for(fake_jobs)
    with client.track(heartbeat_interval=0.05) as t:
        fake_jobs.set_status(t.job_id, "failed", "heartbeat_timeout")
        assert wait_for(lambda: t.ended is not None, timeout=30)
        with pytest.raises(JobEnded) as caught:
            t.check()
        assert not isinstance(caught.value, JobCancelled)
        assert caught.value.status == "failed" and "heartbeat_timeout" in str(caught.value)
    assert fake_jobs.jobs[t.job_id]["status"] == "failed"


def test_a_transiently_failing_heartbeat_does_not_kill_the_worker(fake_jobs):
    # more failures in a row than the client retries (max_retries=2: 3 attempts per heartbeat)
    fake_jobs.fault(is_heartbeat, Reply(503, {"detail": "unavailable"}), times=4)
    fake_jobs.fault(is_heartbeat, CLOSE, times=3)
    client = client_for(fake_jobs, max_retries=2)
    with client.track(heartbeat_interval=0.05) as t:
        assert wait_for(lambda: t.heartbeats >= 2, timeout=60)
        assert t.heartbeat_failures >= 2
        assert t.heartbeat_thread.is_alive()
        t.check()  # the worker is not told anything is wrong
    assert fake_jobs.jobs[t.job_id]["status"] == "completed"
    assert not fake_jobs.faults


def test_recording_the_failure_never_replaces_the_workers_exception(fake_jobs):
    fake_jobs.fault(lambda r: r.method == "PATCH" and (r.json() or {}).get("status") == "failed", Reply(500, {"detail": "down"}), times=10)
    client = client_for(fake_jobs, max_retries=1)
    with pytest.raises(Boom):
        with client.track(heartbeat_interval=3600):
            raise Boom()


def test_completing_fails_loudly_when_the_api_is_unreachable(fake_jobs):
    fake_jobs.fault(lambda r: (r.json() or {}).get("status") == "completed", CLOSE, times=10)
    client = client_for(fake_jobs, max_retries=1)
    with pytest.raises(ApiConnectionError):
        with client.track(heartbeat_interval=3600):
            pass


def test_a_job_cancelled_just_before_completion_ends_quietly(fake_jobs):
    client = client_for(fake_jobs)
    with client.track(heartbeat_interval=3600, check_interval=3600) as t:
        fake_jobs.set_status(t.job_id, "cancelled", "cancelled")
    assert t.cancelled
    assert fake_jobs.jobs[t.job_id]["status"] == "cancelled"


def test_track_an_existing_created_job(fake_jobs):
    client = client_for(fake_jobs)
    job = client.create_job(job_type="run")
    with client.track(job_id=job["id"], metadata={"worker": "w1"}, heartbeat_interval=3600) as t:
        assert t.job["status"] == "running"
    statuses = [(r.json() or {}).get("status") for r in fake_jobs.server.to("PATCH", f"/v1/jobs/{job['id']}")]
    assert statuses == ["running", "pending", "running", "completed"]  # created: through pending
    assert fake_jobs.jobs[job["id"]]["metadata"] == {"worker": "w1"}


def test_track_an_existing_terminal_job_refuses_to_start(fake_jobs):
    client = client_for(fake_jobs)
    job = client.create_job(status="running")
    client.update_job(job["id"], status="completed")
    from jobsvc_client import ApiError

    ran = []
    with pytest.raises(ApiError) as caught:
        with client.track(job_id=job["id"]):
            ran.append(1)
    assert caught.value.status_code == 409 and ran == []


def test_the_heartbeat_thread_stops_even_while_retrying(fake_jobs):
    gate = threading.Event()
    fake_jobs.fault(is_heartbeat, Reply(503, {"detail": "x"}), times=1000)
    client = client_for(fake_jobs, max_retries=1000, backoff_base=0.05, backoff_max=0.05)
    with client.track(heartbeat_interval=0.01) as t:
        assert wait_for(lambda: len(heartbeats(fake_jobs, t.job_id)) >= 3, timeout=30)
        gate.set()
    assert not t.heartbeat_thread.is_alive()
    assert fake_jobs.jobs[t.job_id]["status"] == "completed"


def test_a_hung_heartbeat_does_not_hold_back_the_next_ones(fake_jobs):
    """A heartbeat whose answer never comes is cut at half the interval and tried again, so
    a hung request (with a client timeout far longer than the job's heartbeat timeout) never
    lets the sweep fail a live worker."""
    release = threading.Event()
    held = []

    def hang(request=None) -> Reply:
        held.append(time.monotonic())
        release.wait(120)
        return Reply(503, {"detail": "late"})

    fake_jobs.fault(is_heartbeat, hang)
    client = Client(fake_jobs.url, KEY, timeout=600, backoff_base=0.01, backoff_max=0.02)
    try:
        with client.track(heartbeat_timeout_seconds=30, heartbeat_interval=2) as t:
            # the second heartbeat arrives while the first is still held by the server
            assert wait_for(lambda: len(heartbeats(fake_jobs, t.job_id)) >= 2, timeout=60)
            assert not release.is_set() and len(held) == 1
            assert t.heartbeat_failures >= 1
    finally:
        release.set()
    assert fake_jobs.jobs[t.job_id]["status"] == "completed"
