"""The state machine of contract section 2, driven over HTTP, and the other members of an update.

Every (from, to) pair over the seven statuses: a fresh job is brought to ``from`` through allowed
transitions only, then asked for ``to`` (with a metadata change riding along, so that we can see
whether the update as a whole was applied or refused).
"""
from __future__ import annotations

from datetime import datetime

import pytest

from e2e_support import ACTIVE, STATUSES, TERMINAL, TRANSITIONS

PAIRS = [(source, target) for source in STATUSES for target in STATUSES]


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def assert_conflict(response, current: str) -> None:
    assert response.status_code == 409, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"detail", "current_status"}, body
    assert isinstance(body["detail"], str) and body["detail"], body
    assert body["current_status"] == current, body


@pytest.mark.parametrize("source, target", PAIRS, ids=[f"{s}->{t}" for s, t in PAIRS])
def test_transition_table(api, source, target):
    job = api.drive(source, metadata={"probe": source})
    response = api.patch(f"/v1/jobs/{job['id']}", json={"status": target, "metadata": {"asked": target}})
    stored = api.job(job["id"])

    if target in TRANSITIONS[source]:
        assert response.status_code == 200, response.text
        moved = response.json()
        assert moved["status"] == target
        assert moved["metadata"] == {"probe": source, "asked": target}, "the rest of the update applies"
        assert ts(moved["last_updated_at"]) > ts(job["last_updated_at"])
        if target in TERMINAL:
            assert moved["completed_at"] is not None
            assert ts(moved["completed_at"]) >= ts(job["created_at"])
        else:
            assert moved["completed_at"] is None
        assert stored == moved
    elif source == target and source in ACTIVE:
        # not a transition: the rest of the update applies as usual
        assert response.status_code == 200, response.text
        same = response.json()
        assert same["status"] == source
        assert same["metadata"] == {"probe": source, "asked": target}
        assert same["completed_at"] is None
        assert stored == same
    elif source == target:
        # a retried terminal status: 200 and nothing changes, not even last_updated_at
        assert response.status_code == 200, response.text
        assert response.json() == job
        assert stored == job
    else:
        assert_conflict(response, source)
        assert stored == job, "a refused transition changes nothing"


@pytest.mark.parametrize("status", sorted(ACTIVE))
def test_same_status_on_a_non_terminal_job_applies_the_rest(api, status):
    job = api.drive(status, metadata={"keep": 1, "drop": 2})
    body = {"status": status, "metadata": {"drop": None, "new": "yes"}, "stop_reason": "same", "ttft_ns": 7}
    updated = api.patch_ok(job["id"], **body)
    assert updated["status"] == status
    assert updated["metadata"] == {"keep": 1, "new": "yes"}
    assert (updated["stop_reason"], updated["ttft_ns"]) == ("same", 7)
    assert updated["completed_at"] is None
    assert ts(updated["last_updated_at"]) > ts(job["last_updated_at"])
    assert api.job(job["id"]) == updated


@pytest.mark.parametrize("status", sorted(TERMINAL))
def test_same_status_on_a_terminal_job_changes_nothing(api, status):
    job = api.drive(status, metadata={"keep": 1})
    for body in (
        {"status": status},
        {"status": status, "metadata": {"keep": None, "new": "no"}},
        {"status": status, "stop_reason": "retried", "ttft_ns": 1, "total_duration_ns": 2},
        {"status": status, "callback_url": "https://example.com/late"},
    ):
        response = api.patch(f"/v1/jobs/{job['id']}", json=body)
        assert response.status_code == 200, (body, response.text)
        assert response.json() == job, body
    assert api.job(job["id"]) == job


@pytest.mark.parametrize("status", sorted(TERMINAL))
def test_any_other_change_to_a_terminal_job_is_409(api, status):
    job = api.drive(status, metadata={"keep": 1})
    for change in (
        {"metadata": {"late": True}},
        {"metadata": {"keep": None}},
        {"stop_reason": "late"},
        {"stop_reason": None},
        {"ttft_ns": 10},
        {"total_duration_ns": 10},
        {"callback_url": "https://example.com/late"},
    ):
        response = api.patch(f"/v1/jobs/{job['id']}", json=change)
        assert response.status_code == 409, (change, response.status_code, response.text)
        assert_conflict(response, status)
    assert api.job(job["id"]) == job


@pytest.mark.parametrize("status", sorted(TERMINAL))
def test_completed_at_is_set_once_and_never_changes(api, status):
    job = api.create(status="running" if status in ("completed", "failed") else "created")
    assert job["completed_at"] is None
    ended = api.patch_ok(job["id"], status=status)
    first = ended["completed_at"]
    assert first is not None and ts(first) >= ts(job["created_at"])

    assert api.patch_ok(job["id"], status=status)["completed_at"] == first
    for other in STATUSES:
        if other != status:
            assert_conflict(api.patch(f"/v1/jobs/{job['id']}", json={"status": other}), status)
    assert_conflict(api.patch(f"/v1/jobs/{job['id']}/cancel"), status)
    assert_conflict(api.patch(f"/v1/jobs/{job['id']}", json={"metadata": {"x": 1}}), status)
    assert api.job(job["id"]) == ended


def test_completed_at_stays_null_while_not_terminal(api):
    job = api.create()
    assert job["completed_at"] is None
    for status in ("pending", "running"):
        job = api.patch_ok(job["id"], status=status, metadata={"at": status})
        assert job["completed_at"] is None
    assert api.job(job["id"])["completed_at"] is None


