"""What operations cost, measured from the table's stream with DynamoDB's billing rules
(local/metering.py): write units per step, index writes, the hot-key share, list bounds."""
from __future__ import annotations

import json
from collections import Counter

import boto3
import pytest

from jobsvc import jobs
from jobsvc.auth import Actor
from jobsvc.schemas import JobCreate, JobUpdate
from local.metering import indexes_from_template, meter
from local.template import Template
from tests.helpers import count_dynamodb_requests

A = Actor("org-cost", "user-cost")
INDEXES = indexes_from_template(Template().table_definitions()[0]["create"])


class Stream:
    """The table's stream, read from where it is now: ``new()`` gives what was written since."""

    def __init__(self) -> None:
        self.client = boto3.client("dynamodbstreams", region_name="us-east-1")
        arn = boto3.client("dynamodb", region_name="us-east-1").describe_table(TableName="JobsTable")["Table"]["LatestStreamArn"]
        shards = self.client.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
        self.iterators = [
            self.client.get_shard_iterator(StreamArn=arn, ShardId=s["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
            for s in shards
        ]
        self.new()

    def new(self) -> list[dict]:
        records = []
        for i, iterator in enumerate(self.iterators):
            while True:
                page = self.client.get_records(ShardIterator=iterator, Limit=1000)
                records += page["Records"]
                iterator = page.get("NextShardIterator") or iterator
                if not page["Records"]:
                    break
            self.iterators[i] = iterator
        return records


@pytest.fixture
def stream(table):
    return Stream()


def costs(records: list[dict]) -> list:
    return [meter(r, INDEXES) for r in records]


def test_a_heartbeat_is_one_write_unit_and_no_index_write(stream):
    job, _ = jobs.create_job(A, JobCreate(status="running", heartbeat_timeout_seconds=300, metadata={"note": "x" * 300}))
    stream.new()
    jobs.update_job(A, job["id"], JobUpdate(metadata={"step": 1, "note": "y" * 300}))
    (write,) = costs(stream.new())
    assert write.table_units == 1 and write.index_units == {}


def test_each_step_of_a_lifecycle_writes_only_the_indexes_whose_keys_change(stream):
    metadata = {"payload": "m" * 1000}  # the standard lifecycle's 1 KB of metadata
    job, _ = jobs.create_job(A, JobCreate(callback_url="https://example.com/hook", metadata=metadata,
                                          heartbeat_timeout_seconds=300))
    (create,) = costs(stream.new())
    steps = {"create": create}
    for name, body in [
        ("pending", {"status": "pending"}), ("running", {"status": "running"}),
        ("heartbeat 1", {"metadata": {"step": 1}}), ("heartbeat 2", {"metadata": {"step": 2}}),
        ("completed", {"status": "completed", "ttft_ns": 120_000_000, "total_duration_ns": 900_000_000}),
    ]:
        jobs.update_job(A, job["id"], JobUpdate(**body))
        (steps[name],) = costs(stream.new())
    # an item with 1 KB of metadata is under 2 KB: 2 write units a write, history included
    assert {name: w.table_units for name, w in steps.items()} == {name: 2 for name in steps}
    # the job enters the active and due indexes once, and leaves them once at the end
    assert steps["create"].index_units == {"active": 1, "due": 1}
    for name in ("pending", "running", "heartbeat 1", "heartbeat 2"):
        assert steps[name].index_units == {}, name
    assert steps["completed"].index_units == {"active": 1, "due": 1}
    assert sum(w.units for w in steps.values()) == 16


def test_the_largest_partition_takes_at_most_an_eighth_of_an_organizations_writes(stream):
    """A one-organization mixed run: no partition key of the table or of any index takes
    more than 1/8 of the write units the organization caused (table and indexes together)."""
    made = []
    for i in range(160):
        job, _ = jobs.create_job(A, JobCreate(status="running" if i % 3 == 0 else "created", heartbeat_timeout_seconds=60,
                                              metadata={"source_id": f"s{i % 5}", "n": i}))
        made.append(job)
    for job in made:
        if job["status"] == "running":
            for beat in range(3):
                jobs.update_job(A, job["id"], JobUpdate(metadata={"beat": beat}))
            jobs.update_job(A, job["id"], JobUpdate(status="completed"))
        else:
            jobs.update_job(A, job["id"], JobUpdate(status="pending"))
            jobs.cancel_job(A, job["id"])
    for job in made[:40]:
        jobs.delete_job(A, job["id"])
    writes = costs(stream.new())
    per_key: Counter = Counter()
    for w in writes:
        per_key[("table", w.partition)] += w.table_units
        for index, entries in w.index_writes.items():
            for partition, units in entries:
                per_key[(index, partition)] += units
    total = sum(per_key.values())
    (where, key), largest = per_key.most_common(1)[0]
    assert largest / total <= 1 / 8, (where, key, largest, total)
    # the table's largest partition is one of the organization's 8, and they share evenly
    table = {k: v for (w, k), v in per_key.items() if w == "table" and k.startswith("ORG#org-cost#")}
    assert len(table) == 8 and max(table.values()) <= 1.25 * min(table.values())


def test_a_batch_only_organization_spreads_its_batch_index_writes(stream):
    """An organization that only runs provider batches: each batch enters the batches index
    when created and moves in it when it ends; no key of that index takes more than an
    eighth of the organization's writes, and its shards share evenly."""
    from jobsvc import batches
    from jobsvc.schemas import BatchCreate
    from jobsvc.storage import jobs as store

    made = [batches.create_batch(A, BatchCreate(provider="simulated", requests=[{"custom_id": "a", "params": {}}]))[0]
            for _ in range(40)]
    for batch in made:
        jobs.update_running_batch(A.organization_id, batch["id"], store.Write(sets={"stop_reason": None}), target="completed")
    writes = costs(stream.new())
    per_key: Counter = Counter()
    for w in writes:
        if w.partition.startswith("ORG#org-cost#"):
            per_key[("table", w.partition)] += w.table_units
        for index, entries in w.index_writes.items():
            for partition, units in entries:
                per_key[(index, partition)] += units
    total = sum(per_key.values())
    in_batches = {k: v for (w, k), v in per_key.items() if w == "batches"}
    assert len(in_batches) == 4, in_batches  # two shards, running and ended
    assert max(in_batches.values()) / total <= 1 / 8, (in_batches, total)
    for state in ("RUN", "END"):  # (a RUN key takes the entry's put and its delete at the end)
        shares = [v for k, v in in_batches.items() if k.endswith(state)]
        assert max(shares) <= 1.5 * min(shares), in_batches


def call(api_fn, context, method: str, path: str, query: dict | None = None, body: dict | None = None):
    from tests.helpers import event

    ev = event("api_list_jobs")
    ev["routeKey"] = f"{method} " + ("/v1/jobs/{job_id}/messages" if "/messages" in path else "/v1/jobs")
    ev["rawPath"] = ev["requestContext"]["http"]["path"] = path
    ev["requestContext"]["http"]["method"] = method
    ev["queryStringParameters"] = {k: str(v) for k, v in (query or {}).items()}
    ev["rawQueryString"] = "&".join(f"{k}={v}" for k, v in (query or {}).items())
    ev["requestContext"]["authorizer"]["lambda"] = {"organization_id": A.organization_id, "user_id": A.user_id}
    if "/messages" in path:
        ev["pathParameters"] = {"job_id": path.split("/")[3]}
    ev["body"] = json.dumps(body) if body is not None else None
    response = api_fn.lambda_handler(ev, context)
    return response


def follow(api_fn, context, path: str, query: dict) -> tuple[list[dict], list[int], list[int]]:
    """Every page of a list: (items, requests per page, carried bytes per page)."""
    from urllib.parse import parse_qsl, urlsplit

    items, requests, sizes = [], [], []
    while True:
        with count_dynamodb_requests() as calls:
            response = call(api_fn, context, "GET", path, query)
        assert response["statusCode"] == 200, response["body"]
        requests.append(len(calls))
        sizes.append(len(json.dumps(response)))
        items += json.loads(response["body"])
        link = (response.get("headers") or {}).get("Link")
        if not link:
            return items, requests, sizes
        url = link[1:link.index(">")]
        assert urlsplit(url).path == path and 'rel="next"' in link
        query = dict(parse_qsl(urlsplit(url).query))


def test_a_list_of_large_jobs_pages_under_the_response_bound(table, api_fn, context):
    big = "z" * 60_000
    made = []
    for i in range(16):
        job, _ = jobs.create_job(A, JobCreate(metadata={"source_id": "big"}))
        for k in range(5):  # 300 KB of metadata each: 4.8 MB of jobs in all
            jobs.update_job(A, job["id"], JobUpdate(metadata={f"k{k}": big}))
        made.append(job["id"])
    for query in ({"limit": 1000}, {"limit": 1000, "source_id": "big"}, {"limit": 1000, "active": "true"}):
        items, requests, sizes = follow(api_fn, context, "/v1/jobs", query)
        assert [j["id"] for j in items] == list(reversed(made)), query
        assert len(requests) > 1, "4.8 MB of jobs cannot fit one answer"
        assert max(requests) <= 8 and max(sizes) < 6_000_000, (query, requests, sizes)


def test_a_list_of_large_messages_pages_under_the_response_bound(table, api_fn, context):
    job, _ = jobs.create_job(A, JobCreate())
    sent = []
    for i in range(30):
        response = call(api_fn, context, "POST", f"/v1/jobs/{job['id']}/messages",
                        body={"role": "user", "content": {"i": i, "text": 'q"' * 60_000}})
        assert response["statusCode"] == 201, response["body"]
        sent.append(json.loads(response["body"])["id"])
    items, requests, sizes = follow(api_fn, context, f"/v1/jobs/{job['id']}/messages", {"limit": 1000})
    assert [m["id"] for m in items] == sent
    assert len(requests) > 1 and max(sizes) < 6_000_000 and max(requests) <= 2
