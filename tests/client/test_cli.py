"""The `jobs` command: arguments, durations, output, exit codes (against a stub server)."""
from __future__ import annotations

import io
import json
from datetime import datetime, timedelta, timezone

import pytest
from jobsvc_client import cli

from tests.client.support import Recorded, Reply, StubServer, free_port

KEY = "jsk_unit_0123456789abcdef"
def ts(seconds_ago: float) -> str:
    """A time ``seconds_ago`` before now (now when the test runs: the table shows ages)."""
    return (datetime.now(timezone.utc) - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def job(n: int, status: str = "running", **extra) -> dict:
    return {"id": f"job-0000000{n}", "status": status, "job_type": "run", "created_at": ts(3600), "last_updated_at": ts(90),
            "completed_at": None, "metadata": {"source_id": f"src-{n}"}, "stop_reason": None, **extra}


def run(stub: StubServer, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = cli.main(["--url", stub.url, "--key", KEY, *argv], out=out)
    return code, out.getvalue()


# ---- durations ----------------------------------------------------------------------------


@pytest.mark.parametrize("text, seconds", [
    ("90s", 90), ("15m", 900), ("1h", 3600), ("2d", 172800), ("1w", 604800), ("1h30m", 5400), ("45", 45), ("1.5h", 5400), (" 2D ", 172800),
])
def test_durations(text, seconds):
    assert cli.parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "h", "1x", "1h1h", "-5m", "0s", "1 hour", "m5", "1h-"])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        cli.parse_duration(text)


# ---- parsing ------------------------------------------------------------------------------


def test_parsing_of_each_command():
    parse = cli.build_parser().parse_args
    args = parse(["list", "--status", "running", "--type", "run", "--source-id", "x", "--limit", "5", "--active", "--json"])
    assert (args.command, args.status, args.job_type, args.source_id, args.limit, args.active, args.json) == ("list", "running", "run", "x", 5, True, True)
    assert parse(["--json", "get", "job-1"]).json is True  # global options before the command...
    args = parse(["--url", "http://a", "cancel", "job-1", "--key", "k"])  # ...or after it
    assert (args.url, args.key, args.id) == ("http://a", "k", "job-1")
    assert parse(["stuck", "--older-than", "1h"]).older_than == timedelta(hours=1)
    assert parse(["stats", "--hours", "6", "--type", "batch"]).hours == 6
    assert parse(["watch", "--interval", "0.5"]).interval == 0.5
    assert parse(["history", "job-1"]).id == "job-1"
    assert parse(["redeliver", "job-1"]).command == "redeliver"


@pytest.mark.parametrize("argv", [
    [], ["frobnicate"], ["get"], ["list", "--status", "sleeping"], ["list", "--limit", "0"], ["stuck"],
    ["stuck", "--older-than", "soon"], ["watch", "--interval", "-1"], ["stats", "--hours", "x"],
])
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as caught:
        cli.main(argv)
    assert caught.value.code == cli.EXIT_USAGE
    assert "usage:" in capsys.readouterr().err


def test_help_documents_exit_codes(capsys):
    with pytest.raises(SystemExit) as caught:
        cli.main(["--help"])
    assert caught.value.code == 0
    text = capsys.readouterr().out
    for line in ("1  the API answered with an error", "2  usage error", "3  the API could not be reached", "JOBS_API_URL", "JOBS_API_KEY"):
        assert line in text


def test_no_configuration_is_a_usage_error(capsys):
    assert cli.main(["list"]) == cli.EXIT_USAGE
    assert capsys.readouterr().err.startswith("error: no API URL")


# ---- output -------------------------------------------------------------------------------


def test_render_table_aligns_columns():
    text = cli.render_table(("A", "LONGER"), [("xxxxx", None), ("y", "z")])
    assert text.splitlines() == ["A      LONGER", "xxxxx  -", "y      z"]


