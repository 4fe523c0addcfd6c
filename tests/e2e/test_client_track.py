"""track() against the local stack: heartbeats keep a job alive, a killed worker's job is failed
by the service's sweep, an exception fails the job, a cancel from outside reaches the worker.
(The stack's scheduler runs every 2 s in these tests; heartbeat_timeout_seconds is at least 10.)"""
from __future__ import annotations

import signal
from datetime import datetime

from tests.client.e2e_fixtures import background, client_env, client_venv, py  # noqa: F401  (fixtures)
from tests.client.support import wait_for

def seconds(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


WORKER = """
    from jobsvc_client import Client
    with Client().track(job_type="run", heartbeat_timeout_seconds=10, metadata={"source_id": ARGS["tag"]}) as t:
        print("job", t.job_id, flush=True)
        sys.stdin.readline()  # work until told to finish (or killed)
    print("done", flush=True)
"""


def test_a_killed_worker_is_failed_by_the_sweep_while_a_live_one_is_kept_alive(background, api, tag):
    killed = background(WORKER, tag=tag + "-killed")
    alive = background(WORKER, tag=tag + "-alive")
    killed_id = killed.line("job ").split()[1]
    alive_id = alive.line("job ").split()[1]
    assert api.job(killed_id)["status"] == "running"
    killed.proc.send_signal(signal.SIGKILL)
    killed.wait(timeout=30)

    # the service's sweep notices the missing heartbeats (10 s) and fails the job
    failed = wait_for(lambda: (lambda j: j if j["status"] != "running" else None)(api.job(killed_id)), timeout=90, every=0.5)
    assert failed, "the killed worker's job was never failed"
    assert (failed["status"], failed["stop_reason"]) == ("failed", "heartbeat_timeout")

    # the live worker's job got no explicit update either: its heartbeats keep it running. Wait
    # until its heartbeats have carried it well past its timeout (by the service's own clock):
    # 15 s, one and a half times its 10 s, with sweeps every 2 s meanwhile
    def survived() -> bool:
        job = api.job(alive_id)
        assert job["status"] == "running", job
        return seconds(job["last_updated_at"]) - seconds(job["created_at"]) >= 15

    assert wait_for(survived, timeout=120, every=0.5)
    alive.send("finish\n")
    assert alive.wait(timeout=60) == 0, alive.output()
    assert alive.line("done")
    assert api.job(alive_id)["status"] == "completed"


def test_an_exception_fails_the_job_with_its_class_name(background, api, tag):
    worker = background("""
        from jobsvc_client import Client

        class DataCorrupted(Exception):
            pass

        with Client().track(job_type="run", heartbeat_timeout_seconds=30, metadata={"source_id": ARGS["tag"]}) as t:
            print("job", t.job_id, flush=True)
            t.update(metadata={"step": 1})
            raise DataCorrupted("row 7")
    """, tag=tag)
    assert worker.wait(timeout=60) == 1
    job_id = worker.line("job ").split()[1]
    assert "DataCorrupted: row 7" in worker.output()  # re-raised, with its traceback
    job = api.job(job_id)
    assert (job["status"], job["stop_reason"]) == ("failed", "DataCorrupted")
    assert job["metadata"] == {"source_id": tag, "step": 1}


def test_a_cancel_from_outside_reaches_the_worker(background, api, tag):
    worker = background("""
        import time
        from jobsvc_client import Client, JobCancelled
        try:
            with Client().track(job_type="run", heartbeat_timeout_seconds=10, check_interval=0.5) as t:
                print("job", t.job_id, flush=True)
                while True:
                    t.check()
                    time.sleep(0.1)
        except JobCancelled as e:
            print("cancelled", e.job_id, e.status, flush=True)
    """)
    job_id = worker.line("job ").split()[1]
    cancelled = api.patch(f"/v1/jobs/{job_id}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert worker.wait(timeout=60) == 0, worker.output()
    assert worker.line("cancelled") == f"cancelled {job_id} cancelled"
    job = api.job(job_id)
    assert (job["status"], job["stop_reason"]) == ("cancelled", "cancelled")  # left as it was


def test_ctrl_c_cancels_the_job(background, api):
    worker = background("""
        import time
        from jobsvc_client import Client
        with Client().track(job_type="run", heartbeat_timeout_seconds=30) as t:
            print("job", t.job_id, flush=True)
            while True:
                time.sleep(0.1)
    """)
    job_id = worker.line("job ").split()[1]
    worker.proc.send_signal(signal.SIGINT)
    assert worker.wait(timeout=60) != 0
    assert "KeyboardInterrupt" in worker.output()
    assert api.job(job_id)["status"] == "cancelled"
