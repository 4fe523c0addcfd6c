"""Operations over HTTP on the local stack, as two organizations: history, stats and bulk cancel
never show or touch another organization's jobs, and a refused request changes nothing."""
from __future__ import annotations

from tests.contract import unique
from tests.waiting import wait_until


def counts(client) -> dict:
    response = client.get("/v1/stats", params={"hours": 1})
    assert response.status_code == 200, response.text
    return response.json()["counts"]


def test_history_stats_and_bulk_cancel_stay_within_the_organization(api, other):
    source = unique("ops-tenancy")
    theirs_before = counts(other)
    mine_before = counts(api)
    job = api.create(status="pending", metadata={"source_id": source})

    # history: another organization's job does not exist
    assert other.get(f"/v1/jobs/{job['id']}/history").status_code == 404
    history = api.get(f"/v1/jobs/{job['id']}/history").json()
    assert [(h["status"], h["from"]) for h in history] == [("pending", None)]

    # stats: my count moves (the projector, within seconds), theirs does not
    wait_until(lambda: counts(api)["pending"], done=lambda n: n >= mine_before["pending"] + 1,
               what="the stats to count the new pending job", poll=0.25)
    # (the sweep may expire their older pending jobs meanwhile: their count can only go down)
    assert counts(other)["pending"] <= theirs_before["pending"]

    # bulk cancel with my job's source_id, as the other organization: nothing of mine
    refused = other.post("/v1/jobs/cancel", json={"source_id": source})
    assert refused.status_code == 200 and refused.json() == {"cancelled": [], "more": False}
    assert api.job(job["id"])["status"] == "pending"
    # an empty filter is refused and cancels nothing
    empty = api.post("/v1/jobs/cancel", json={})
    assert empty.status_code == 422 and empty.json()["detail"]
    assert api.job(job["id"])["status"] == "pending"
    # mine: cancelled by its own transition, which the history shows
    done = api.post("/v1/jobs/cancel", json={"source_id": source})
    assert done.status_code == 200 and done.json() == {"cancelled": [job["id"]], "more": False}
    history = api.get(f"/v1/jobs/{job['id']}/history").json()
    assert [(h["status"], h["from"], h["actor"]) for h in history][-1] == ("cancelled", "pending", "user:user-a")
