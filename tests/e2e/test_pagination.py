"""Paging through job lists with ``limit``, ``after``, ``before`` and ``order`` (contract section 3).

Other tests create jobs in the same organization, so every list here is isolated: either by a
``metadata.source_id`` unique to this module, or by an ``after``/``before`` window made from this
module's own job ids (shifted by one so that the bounds are ids no job has).
"""
from __future__ import annotations

import pytest

from e2e_support import shift_id, unique

PAGE = 3


@pytest.fixture(scope="module")
def ten(api) -> dict:
    source = unique("pagination")
    ids = [api.create(metadata={"source_id": source, "i": i})["id"] for i in range(10)]
    assert sorted(ids) == ids
    return {
        "source": source,
        "ids": ids,
        # bounds no job has, just outside this module's jobs
        "low": shift_id(ids[0], -1),
        "high": shift_id(ids[-1], +1),
    }


def walk(api, order: str, **scope) -> list[list[str]]:
    """Every page of ``limit=3``: asc pages continue with ``after=<last id>``, desc with ``before=``."""
    pages: list[list[str]] = []
    cursor: dict[str, str] = {}
    for _ in range(20):  # a walk that never ends is a failure, not a hang
        page = api.list_ids(limit=PAGE, order=order, **scope, **cursor)
        assert len(page) <= PAGE
        if not page:
            return pages
        pages.append(page)
        if len(page) < PAGE:
            # a short page is the last one: asking again from its end gives nothing
            follow = {"after" if order == "asc" else "before": page[-1]}
            assert api.list_ids(limit=PAGE, order=order, **{**scope, **follow}) == []
            return pages
        cursor = {"after" if order == "asc" else "before": page[-1]}
    pytest.fail(f"the walk did not end: {pages}")


def check_walk(pages: list[list[str]], expected: list[str]) -> None:
    assert [len(p) for p in pages] == [3, 3, 3, 1]
    flat = [job_id for page in pages for job_id in page]
    assert len(flat) == len(set(flat)), "an id appeared on two pages"
    assert flat == expected


def test_pages_of_three_ascending_by_source(api, ten):
    check_walk(walk(api, "asc", source_id=ten["source"]), ten["ids"])


def test_pages_of_three_descending_by_source(api, ten):
    check_walk(walk(api, "desc", source_id=ten["source"]), list(reversed(ten["ids"])))


def test_pages_of_three_ascending_unfiltered(api, ten):
    """asc from a lower bound: ``after`` starts the walk, ``before`` keeps later tests' jobs out."""
    pages = walk_bounded(api, "asc", ten)
    check_walk(pages, ten["ids"])


def test_pages_of_three_descending_unfiltered(api, ten):
    pages = walk_bounded(api, "desc", ten)
    check_walk(pages, list(reversed(ten["ids"])))


def walk_bounded(api, order: str, ten: dict) -> list[list[str]]:
    pages: list[list[str]] = []
    after, before = ten["low"], ten["high"]
    for _ in range(20):
        page = api.list_ids(limit=PAGE, order=order, after=after, before=before)
        if not page:
            return pages
        pages.append(page)
        if order == "asc":
            after = page[-1]
        else:
            before = page[-1]
    pytest.fail(f"the walk did not end: {pages}")


@pytest.mark.parametrize("order", ["asc", "desc"])
@pytest.mark.parametrize(
    "low, high",
    [(0, 9), (2, 7), (0, 1), (4, 5), (3, 5), (8, 9), (7, 2), (5, 5)],
)
def test_before_and_after_give_exactly_the_jobs_strictly_between(api, ten, order, low, high):
    ids = ten["ids"]
    expected = [job_id for job_id in ids if ids[low] < job_id < ids[high]]
    if order == "desc":
        expected.reverse()
    assert api.list_ids(after=ids[low], before=ids[high], order=order) == expected
    assert api.list_ids(after=ids[low], before=ids[high], order=order, source_id=ten["source"]) == expected


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_cursors_need_not_exist(api, ten, order):
    ids = ten["ids"]

    def expect(chosen: list[str]) -> list[str]:
        return chosen if order == "asc" else list(reversed(chosen))

    # just below a real id includes it; just above excludes it
    assert api.list_ids(after=shift_id(ids[3], -1), before=ten["high"], order=order) == expect(ids[3:])
    assert api.list_ids(after=shift_id(ids[3], +1), before=ten["high"], order=order) == expect(ids[4:])
    assert api.list_ids(after=ten["low"], before=shift_id(ids[6], +1), order=order) == expect(ids[:7])
    assert api.list_ids(after=ten["low"], before=shift_id(ids[6], -1), order=order) == expect(ids[:6])
    assert api.list_ids(after=shift_id(ids[2], 1), before=shift_id(ids[7], -1), order=order) == expect(ids[3:7])
    # the smallest and largest well-formed ids bound nothing away
    smallest, largest = "job-00000000-0000-0000-0000-000000000000", "job-ffffffff-ffff-ffff-ffff-ffffffffffff"
    assert api.list_ids(after=smallest, source_id=ten["source"], order=order) == expect(ids)
    assert api.list_ids(before=largest, source_id=ten["source"], order=order) == expect(ids)
    assert api.list_ids(after=largest, source_id=ten["source"]) == []
    assert api.list_ids(before=smallest, source_id=ten["source"]) == []


def test_cursors_are_independent_of_sort_direction(api, ten):
    """``after`` is "created later" in both orders; ``before`` "created earlier"."""
    ids = ten["ids"]
    assert api.list_ids(after=ids[6], source_id=ten["source"], order="desc") == [ids[9], ids[8], ids[7]]
    assert api.list_ids(before=ids[3], source_id=ten["source"], order="asc") == ids[:3]
    # limit takes the first of the chosen order inside the window
    assert api.list_ids(after=ids[1], before=ids[8], limit=2, order="asc") == ids[2:4]
    assert api.list_ids(after=ids[1], before=ids[8], limit=2, order="desc") == [ids[7], ids[6]]


def test_limit_defaults_to_50_and_accepts_1000(api):
    source = unique("limit")
    ids = [api.create(metadata={"source_id": source})["id"] for _ in range(52)]
    newest_first = list(reversed(ids))
    assert api.list_ids(source_id=source) == newest_first[:50], "default limit is 50, newest first"
    assert api.list_ids(after=shift_id(ids[0], -1), before=shift_id(ids[-1], 1)) == newest_first[:50]
    assert api.list_ids(source_id=source, limit=1000) == newest_first
    assert api.list_ids(source_id=source, limit=51) == newest_first[:51]
    assert api.list_ids(source_id=source, limit=1) == newest_first[:1]
    assert api.list_ids(source_id=source, limit=1000, order="asc") == ids
    response = api.get("/v1/jobs", params={"limit": 1000})
    assert response.status_code == 200
    assert len(response.json()) <= 1000
