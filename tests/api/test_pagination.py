"""Paging through job lists with ``limit``, ``after``, ``before`` and ``order`` (contract section 3).

A module fixture makes ten jobs in an organization of its own, so that every list of that
organization is exactly those jobs.
"""
from __future__ import annotations

import pytest

from tests.api.inprocess import InProcessApi
from tests.contract import shift_id, unique

PAGE = 3


@pytest.fixture(scope="module")
def ten(handler, fresh_table) -> dict:
    client = InProcessApi(handler, {"organization_id": unique("org-pages"), "user_id": "user-p"})
    source = unique("pagination")
    ids = [client.create(metadata={"source_id": source, "i": i})["id"] for i in range(10)]
    assert sorted(ids) == ids
    return {"api": client, "source": source, "ids": ids}


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
        cursor = {"after" if order == "asc" else "before": page[-1]}
        if len(page) < PAGE:
            # a short page is the last one: asking again from its end gives nothing
            assert api.list_ids(limit=PAGE, order=order, **scope, **cursor) == []
            return pages
    pytest.fail(f"the walk did not end: {pages}")


@pytest.mark.parametrize("order", ["asc", "desc"])
@pytest.mark.parametrize("scope", ["unfiltered", "by source_id"])
def test_pages_of_three(ten, order, scope):
    pages = walk(ten["api"], order, **({"source_id": ten["source"]} if scope == "by source_id" else {}))
    assert [len(p) for p in pages] == [3, 3, 3, 1]
    flat = [job_id for page in pages for job_id in page]
    assert len(flat) == len(set(flat)), "an id appeared on two pages"
    assert flat == (ten["ids"] if order == "asc" else list(reversed(ten["ids"])))


@pytest.mark.parametrize("order", ["asc", "desc"])
@pytest.mark.parametrize("low, high", [(0, 9), (2, 7), (0, 1), (4, 5), (3, 5), (8, 9), (7, 2), (5, 5)])
def test_before_and_after_give_exactly_the_jobs_strictly_between(ten, order, low, high):
    api, ids = ten["api"], ten["ids"]
    expected = [job_id for job_id in ids if ids[low] < job_id < ids[high]]
    if order == "desc":
        expected.reverse()
    assert api.list_ids(after=ids[low], before=ids[high], order=order) == expected
    assert api.list_ids(after=ids[low], before=ids[high], order=order, source_id=ten["source"]) == expected


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_cursors_need_not_exist(ten, order):
    api, ids = ten["api"], ten["ids"]

    def expect(chosen: list[str]) -> list[str]:
        return chosen if order == "asc" else list(reversed(chosen))

    # just below a real id includes it; just above excludes it
    assert api.list_ids(after=shift_id(ids[3], -1), order=order) == expect(ids[3:])
    assert api.list_ids(after=shift_id(ids[3], +1), order=order) == expect(ids[4:])
    assert api.list_ids(before=shift_id(ids[6], +1), order=order) == expect(ids[:7])
    assert api.list_ids(before=shift_id(ids[6], -1), order=order) == expect(ids[:6])
    assert api.list_ids(after=shift_id(ids[2], 1), before=shift_id(ids[7], -1), order=order) == expect(ids[3:7])
    # the smallest and largest well-formed ids bound nothing away
    smallest, largest = "job-00000000-0000-0000-0000-000000000000", "job-ffffffff-ffff-ffff-ffff-ffffffffffff"
    assert api.list_ids(after=smallest, order=order) == expect(ids)
    assert api.list_ids(before=largest, source_id=ten["source"], order=order) == expect(ids)
    assert api.list_ids(after=largest) == []
    assert api.list_ids(before=smallest, source_id=ten["source"]) == []


def test_cursors_are_independent_of_sort_direction(ten):
    """``after`` is "created later" in both orders; ``before`` "created earlier"."""
    api, ids = ten["api"], ten["ids"]
    assert api.list_ids(after=ids[6], source_id=ten["source"], order="desc") == [ids[9], ids[8], ids[7]]
    assert api.list_ids(before=ids[3], source_id=ten["source"], order="asc") == ids[:3]
    # limit takes the first of the chosen order inside the window
    assert api.list_ids(after=ids[1], before=ids[8], limit=2, order="asc") == ids[2:4]
    assert api.list_ids(after=ids[1], before=ids[8], limit=2, order="desc") == [ids[7], ids[6]]


def test_limit_defaults_to_50_and_accepts_1000(api, tag):
    ids = [api.create(metadata={"source_id": tag})["id"] for _ in range(52)]
    newest_first = list(reversed(ids))
    assert api.list_ids(source_id=tag) == newest_first[:50], "default limit is 50, newest first"
    assert api.list_ids() == newest_first[:50]
    assert api.list_ids(source_id=tag, limit=1000) == newest_first
    assert api.list_ids(limit=1000) == newest_first, "limit=1000 gives all 52"
    assert api.list_ids(source_id=tag, limit=51) == newest_first[:51]
    assert api.list_ids(source_id=tag, limit=1) == newest_first[:1]
    assert api.list_ids(source_id=tag, limit=1000, order="asc") == ids
