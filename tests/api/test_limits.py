"""The README's limits, each at its exact boundary: just inside is accepted whole, just outside
is refused and changes nothing.

* metadata: at most 64 KiB serialised (compact JSON, UTF-8) on create and per update, at most
  100 keys changed per update, nesting at most 16 levels (the metadata object is level 1);
* ``metadata.source_id``: at most 1024 bytes;
* message content: at most 256 KiB serialised;
* the merged metadata is bounded by DynamoDB's 400 KB item: an update that would pass it is 413.
"""
from __future__ import annotations

import json

import pytest

KIB = 1024


def size(value) -> int:
    """Serialised size: compact JSON in UTF-8."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def metadata_of(total: int, char: str = "a") -> dict:
    """``{"x": "<chars>"}`` of exactly ``total`` bytes serialised (``char`` of 1 or 2 bytes)."""
    width = len(char.encode())
    room = total - size({"x": ""})
    value = char * (room // width) + "a" * (room % width)
    out = {"x": value}
    assert size(out) == total
    return out


def deep(levels: int, kind: str, innermost: str) -> dict:
    """Metadata ``levels`` deep, counting every object or list on the way down (the metadata
    object is level 1): the deepest container holds a scalar, or is itself empty."""
    value = ({} if kind == "objects" else []) if innermost == "empty" else 1
    count = 1 if innermost == "empty" else 0
    while count < levels - 1:
        value = {"a": value} if kind == "objects" else [value]
        count += 1
    return {"a": value}


def refused(response, status: int = 422) -> None:
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert response.json()["detail"]


# ---- 64 KiB of metadata --------------------------------------------------------------


@pytest.mark.parametrize("char", ["a", "é"], ids=["ascii", "two-byte characters"])
def test_metadata_of_exactly_64_kib_is_accepted_on_create_and_update(api, char):
    inside = metadata_of(64 * KIB, char)
    job = api.create(metadata=inside)
    assert job["metadata"] == inside
    other = api.create()
    assert api.patch_ok(other["id"], metadata=inside)["metadata"] == inside
    assert api.job(other["id"])["metadata"] == inside


@pytest.mark.parametrize("char", ["a", "é"], ids=["ascii", "two-byte characters"])
def test_metadata_one_byte_over_64_kib_is_422_on_create_and_update(api, char):
    outside = metadata_of(64 * KIB + 1, char)
    marker = api.create(metadata={"keep": 1})
    refused(api.post("/v1/jobs", json={"metadata": outside}))
    refused(api.patch(f"/v1/jobs/{marker['id']}", json={"metadata": outside}))
    assert api.list_ids() == [marker["id"]]
    assert api.job(marker["id"]) == marker


def test_the_64_kib_bound_is_per_update_not_on_the_merged_object(api):
    first, second = metadata_of(60 * KIB), {"y": metadata_of(60 * KIB)["x"]}
    job = api.create(metadata=first)
    merged = api.patch_ok(job["id"], metadata=second)
    assert merged["metadata"] == {**first, **second}
    assert size(merged["metadata"]) > 64 * KIB


# ---- 100 keys changed per update -------------------------------------------------------


def test_an_update_may_change_exactly_100_keys(api):
    job = api.create(metadata={f"k{i}": i for i in range(60)})
    change = {f"k{i}": None for i in range(50)} | {f"n{i}": i for i in range(50)}
    assert len(change) == 100
    updated = api.patch_ok(job["id"], metadata=change)
    assert updated["metadata"] == {f"k{i}": i for i in range(50, 60)} | {f"n{i}": i for i in range(50)}


@pytest.mark.parametrize("removed", [0, 50], ids=["101 set", "51 set and 50 removed"])
def test_an_update_changing_101_keys_is_422(api, removed):
    job = api.create(metadata={f"k{i}": i for i in range(60)})
    change = {f"k{i}": None for i in range(removed)} | {f"n{i}": i for i in range(101 - removed)}
    assert len(change) == 101
    refused(api.patch(f"/v1/jobs/{job['id']}", json={"metadata": change}))
    assert api.job(job["id"]) == job


# ---- 16 levels of nesting --------------------------------------------------------------


NESTING = [(kind, innermost) for kind in ("objects", "lists") for innermost in ("scalar", "empty")]
NESTING_IDS = [f"{kind}, innermost {innermost}" for kind, innermost in NESTING]


@pytest.mark.parametrize("kind, innermost", NESTING, ids=NESTING_IDS)
def test_metadata_16_levels_deep_is_accepted(api, kind, innermost):
    inside = deep(16, kind, innermost)
    job = api.create(metadata=inside)
    assert job["metadata"] == inside
    assert api.patch_ok(job["id"], metadata={"b": inside["a"]})["metadata"] == {"a": inside["a"], "b": inside["a"]}


@pytest.mark.parametrize("kind, innermost", NESTING, ids=NESTING_IDS)
def test_metadata_17_levels_deep_is_422(api, kind, innermost):
    outside = deep(17, kind, innermost)
    marker = api.create(metadata={"keep": 1})
    refused(api.post("/v1/jobs", json={"metadata": outside}))
    refused(api.patch(f"/v1/jobs/{marker['id']}", json={"metadata": {"b": outside["a"]}}))
    assert api.list_ids() == [marker["id"]]
    assert api.job(marker["id"]) == marker


# ---- source_id: 1024 bytes -------------------------------------------------------------


@pytest.mark.parametrize("char", ["s", "é"], ids=["ascii", "two-byte characters"])
def test_a_source_id_of_1024_bytes_is_accepted_and_found(api, char):
    source = char * (1024 // len(char.encode()))
    assert len(source.encode()) == 1024
    job = api.create(metadata={"source_id": source})
    assert api.list_ids(source_id=source) == [job["id"]]
    other = api.create()
    api.patch_ok(other["id"], metadata={"source_id": source})
    assert api.list_ids(source_id=source) == [other["id"], job["id"]]


@pytest.mark.parametrize("char", ["s", "é"], ids=["ascii", "two-byte characters"])
def test_a_source_id_of_1025_bytes_is_422(api, char):
    source = char * (1024 // len(char.encode())) + "s"
    assert len(source.encode()) == 1025
    marker = api.create(metadata={"source_id": "kept"})
    refused(api.post("/v1/jobs", json={"metadata": {"source_id": source}}))
    refused(api.patch(f"/v1/jobs/{marker['id']}", json={"metadata": {"source_id": source}}))
    assert api.list_ids() == [marker["id"]]
    assert api.job(marker["id"]) == marker
    assert api.list_ids(source_id="kept") == [marker["id"]]


# ---- message content: 256 KiB ----------------------------------------------------------


def content_of(total: int, kind: str):
    if kind == "string":
        value = "a" * (total - 2)  # the quotes
    else:
        value = metadata_of(total)
    assert size(value) == total
    return value


@pytest.mark.parametrize("kind", ["string", "object"])
def test_message_content_of_exactly_256_kib_is_accepted(api, kind):
    job = api.create()
    content = content_of(256 * KIB, kind)
    response = api.post(f"/v1/jobs/{job['id']}/messages", json={"role": "tool", "content": content})
    assert response.status_code == 201, response.text[:300]
    assert [m["content"] for m in api.list(f"/v1/jobs/{job['id']}/messages")] == [content]


@pytest.mark.parametrize("kind", ["string", "object"])
def test_message_content_one_byte_over_256_kib_is_422(api, kind):
    job = api.create()
    refused(api.post(f"/v1/jobs/{job['id']}/messages", json={"role": "tool", "content": content_of(256 * KIB + 1, kind)}))
    assert api.list(f"/v1/jobs/{job['id']}/messages") == []


# ---- the 400 KB item -------------------------------------------------------------------

#: "400 KB" is 400,000 bytes in some of DynamoDB's documents and 409,600 in others: just inside
#: is inside either reading, with 2 KiB left for the job's own attributes and names, and just
#: outside is past both by the metadata values alone
INSIDE = 400_000 - 2 * KIB
OUTSIDE = 400 * KIB + 100
CHUNK = 60_000  # per update: under 64 KiB serialised


def grow(api, job_id: str, total: int) -> dict:
    """PATCH metadata strings in chunks until they add up to ``total`` bytes of values."""
    job = None
    i = 0
    while total > 0:
        part = min(CHUNK, total)
        job = api.patch_ok(job_id, metadata={f"k{i}": "v" * part})
        total -= part
        i += 1
    return job


def test_metadata_can_grow_by_updates_to_just_under_the_item_limit(api):
    job = api.create(status="running")
    grown = grow(api, job["id"], INSIDE)
    assert sum(len(v) for v in grown["metadata"].values()) == INSIDE
    assert api.job(job["id"]) == grown
    # still inside: further updates that do not grow it, and the final transition, apply
    assert api.patch_ok(job["id"], stop_reason="x", metadata={"k0": "w" * CHUNK})["metadata"]["k0"] == "w" * CHUNK
    assert api.patch_ok(job["id"], status="completed")["status"] == "completed"


@pytest.mark.parametrize("with_status", [False, True], ids=["metadata only", "with a transition"])
def test_an_update_that_would_pass_the_item_limit_is_413_and_changes_nothing(api, with_status):
    job = api.create(status="running")
    before = grow(api, job["id"], INSIDE)
    extra = {"metadata": {"over": "v" * (OUTSIDE - INSIDE)}}
    if with_status:
        extra["status"] = "completed"
    refused(api.patch(f"/v1/jobs/{job['id']}", json=extra), 413)
    assert api.job(job["id"]) == before
    # and the job still takes an update that fits
    assert api.patch_ok(job["id"], metadata={"k0": None}, status="completed")["status"] == "completed"
