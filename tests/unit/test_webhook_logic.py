import json
from dataclasses import replace

import pytest

from jobsvc import webhooks
from local.pumps import matches, passes_filters
from local.template import Template


def image(status, callback=True, sk_prefix="JOB#"):
    item = {
        "pk": {"S": "ORG#o"}, "sk": {"S": f"{sk_prefix}job-01a222d6-3e20-7709-8ca5-2a2f43631f8a"},
        "id": {"S": "job-01a222d6-3e20-7709-8ca5-2a2f43631f8a"}, "organization_id": {"S": "o"}, "user_id": {"S": "u"},
        "status": {"S": status}, "job_type": {"S": "job"}, "created_at": {"S": "t0"}, "last_updated_at": {"S": "t1"},
        "metadata": {"M": {"k": {"N": "1"}}}, "background": {"BOOL": False}, "expires_at": {"S": "t9"},
    }
    if status in ("completed", "failed", "cancelled", "expired"):
        item["completed_at"] = {"S": "2026-11-28T15:04:05.000000Z"}
    if callback:
        item["callback_url"] = {"S": "https://example.com/hook"}
    return item


def record(old, new, name="MODIFY"):
    dynamodb = {"Keys": {"pk": new["pk"], "sk": new["sk"]}, "NewImage": new, "SequenceNumber": "1"}
    if old is not None:
        dynamodb["OldImage"] = old
    return {"eventName": name, "dynamodb": dynamodb}


def stream_filters(function="CallbacksFunction"):
    for name, kind, props in Template().event_sources():
        if kind == "DynamoDB" and name == function:
            return props["FilterCriteria"]["Filters"]
    raise AssertionError(f"no stream trigger of {function} in the template")


ACTIVE = ["created", "pending", "running"]
TERMINAL = ["completed", "failed", "cancelled", "expired"]


@pytest.mark.parametrize("old", ACTIVE)
@pytest.mark.parametrize("new", TERMINAL)
def test_terminal_transitions_pass_the_template_filter_and_make_a_task(old, new):
    rec = record(image(old), image(new))
    assert passes_filters(stream_filters(), rec)
    task = webhooks.task_from_stream(rec["dynamodb"]["OldImage"], rec["dynamodb"]["NewImage"])
    assert task.payload == {
        "type": f"job.{new}", "timestamp": "2026-11-28T15:04:05.000000Z", "job_id": "job-01a222d6-3e20-7709-8ca5-2a2f43631f8a",
        "status": new, "completed_at": "2026-11-28T15:04:05.000000Z", "metadata": {"k": 1}, "stop_reason": None, "job_type": "job",
    }
    assert task.webhook_id == f"msg_01a222d63e2077098ca52a2f43631f8a_{new}" and task.seen == 0


@pytest.mark.parametrize("rec", [
    record(image("created"), image("pending")),  # not terminal
    record(image("running"), image("running")),  # heartbeat
    record(image("completed"), image("completed")),  # a terminal job's callback_* members being recorded
    record(image("running", callback=False), image("completed", callback=False)),  # no callback_url
    record(None, image("running"), name="INSERT"),
    record(image("running", sk_prefix="IDEM#"), image("completed", sk_prefix="IDEM#")),
])
def test_other_records_are_filtered_out_and_make_no_task(rec):
    assert not passes_filters(stream_filters(), rec)
    assert webhooks.task_from_stream(rec["dynamodb"].get("OldImage"), rec["dynamodb"]["NewImage"]) is None


def test_filter_operators():
    assert matches({"a": [{"exists": False}]}, {}) and not matches({"a": [{"exists": False}]}, {"a": 1})
    # rules apply to leaves: an absent object has no leaves (only exists: false matches below it),
    # and exists on an object finds no leaf there (AWS: "exists matching only works on leaf nodes")
    assert matches({"a": {"S": [{"exists": False}]}}, {}) and not matches({"a": {"S": [{"exists": False}]}}, {"a": {"S": "x"}})
    assert not matches({"a": {"S": ["x"]}}, {}) and matches({"a": {"S": ["x"]}}, {"a": {"S": "x"}})
    assert matches({"a": [{"exists": False}]}, {"a": {"S": "x"}}) and not matches({"a": [{"exists": True}]}, {"a": {"S": "x"}})
    assert matches({"a": [{"anything-but": ["x"]}]}, {"a": "y"}) and not matches({"a": [{"anything-but": ["x"]}]}, {"a": "x"})
    assert matches({"n": [{"numeric": [">", 1, "<=", 3]}]}, {"n": 3}) and not matches({"n": [{"numeric": [">", 1]}]}, {"n": 1})


