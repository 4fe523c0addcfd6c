"""The Python client, installed in a fresh virtual environment, against the local stack."""
from __future__ import annotations

import subprocess

from tests.client.e2e_fixtures import client_env, client_venv, py  # noqa: F401  (fixtures)
from tests.client.support import DroppingProxy


def test_installed_from_a_fresh_venv_with_requests_only(client_venv, py):
    where = py("""
        import jobsvc_client, importlib.metadata as md
        deps = md.requires("jobsvc-client")
        try:
            import jobsvc  # the service's own code must not be reachable
            service = True
        except ImportError:
            service = False
        print(json.dumps({"file": jobsvc_client.__file__, "deps": deps, "service": service}))
    """)
    assert where["file"].startswith(str(client_venv.root))
    assert [d.split(">")[0].split("=")[0].strip() for d in where["deps"]] == ["requests"]
    assert where["service"] is False
    version = subprocess.run([str(client_venv.jobs), "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("jobs ")
    print(f"fresh venv with the client: {client_venv.seconds:.1f} s")


def test_create_get_update_list_messages_delete(py, tag):
    result = py("""
        from jobsvc_client import Client
        c = Client()
        tag = ARGS["tag"]
        created = [c.create_job(job_type="run", metadata={"source_id": tag, "n": i}) for i in range(7)]
        first = created[0]
        got = c.get_job(first["id"])
        pending = c.update_job(first["id"], status="pending")
        running = c.update_job(first["id"], status="running", metadata={"step": 1, "n": None})
        # a list reads an index, which may lag a write by a moment (as in AWS): wait for the 7
        import time
        deadline = time.monotonic() + 30
        while len(desc := [j["id"] for j in c.list_jobs(source_id=tag)]) < 7 and time.monotonic() < deadline:
            time.sleep(0.1)
        asc = [j["id"] for j in c.list_jobs(source_id=tag, order="asc")]
        small = [j["id"] for j in c.list_jobs(source_id=tag, limit=3)]
        running_only = [j["id"] for j in c.list_jobs(source_id=tag, status="running")]
        message = c.add_message(first["id"], role="user", content="hi")
        c.add_message(first["id"], role="assistant", content={"answer": 42})
        messages = list(c.list_messages(first["id"]))
        assistant = list(c.list_messages(first["id"], role="assistant"))
        deleted = c.delete_job(created[-1]["id"])
        print(json.dumps({"created": [j["id"] for j in created], "got": got, "pending": pending, "running": running,
                          "desc": desc, "asc": asc, "small": small, "running_only": running_only, "message": message,
                          "messages": messages, "assistant": assistant, "deleted": deleted,
                          "after_delete": [j["id"] for j in c.list_jobs(source_id=tag)]}))
    """, tag=tag)
    ids = result["created"]
    assert result["got"]["id"] == ids[0] and result["got"]["status"] == "created"
    assert result["got"]["metadata"] == {"source_id": tag, "n": 0}
    assert result["pending"]["status"] == "pending"
    assert result["running"]["status"] == "running"
    assert result["running"]["metadata"] == {"source_id": tag, "step": 1}
    assert result["desc"] == ids[::-1]
    assert result["asc"] == ids
    # limit is the page size: the client goes on through every page the server links (without
    # a Link header, the list is one page)
    assert 3 <= len(result["small"]) <= 7 and result["small"] == ids[::-1][: len(result["small"])]
    assert result["running_only"] == [ids[0]]
    assert result["message"]["role"] == "user" and result["message"]["job_id"] == ids[0]
    assert [(m["role"], m["content"]) for m in result["messages"]] == [("user", "hi"), ("assistant", {"answer": 42})]
    assert [m["content"] for m in result["assistant"]] == [{"answer": 42}]
    assert result["deleted"]["id"] == ids[-1]
    assert result["after_delete"] == ids[:-1][::-1]


def test_errors_carry_status_and_detail(py, client_env, keys):
    result = py("""
        from jobsvc_client import Client, ApiError
        c = Client()
        out = {}
        def attempt(name, f):
            try:
                f()
                out[name] = None
            except ApiError as e:
                out[name] = {"status": e.status_code, "detail": e.detail, "current": e.current_status}
        job = c.create_job(status="running")
        c.update_job(job["id"], status="completed")
        attempt("missing", lambda: c.get_job("job-01937000-0000-7000-8000-000000000000"))
        attempt("transition", lambda: c.update_job(job["id"], status="running"))
        attempt("cancel_terminal", lambda: c.cancel_job(job["id"]))
        attempt("invalid", lambda: c.create_job(heartbeat_timeout_seconds=1))
        attempt("bad_key", lambda: Client(api_key="jsk_not_a_real_key_000000").get_job(job["id"]))
        out["same_status"] = c.update_job(job["id"], status="completed")["status"]
        print(json.dumps(out))
    """)
    assert result["missing"]["status"] == 404 and isinstance(result["missing"]["detail"], str)
    assert result["transition"]["status"] == 409 and result["transition"]["current"] == "completed"
    assert result["cancel_terminal"]["status"] == 409
    assert result["invalid"]["status"] == 422 and isinstance(result["invalid"]["detail"], list)
    assert result["bad_key"]["status"] == 401
    assert result["same_status"] == "completed"


def test_a_retried_create_never_makes_two_jobs(py, client_venv, stack, keys, api, tag):
    # the proxy forwards the first create to the stack, then closes the connection unanswered
    proxy = DroppingProxy(stack["base"], lambda r: r.method == "POST" and r.path == "/v1/jobs")
    try:
        result = py("""
            from jobsvc_client import Client
            c = Client(backoff_base=0.05)
            job = c.create_job(job_type="run", metadata={"source_id": ARGS["tag"]})
            print(json.dumps(job))
        """, env=client_venv.env(proxy.url, keys["a"][0]), tag=tag)
    finally:
        proxy.close()
    (dropped,) = proxy.dropped
    creates = [(r, status, headers) for r, status, headers in proxy.forwarded if r.method == "POST"]
    assert len(creates) == 1
    retry, status, headers = creates[0]
    assert retry.headers["idempotency-key"] == dropped.headers["idempotency-key"]
    assert status == 201 and headers.get("Idempotent-Replayed") == "true"  # the stack had made the job
    jobs = api.list(source_id=tag)
    assert [j["id"] for j in jobs] == [result["id"]]


def test_webhook_secret_callbacks_and_redeliver(py, tag):
    result = py("""
        from jobsvc_client import Client, ApiError
        c = Client()
        job = c.create_job(status="running", callback_url="http://127.0.0.1:9/unreachable")
        c.update_job(job["id"], status="completed")
        secret = c.webhook_secret()
        try:
            c.redeliver(c.create_job()["id"])  # not terminal: 409
            refused = None
        except ApiError as e:
            refused = e.status_code
        print(json.dumps({"secret": secret, "callbacks": list(c.list_callbacks(job["id"])),
                          "redeliver": c.redeliver(job["id"]), "refused": refused, "health": c.health()}))
    """)
    assert result["secret"]["secret"].startswith("whsec_")
    assert isinstance(result["callbacks"], list)
    assert isinstance(result["redeliver"], dict)
    assert result["refused"] == 409
    assert result["health"] == {"status": "ok"}