def test_list_prints_an_aligned_table(stub):
    jobs = [job(1), job(2, "failed", stop_reason="heartbeat_timeout")]
    stub.handler = lambda r: Reply(200, jobs)
    code, out = run(stub, "list", "--status", "running", "--type", "run", "--source-id", "s", "--active")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "STATUS", "TYPE", "CREATED", "UPDATED", "STOP_REASON", "SOURCE_ID"]
    assert lines[1].split() == ["job-00000001", "running", "run", "1h00m", "ago", "1m", "ago", "-", "src-1"]
    assert "heartbeat_timeout" in lines[2]
    column = lines[0].index("STATUS")
    assert lines[1][column:].startswith("running") and lines[2][column:].startswith("failed")
    assert stub.requests[0].query == {"status": "running", "job_type": "run", "source_id": "s", "active": "true", "limit": "50"}


def test_list_json_is_one_array(stub):
    jobs = [job(1), job(2)]
    stub.handler = lambda r: Reply(200, jobs)
    code, out = run(stub, "list", "--json")
    assert code == 0 and json.loads(out) == jobs


def test_list_limit_follows_pages_until_n_rows(stub):
    def handler(request: Recorded) -> Reply:
        page = int(request.query.get("page", "0"))
        items = [job(page * 2 + i) for i in range(2)]
        more = {"Link": f'</v1/jobs?page={page + 1}&limit=2>; rel="next"'} if page < 9 else {}
        return Reply(200, items, more)  # 20 jobs in 10 pages

    stub.handler = handler
    code, out = run(stub, "list", "--limit", "5", "--json")
    assert code == 0
    assert [j["id"] for j in json.loads(out)] == [f"job-0000000{n}" for n in range(5)]
    assert len(stub.requests) == 3  # 2 + 2 + 1 of the third page; no fourth request


def test_list_all_follows_every_page(stub):
    def handler(request: Recorded) -> Reply:
        page = int(request.query.get("page", "0"))
        headers = {"Link": f'</v1/jobs?page={page + 1}>; rel="next"'} if page < 2 else {}
        return Reply(200, [job(page)], headers)

    stub.handler = handler
    code, out = run(stub, "list", "--all", "--json")
    assert len(json.loads(out)) == 3 and stub.requests[0].query["limit"] == "100"


def test_empty_list(stub):
    stub.handler = lambda r: Reply(200, [])
    assert run(stub, "list") == (0, "no jobs\n")
    assert run(stub, "list", "--json") == (0, "[]\n")