@pytest.mark.parametrize("attempt,low,high", [(1, 0.75, 1.25), (2, 1.5, 2.5), (3, 3, 5), (4, 6, 10), (5, 12, 20), (6, 22.5, 30), (9, 22.5, 30)])
def test_backoff_doubles_from_one_second_with_jitter_in_milliseconds_and_cap(attempt, low, high):
    values = [webhooks.backoff_seconds(attempt, rand=lambda r=r: r) for r in (0.0, 0.25, 0.5, 0.75, 0.999)]
    assert min(values) >= low and max(values) <= high
    assert values == sorted(values) and len(set(values)) == (5 if attempt < 6 else len(set(values)))
    assert webhooks.backoff_seconds(attempt, rand=lambda: 0.5) == min(30, 2 ** (attempt - 1))
    # retries 1 and 2 are no longer always exactly 1 s and 2 s
    assert webhooks.backoff_seconds(1, rand=lambda: 0.1234) == 0.812


def test_retry_after_is_honoured_up_to_the_cap():
    assert webhooks.backoff_seconds(1, rand=lambda: 0.5, retry_after=7) == 7
    assert webhooks.backoff_seconds(1, rand=lambda: 0.5, retry_after=3600) == 30
    assert webhooks.backoff_seconds(4, rand=lambda: 0.5, retry_after=1) == 8  # never sooner than the backoff


def test_task_message_round_trip():
    task = webhooks.task_for({
        "id": "job-01a222d6-3e20-7709-8ca5-2a2f43631f8a", "organization_id": "o", "status": "failed",
        "completed_at": "t", "metadata": {}, "stop_reason": "x", "job_type": "run", "callback_url": "https://e.com/h",
    })
    # a queued task carries no event (SQS holds 256 KB; the event is rebuilt from the job)
    assert webhooks.Task.from_message(json.dumps(task.next(seen=3).message())) == replace(task.next(seen=3), payload=None)
    # a dead letter (with more members) can be redriven as it is
    dead = {**task.message(), "attempts": 6, "last_error": "HTTP 500", "last_status_code": 500}
    assert webhooks.Task.from_message(json.dumps(dead)).job_id == task.job_id
    with pytest.raises((ValueError, TypeError)):
        webhooks.Task.from_message('["not", "a", "task"]')


def webhook_item(deliveries):
    return {"pk": {"S": "ORG#o#3"}, "sk": {"S": "JOB#job-01a222d6-3e20-7709-8ca5-2a2f43631f8a#WH"}, "job_type": {"S": "job"},
            **{f"d_{name}": {"M": {"st": {"S": st}}} for name, st in deliveries.items()}}


def test_the_projector_is_invoked_for_what_it_counts_and_cleans_and_not_for_heartbeats():
    """Every status change the state machine allows, creations, deletes and webhook items
    reach the projector (they change its counters or leave something to clean up); a
    heartbeat, a metadata update or another family's item invokes nothing."""
    from jobsvc import stats
    from jobsvc.states import BATCH_TRANSITIONS

    def job(status, sk_prefix="JOB#"):
        return {**image(status, sk_prefix=sk_prefix), "pk": {"S": "ORG#o#3"},  # a job partition
                "created_at": {"S": "2026-11-28T15:00:00.000000Z"}}

    filters = stream_filters("ProjectorFunction")
    counted = [record(job(old), job(new)) for old, targets in BATCH_TRANSITIONS.items() for new in targets]
    counted += [record(None, job("created"), name="INSERT"), record(job("running"), job("running"), name="REMOVE"),
                record(webhook_item({"a": "sending"}), webhook_item({"a": "succeeded"}))]
    for rec in counted:
        assert passes_filters(filters, rec), rec
    for old, targets in BATCH_TRANSITIONS.items():  # and each of those changes a counter
        for new in targets:
            data = record(job(old), job(new))["dynamodb"]
            assert stats.record_deltas("MODIFY", data["Keys"], data["OldImage"], data["NewImage"]), (old, new)
    heartbeat = record(job("running"), {**job("running"), "metadata": {"M": {"k": {"N": "2"}}}})
    ignored = [heartbeat, record(job("created"), job("created")), record(job("completed"), job("completed")),
               record(job("running", sk_prefix="IDEM#"), job("completed", sk_prefix="IDEM#"))]
    for rec in ignored:
        assert not passes_filters(filters, rec), rec
        data = rec["dynamodb"]
        assert not stats.record_deltas("MODIFY", data["Keys"], data["OldImage"], data["NewImage"])
