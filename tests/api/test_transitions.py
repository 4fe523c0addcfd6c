"""The state machine of contract section 2 through the API function, and the other members of an
update.

Every (from, to) pair over the seven statuses: a fresh job is brought to ``from`` through allowed
transitions only, then asked for ``to`` (with a metadata change riding along, so that we can see
whether the update as a whole was applied or refused).
"""
from __future__ import annotations

from datetime import datetime

import pytest

from tests.contract import ACTIVE, PAIRS, STATUSES, TERMINAL, TRANSITIONS


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
    # a stop_reason of its own, which a wrongly applied cancel would overwrite
    job = api.create(status="running" if status in ("completed", "failed") else "created", metadata={"keep": 1})
    api.patch_ok(job["id"], stop_reason="own reason")
    job = api.patch_ok(job["id"], status=status)
    for change in (
        {"metadata": {"late": True}},
        {"metadata": {"keep": None}},
        {"stop_reason": "late"},
        {"stop_reason": None},
        {"ttft_ns": 10},
        {"total_duration_ns": 10},
        {"callback_url": "https://example.com/late"},
        {},
    ):
        assert_conflict(api.patch(f"/v1/jobs/{job['id']}", json=change), status)
    assert_conflict(api.patch(f"/v1/jobs/{job['id']}/cancel"), status)
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


def test_every_successful_patch_moves_last_updated_at(api):
    """(A heartbeat: the sweep's deadline counts from it; the sweep itself is tested end to end.)"""
    job = api.create(status="running", heartbeat_timeout_seconds=10)
    seen = [job["last_updated_at"]]
    for body in ({"metadata": {"beat": 1}}, {"stop_reason": "x"}, {"status": "running"}, {"metadata": {}}):
        seen.append(api.patch_ok(job["id"], **body)["last_updated_at"])
    assert seen == sorted(seen) and len(set(seen)) == len(seen), seen


# ---- cancel ----------------------------------------------------------------------------


@pytest.mark.parametrize("status", sorted(ACTIVE))
def test_cancel_a_non_terminal_job(api, status):
    job = api.create(status=status, metadata={"m": 1})
    job = api.patch_ok(job["id"], stop_reason="own reason")
    response = api.patch(f"/v1/jobs/{job['id']}/cancel")
    assert response.status_code == 200, response.text
    cancelled = response.json()
    assert cancelled["status"] == "cancelled"
    assert cancelled["stop_reason"] == "cancelled"
    assert cancelled["completed_at"] is not None
    assert ts(cancelled["completed_at"]) >= ts(job["created_at"])
    assert cancelled["metadata"] == job["metadata"]
    assert api.job(job["id"]) == cancelled


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


def test_a_nested_object_is_replaced_whole_not_merged(api):
    job = api.create(metadata={"c": {"x": 1, "y": 2}})
    assert api.patch_ok(job["id"], metadata={"c": {"z": 3}})["metadata"] == {"c": {"z": 3}}


PLAIN_KEYS = ["a.b", "#hash", ":colon", "with space", "ünïcödé", "$dollar", "a-b", "0", "(x)", "{y}",
              "a[0]", "x]y", "x[", "a[b]", "[0]", "a.b[1].c"]


@pytest.mark.parametrize("key", PLAIN_KEYS)
def test_metadata_keys_are_plain_keys(api, key):
    """``a.b`` and ``a[0]`` are names, not paths: set, patched and removed as one key."""
    job = api.create(metadata={key: "created", "other": 1, "a": [1, 2]})
    assert api.patch_ok(job["id"], metadata={key: "patched"})["metadata"] == {key: "patched", "other": 1, "a": [1, 2]}
    assert api.patch_ok(job["id"], metadata={key: None})["metadata"] == {"other": 1, "a": [1, 2]}
    added = api.patch_ok(job["id"], metadata={key: 9})
    assert added["metadata"] == {"other": 1, "a": [1, 2], key: 9}
    assert api.job(job["id"]) == added


# ---- the other members -----------------------------------------------------------------


def test_stop_reason_ttft_and_total_duration_update(api):
    job = api.create(status="running")
    updated = api.patch_ok(job["id"], stop_reason="x" * 64, ttft_ns=0, total_duration_ns=2**53)
    assert (updated["stop_reason"], updated["ttft_ns"], updated["total_duration_ns"]) == ("x" * 64, 0, 2**53)
    again = api.patch_ok(job["id"], ttft_ns=150)
    assert (again["stop_reason"], again["ttft_ns"], again["total_duration_ns"]) == ("x" * 64, 150, 2**53)
    assert api.job(job["id"]) == again