def test_a_transition_applies_its_other_members_in_the_same_update(api):
    job = api.create(status="running", metadata={"step": 1})
    done = api.patch_ok(
        job["id"], status="completed", metadata={"step": 2, "result": {"ok": True}},
        stop_reason="end_turn", ttft_ns=0, total_duration_ns=987_654_321_000,
    )
    assert done["status"] == "completed"
    assert done["metadata"] == {"step": 2, "result": {"ok": True}}
    assert (done["stop_reason"], done["ttft_ns"], done["total_duration_ns"]) == ("end_turn", 0, 987_654_321_000)
    assert api.job(job["id"]) == done


# ---- metadata merge --------------------------------------------------------------------


def test_metadata_merges_key_by_key_and_null_removes(api):
    job = api.create(metadata={"a": 1, "b": 2, "c": {"x": 1}, "d": [1, 2]})
    merged = api.patch_ok(job["id"], metadata={"b": 3, "e": "new", "a": None, "missing": None})
    assert merged["metadata"] == {"b": 3, "c": {"x": 1}, "d": [1, 2], "e": "new"}
    assert api.patch_ok(job["id"], stop_reason="no metadata")["metadata"] == merged["metadata"]
    assert api.patch_ok(job["id"], metadata={})["metadata"] == merged["metadata"]
    replaced = api.patch_ok(job["id"], metadata={"c": "scalar now", "d": {"now": "object"}})
    assert replaced["metadata"] == {"b": 3, "c": "scalar now", "d": {"now": "object"}, "e": "new"}
    emptied = api.patch_ok(job["id"], metadata={"b": None, "c": None, "d": None, "e": None})
    assert emptied["metadata"] == {}
    assert api.job(job["id"])["metadata"] == {}


@pytest.mark.parametrize("key", ["a.b", "#hash", ":colon", "with space", "ünïcödé", "$dollar", "a-b", "0", "(x)", "{y}"])
def test_metadata_keys_are_plain_keys(api, key):
    job = api.create(metadata={key: "created", "other": 1})
    assert api.patch_ok(job["id"], metadata={key: "patched"})["metadata"] == {key: "patched", "other": 1}
    assert api.patch_ok(job["id"], metadata={key: None})["metadata"] == {"other": 1}
    assert api.job(job["id"])["metadata"] == {"other": 1}


def test_metadata_key_with_brackets_is_a_plain_key_not_a_list_index(api):
    job = api.create(metadata={"a": [1, 2]})
    response = api.patch(f"/v1/jobs/{job['id']}", json={"metadata": {"a[0]": 9}})
    assert response.status_code == 200, response.text
    assert response.json()["metadata"] == {"a": [1, 2], "a[0]": 9}
    assert api.job(job["id"])["metadata"] == {"a": [1, 2], "a[0]": 9}


def test_metadata_key_with_brackets_can_be_added_by_patch(api):
    job = api.create(metadata={"x[0]": 0})
    response = api.patch(f"/v1/jobs/{job['id']}", json={"metadata": {"x[0]": 1, "y[1]": 2}})
    assert response.status_code == 200, response.text
    assert response.json()["metadata"] == {"x[0]": 1, "y[1]": 2}


@pytest.mark.parametrize("key", ["x]y", "x[", "a[b]", "[0]"])
def test_metadata_key_with_a_stray_bracket_is_a_plain_key(api, key):
    job = api.create(metadata={key: 0})
    response = api.patch(f"/v1/jobs/{job['id']}", json={"metadata": {key: 1}})
    assert response.status_code == 200, (response.status_code, response.text)
    assert response.json()["metadata"] == {key: 1}


# ---- the other members -----------------------------------------------------------------


def test_stop_reason_ttft_and_total_duration_update(api):
    job = api.create(status="running")
    updated = api.patch_ok(job["id"], stop_reason="x" * 64, ttft_ns=0, total_duration_ns=2**53)
    assert (updated["stop_reason"], updated["ttft_ns"], updated["total_duration_ns"]) == ("x" * 64, 0, 2**53)
    again = api.patch_ok(job["id"], ttft_ns=150)
    assert (again["stop_reason"], again["ttft_ns"], again["total_duration_ns"]) == ("x" * 64, 150, 2**53)
    assert api.job(job["id"]) == again


@pytest.mark.parametrize(
    "body",
    [{"ttft_ns": -1}, {"total_duration_ns": -5}, {"ttft_ns": -1, "status": "completed"},
     {"stop_reason": "y" * 65}, {"ttft_ns": 1.5}],
    ids=["negative ttft", "negative total", "negative ttft with a transition", "stop_reason 65", "float ttft"],
)
def test_invalid_member_is_422_and_changes_nothing(api, body):
    job = api.create(status="running", metadata={"a": 1})
    response = api.patch(f"/v1/jobs/{job['id']}", json={**body, "metadata": {"a": 2}})
    assert response.status_code == 422, response.text
    assert response.json()["detail"]
    assert api.job(job["id"]) == job


# ---- cancel ----------------------------------------------------------------------------


@pytest.mark.parametrize("status", sorted(TERMINAL))
def test_cancel_of_a_terminal_job_is_409(api, status):
    job = api.drive(status)
    if status != "cancelled":
        # a stop_reason that a wrongly applied cancel would overwrite
        job = api.create(status="running" if status in ("completed", "failed") else "created")
        job = api.patch_ok(job["id"], stop_reason="own reason")
        job = api.patch_ok(job["id"], status=status)
    assert_conflict(api.patch(f"/v1/jobs/{job['id']}/cancel"), status)
    assert api.job(job["id"]) == job
