"""List filters: ``status``, ``active``, ``job_type``, ``source_id`` and their combinations (section 3).

A module fixture makes, in an organization of its own, one job in every status with alternating
job types, all with one ``metadata.source_id``: every list of that organization is exactly
predictable.
"""
from __future__ import annotations

import pytest

from tests.api.inprocess import InProcessApi
from tests.contract import ACTIVE, STATUSES, TERMINAL, unique

TYPES = {"created": "job", "pending": "run", "running": "job", "completed": "run",
         "failed": "job", "cancelled": "run", "expired": "job"}


@pytest.fixture(scope="module")
def zoo(handler, fresh_table) -> dict:
    client = InProcessApi(handler, {"organization_id": unique("org-filters"), "user_id": "user-z"})
    source = unique("filters")
    by_status = {status: client.drive(status, job_type=TYPES[status], metadata={"source_id": source})
                 for status in STATUSES}
    return {"api": client, "source": source, "jobs": by_status}


def expected(zoo: dict, keep) -> list[str]:
    """The fixture's ids that ``keep(job)`` selects, newest first (the default order)."""
    return sorted((job["id"] for job in zoo["jobs"].values() if keep(job)), reverse=True)


@pytest.mark.parametrize("status", STATUSES)
def test_status(zoo, status):
    api = zoo["api"]
    want = [zoo["jobs"][status]["id"]]
    assert api.list_ids(status=status, source_id=zoo["source"]) == want
    assert api.list_ids(status=status) == want
    assert api.list(status=status) == [api.job(want[0])], "a filtered list holds the full current job"


@pytest.mark.parametrize("active, statuses", [("true", ACTIVE), ("false", TERMINAL)])
def test_active(zoo, active, statuses):
    """``active=true``: only created, pending, running; ``active=false``: only terminal jobs."""
    api = zoo["api"]
    want = expected(zoo, lambda job: job["status"] in statuses)
    assert len(want) == len(statuses)
    assert api.list_ids(active=active) == want
    assert api.list_ids(active=active, source_id=zoo["source"]) == want
    assert api.list_ids(active=active, order="asc") == list(reversed(want))
    for status in STATUSES:
        only = [zoo["jobs"][status]["id"]] if status in statuses else []
        assert api.list_ids(active=active, status=status) == only, status


@pytest.mark.parametrize("job_type", ["job", "run"])
def test_job_type(zoo, job_type):
    api = zoo["api"]
    want = expected(zoo, lambda job: job["job_type"] == job_type)
    assert api.list_ids(job_type=job_type) == want
    assert api.list_ids(job_type=job_type, source_id=zoo["source"]) == want


def test_without_job_type_every_type_is_listed(zoo):
    api = zoo["api"]
    everything = expected(zoo, lambda job: True)
    assert len(everything) == 7
    assert api.list_ids() == everything
    assert {job["job_type"] for job in api.list()} == {"job", "run"}
    assert api.list_ids(job_type="batch") == []


def test_source_id_equals_metadata_source_id(zoo):
    api = zoo["api"]
    assert api.list_ids(source_id=zoo["source"]) == expected(zoo, lambda job: True)
    assert api.list_ids(source_id=zoo["source"] + "-other") == []
    assert api.list_ids(source_id=zoo["source"][:-1]) == [], "equality, not a prefix match"
    assert api.list_ids(source_id=zoo["source"].upper()) == [], "case matters"


COMBINATIONS = [
    ({"status": "running", "job_type": "job"}, lambda j: j["status"] == "running"),
    ({"status": "running", "job_type": "run"}, lambda j: False),
    ({"status": "completed", "job_type": "run"}, lambda j: j["status"] == "completed"),
    ({"active": "true", "job_type": "run"}, lambda j: j["status"] == "pending"),
    ({"active": "true", "job_type": "job"}, lambda j: j["status"] in ("created", "running")),
    ({"active": "false", "job_type": "job"}, lambda j: j["status"] in ("failed", "expired")),
    ({"active": "true", "status": "failed"}, lambda j: False),
    ({"active": "true", "status": "pending"}, lambda j: j["status"] == "pending"),
]