def test_stuck_asks_for_running_jobs_not_updated_since(stub):
    listed = job(1)
    stub.handler = lambda r: Reply(200, [listed])
    before = datetime.now(timezone.utc)
    code, out = run(stub, "stuck", "--older-than", "15m", "--json")
    after = datetime.now(timezone.utc)
    assert code == 0 and json.loads(out) == [listed]
    query = stub.requests[0].query
    assert query["status"] == "running"
    cutoff = datetime.strptime(query["updated_before"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    assert before - timedelta(minutes=15) <= cutoff <= after - timedelta(minutes=15)


def test_get_shows_every_field(stub):
    stub.handler = lambda r: Reply(200, job(1, metadata={"step": 2}))
    code, out = run(stub, "get", "job-00000001")
    assert code == 0
    lines = dict(line.split(None, 1) for line in out.splitlines())
    assert lines["id"] == "job-00000001" and lines["metadata"] == '{"step": 2}' and lines["completed_at"] == "-"
    assert lines["last_updated_at"].endswith("(1m ago)")
    code, out = run(stub, "get", "job-00000001", "--json")
    assert json.loads(out)["metadata"] == {"step": 2}


def test_cancel_history_redeliver_stats(stub):
    def handler(request: Recorded) -> Reply:
        if request.path.endswith("/cancel"):
            return Reply(200, job(1, "cancelled", stop_reason="cancelled"))
        if request.path.endswith("/history"):
            return Reply(200, [{"status": "running", "from": None, "at": ts(60), "actor": "user:u", "stop_reason": None},
                               {"status": "cancelled", "from": "running", "at": ts(1), "actor": "user:u", "stop_reason": "cancelled"}])
        if request.path.endswith("/redeliver"):
            return Reply(202, {"job_id": "job-00000001"})
        return Reply(200, {"counts": {"running": 2, "failed": 1}, "window": {
            "since": ts(86400), "until": ts(0), "created": 5, "completed": 3, "failed": 1, "cancelled": 0, "expired": 0,
            "completion_rate": 0.75, "avg_processing_ms": 1234.5, "callbacks": {"delivered": 4, "failed": 1, "avg_latency_ms": 120}}})

    stub.handler = handler
    code, out = run(stub, "cancel", "job-00000001")
    assert code == 0 and "cancelled" in out.splitlines()[1]
    code, out = run(stub, "history", "job-00000001")
    assert out.splitlines()[0].split() == ["AT", "FROM", "STATUS", "ACTOR", "STOP_REASON"]
    assert out.splitlines()[2].split()[1:] == ["running", "cancelled", "user:u", "cancelled"]
    code, out = run(stub, "redeliver", "job-00000001")
    assert code == 0 and "queued" in out
    code, out = run(stub, "stats", "--hours", "6", "--type", "run")
    assert code == 0 and "75.0 %" in out and "4 delivered, 1 failed" in out and "1234 ms" in out
    assert stub.requests[-1].query == {"hours": "6", "job_type": "run"}
    code, out = run(stub, "stats", "--json")
    assert json.loads(out)["counts"]["running"] == 2


# ---- errors -------------------------------------------------------------------------------


def test_api_errors_go_to_stderr_with_exit_1(stub, capsys):
    stub.handler = lambda r: Reply(404, {"detail": "job job-x not found"})
    code, out = run(stub, "get", "job-x")
    assert (code, out) == (cli.EXIT_API, "")
    assert capsys.readouterr().err == "error: 404 job job-x not found\n"
    stub.handler = lambda r: Reply(422, {"detail": [{"loc": ["query", "limit"], "msg": "too big", "type": "x"}]})
    assert run(stub, "list")[0] == cli.EXIT_API
    assert capsys.readouterr().err == "error: 422 query.limit: too big\n"


def test_connection_errors_exit_3(capsys, monkeypatch):
    monkeypatch.setattr("time.sleep", lambda s: None)  # the client's backoff
    out = io.StringIO()
    code = cli.main(["--url", f"http://127.0.0.1:{free_port()}", "--key", KEY, "list"], out=out)
    assert code == cli.EXIT_CONNECTION
    assert capsys.readouterr().err.startswith("error: cannot reach the API at http://127.0.0.1:")


def test_configuration_from_the_environment(stub, monkeypatch):
    monkeypatch.setenv("JOBS_API_URL", stub.url)
    monkeypatch.setenv("JOBS_API_KEY", KEY)
    stub.handler = lambda r: Reply(200, [])
    assert cli.main(["list"], out=io.StringIO()) == 0
    assert stub.requests[0].headers["authorization"] == f"Bearer {KEY}"


# ---- watch --------------------------------------------------------------------------------


def test_watch_redraws_until_ctrl_c_and_exits_0(stub, monkeypatch):
    calls = []

    def fake_sleep(seconds: float) -> None:
        calls.append(seconds)
        if len(calls) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_pause", fake_sleep)
    monkeypatch.setattr("time.sleep", lambda s: None)  # the client's backoff between its retries
    # the first redraw gets a job; the second a 503 (5 attempts: the client's 4 retries); the third a job
    answers = [Reply(200, [job(1)])] + [Reply(503, {"detail": "busy"})] * 5 + [Reply(200, [job(2)])]
    stub.handler = lambda r: answers[len(stub.requests) - 1]
    code, out = run(stub, "watch", "--interval", "0.5", "--limit", "5", "--active")
    assert code == 0 and calls == [0.5, 0.5, 0.5]
    frames = out.split("jobs watch")[1:]
    assert len(frames) == 3
    assert "job-00000001" in frames[0] and "error: 503 busy" in frames[1] and "job-00000002" in frames[2]
    assert stub.requests[0].query == {"active": "true", "limit": "5"}


def test_watch_stops_on_a_request_that_can_never_work(stub, monkeypatch, capsys):
    monkeypatch.setattr(cli, "_pause", lambda s: None)
    stub.handler = lambda r: Reply(401, {"detail": "missing or unknown API key"})
    code, _ = run(stub, "watch")
    assert code == cli.EXIT_API
    assert capsys.readouterr().err == "error: 401 missing or unknown API key\n"