@pytest.mark.parametrize("filters, keep", COMBINATIONS,
                         ids=["&".join(f"{k}={x}" for k, x in f.items()) for f, _ in COMBINATIONS])
def test_combinations(zoo, filters, keep):
    api = zoo["api"]
    want = expected(zoo, keep)
    assert api.list_ids(**filters) == want
    assert api.list_ids(**filters, source_id=zoo["source"]) == want
    assert api.list_ids(**filters, source_id=zoo["source"], order="asc") == list(reversed(want))


def test_combinations_with_source_id_and_limit(zoo):
    api = zoo["api"]
    want = expected(zoo, lambda j: j["status"] in ACTIVE)
    assert api.list_ids(active="true", source_id=zoo["source"], limit=2) == want[:2]
    assert api.list_ids(active="true", source_id=zoo["source"], limit=2, order="asc") == list(reversed(want))[:2]
    assert api.list_ids(job_type="job", active="true", source_id=zoo["source"]) == expected(
        zoo, lambda j: j["status"] in ("created", "running"))


def test_source_id_follows_a_patch_that_changes_or_removes_it(api, tag):
    first, second = tag + "-1", tag + "-2"
    job = api.create(metadata={"source_id": first, "other": 1})
    assert api.list_ids(source_id=first) == [job["id"]]

    api.patch_ok(job["id"], metadata={"other": 2})
    assert api.list_ids(source_id=first) == [job["id"]], "changing another key keeps the source id"

    api.patch_ok(job["id"], metadata={"source_id": second})
    assert api.list_ids(source_id=first) == []
    assert api.list_ids(source_id=second) == [job["id"]]
    assert api.list(source_id=second)[0]["metadata"] == {"source_id": second, "other": 2}

    api.patch_ok(job["id"], metadata={"source_id": None})
    assert api.list_ids(source_id=first) == []
    assert api.list_ids(source_id=second) == []
    assert api.job(job["id"])["metadata"] == {"other": 2}

    api.patch_ok(job["id"], metadata={"source_id": first})
    assert api.list_ids(source_id=first) == [job["id"]], "a source id added by PATCH is found"


def test_source_id_set_by_patch_on_a_job_created_without_one(api, tag):
    job = api.create()
    api.patch_ok(job["id"], status="pending", metadata={"source_id": tag})
    assert api.list_ids(source_id=tag) == [job["id"]]
    assert api.list_ids(source_id=tag, status="pending") == [job["id"]]


def test_filters_follow_transitions(api, tag):
    job = api.create(job_type="run", metadata={"source_id": tag})

    def listed(**filters) -> bool:
        found = job["id"] in api.list_ids(**filters)
        assert found == (job["id"] in api.list_ids(**filters, source_id=tag)), filters
        return found

    assert listed(status="created") and listed(active="true") and listed(job_type="run")
    assert not listed(active="false")
    api.patch_ok(job["id"], status="pending")
    assert not listed(status="created") and listed(status="pending") and listed(active="true")
    api.patch_ok(job["id"], status="running")
    assert not listed(status="pending") and listed(status="running") and listed(active="true")
    api.patch_ok(job["id"], status="failed")
    assert not listed(status="running") and listed(status="failed")
    assert not listed(active="true"), "a terminal job leaves the active list"
    assert listed(active="false"), "and enters the inactive one"
    assert listed(job_type="run") and listed(status="failed", job_type="run")


def test_cancel_and_delete_update_the_lists(api, tag):
    job = api.create(status="pending", metadata={"source_id": tag})
    assert api.list_ids(active="true", source_id=tag) == [job["id"]]
    api.patch(f"/v1/jobs/{job['id']}/cancel")
    assert api.list_ids(active="true", source_id=tag) == []
    assert api.list_ids(active="false", source_id=tag) == [job["id"]]
    assert api.list_ids(status="cancelled", source_id=tag) == [job["id"]]
    assert api.delete(f"/v1/jobs/{job['id']}").status_code == 200
    for filters in ({}, {"status": "cancelled"}, {"job_type": "job"}, {"active": "false"}):
        assert api.list_ids(**filters, source_id=tag) == []
        assert api.list_ids(**filters) == []
