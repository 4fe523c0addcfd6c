"""Batch jobs: LLM provider batches tracked to the end (contract section 6).

A batch is a job (``job_type`` ``batch``, created ``running``) with the
provider's id, its request counts and poll state. The scheduler polls running
batches (``poll``); when the provider says the batch ended, the results are
stored per item, then the job makes its terminal transition, both idempotent
so that a poller killed half way is finished by the next run.
"""
from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Callable

from . import errors, providers, states, telemetry
from .auth import Actor
from .config import settings
from .jobs import BATCH, check_metadata, list_jobs, new_job_record, parse_job_id, to_public, update_running_batch
from .pages import Listing, bounded
from .providers import ProviderBatch, ProviderError, ProviderNotConfigured, ProviderRefused
from .providers.base import COUNT_NAMES, ITEM_STATUS
from .storage import batches as store
from .storage import jobs as job_store
from .storage import layout
from .storage.jobs import Write
from .timeutil import iso, now
from .urls import check_callback_url

if TYPE_CHECKING:  # pydantic stays out of the scheduler
    from .schemas import BatchCreate

#: a batch job's expires_at: polling stops (the job fails) if the provider is unreachable that long
BATCH_LIFETIME = timedelta(days=30)
#: results larger than this are stored truncated (a DynamoDB item holds 400 KB)
MAX_RESULT_BYTES = 350_000
#: item status -> the request count it belongs to
COUNT_OF = {status: count for count, status in ITEM_STATUS.items()}
BATCH_FIELDS = ("provider", "provider_batch_id", "request_counts", "last_polled_at", "last_poll_error", "cancel_requested")


def to_batch(job: dict[str, Any], webhook: dict[str, Any] | None = None) -> dict[str, Any]:
    out = to_public(job, webhook)
    for name in BATCH_FIELDS:
        out[name] = job.get(name)
    out["request_counts"] = {k: int(v) for k, v in (out["request_counts"] or {}).items()}
    out["cancel_requested"] = bool(out["cancel_requested"])
    return out


def _get(actor: Actor, job_id: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    job_id = parse_job_id(job_id)
    job, webhook = job_store.get_job(actor.organization_id, job_id)
    if job is None or job.get("job_type") != BATCH:
        raise errors.NotFound(f"batch {job_id} not found")
    return job, webhook


def _adapter(name: str) -> providers.Provider:
    try:
        return providers.get(name)
    except ProviderNotConfigured as exc:
        raise errors.InvalidInput(str(exc)) from None


def create_batch(actor: Actor, body: BatchCreate) -> tuple[dict[str, Any], bool]:
    """Submit (or register) a provider batch; nothing is stored unless the provider accepted it.
    Returns (batch, created): registering a batch the organization already tracks hands
    back the job that tracks it (created False); another organization's is not found."""
    cfg = settings()
    check_metadata(body.metadata)
    if body.callback_url is not None:
        check_callback_url(body.callback_url, cfg.allow_private_callbacks)
    if (body.requests is None) == (body.provider_batch_id is None):
        raise errors.InvalidInput("give either requests (to submit) or provider_batch_id (to track), not both")
    if body.requests is not None:
        if not body.requests:
            raise errors.InvalidInput("requests is empty")
        if len(body.requests) > cfg.batch_max_requests:
            raise errors.InvalidInput(f"at most {cfg.batch_max_requests} requests in one batch")
        seen: set[str] = set()
        for request in body.requests:
            if request.custom_id in seen:
                raise errors.InvalidInput(f"custom_id {request.custom_id!r} is used twice")
            seen.add(request.custom_id)
            if body.provider == "simulated":
                from .providers.simulated import invalid_request

                problem = invalid_request(request.params)
                if problem:
                    raise errors.InvalidInput(f"{problem} (request {request.custom_id})")
    adapter = _adapter(body.provider)
    if body.provider_batch_id is not None:
        owner = store.get_owner(body.provider, body.provider_batch_id)
        if owner is not None:
            tracked = _tracked(actor, owner)
            if tracked is None:
                raise errors.NotFound(f"no {body.provider} batch {body.provider_batch_id}")
            return tracked, False
    try:
        if body.requests is not None:
            remote = adapter.submit([{"custom_id": r.custom_id, "params": r.params} for r in body.requests])
        else:
            remote = adapter.retrieve(body.provider_batch_id)  # type: ignore[arg-type]
    except ProviderRefused as exc:
        if body.provider_batch_id is not None and exc.status == 404:
            raise errors.NotFound(f"no {body.provider} batch {body.provider_batch_id}") from None
        raise errors.ProviderFailed(f"{body.provider}: {exc.message}") from None
    except ProviderError as exc:
        raise errors.ProviderFailed(f"{body.provider}: {exc.message}") from None

    record = new_job_record(
        actor, states.RUNNING, BATCH, body.metadata, BATCH_LIFETIME,
        background=True, callback_url=body.callback_url, provider=body.provider, provider_batch_id=remote.id,
        provider_state=remote.state_data, request_counts=remote.counts, cancel_requested=False,
    )
    record["last_polled_at"] = record["created_at"]
    record["bat_pk"] = layout.batches_pk(actor.organization_id, record["id"], running=True)
    record["poll_pk"], record["polled_at"] = layout.poll_pk(record["id"]), 0
    if store.put_batch_job(record) is None:
        return to_batch(record), True
    owner = store.get_owner(body.provider, remote.id)  # registered meanwhile
    tracked = _tracked(actor, owner) if owner else None
    if tracked is None:
        raise errors.NotFound(f"no {body.provider} batch {remote.id}")
    return tracked, False


def _tracked(actor: Actor, owner: dict[str, Any]) -> dict[str, Any] | None:
    """The caller's job that tracks a provider batch (None: another organization's)."""
    if owner.get("organization_id") != actor.organization_id:
        return None
    job, webhook = job_store.get_job(actor.organization_id, owner["job_id"])
    return to_batch(job, webhook) if job is not None else None


def get_batch(actor: Actor, job_id: str) -> dict[str, Any]:
    return to_batch(*_get(actor, job_id))


def list_batches(actor: Actor, **query: Any) -> Listing:
    return list_jobs(actor, **{**query, "job_type": BATCH}, shape=to_batch)


def _item_to_public(result: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {"custom_id": result["custom_id"], "status": result["status"]}
    if result.get("truncated"):
        entry.update(result=result["result_json"], truncated=True)
    else:
        entry.update(result=json.loads(result["result_json"]), truncated=False)
    return entry


def list_items(actor: Actor, job_id: str, after: str | None = None, limit: int = 100) -> Listing:
    job, _ = _get(actor, job_id)
    records, resume = store.list_results(job["id"], after, limit)
    return bounded(
        records, _item_to_public, lambda r: {"after": r["custom_id"]}, {"after": resume} if resume else None,
    )


def cancel_batch(actor: Actor, job_id: str) -> dict[str, Any]:
    """Ask the provider to cancel; the poller makes the job ``cancelled`` when the batch ends."""
    job, _ = _get(actor, job_id)
    if job["status"] != states.RUNNING:
        raise errors.InvalidTransition(f"batch {job['id']} is {job['status']}", job["status"])
    try:
        _adapter(job["provider"]).cancel(job["provider_batch_id"])
    except ProviderError as exc:
        raise errors.ProviderFailed(f"{job['provider']}: {exc.message}") from None
    outcome = update_running_batch(actor.organization_id, job["id"], Write(sets={"cancel_requested": True}))
    if outcome.job is None:
        raise errors.NotFound(f"batch {job['id']} not found")
    if not outcome.applied:
        raise errors.InvalidTransition(f"batch {job['id']} has ended meanwhile", outcome.job["status"])
    return to_batch(outcome.job)


# ---- polling (the scheduler) ---------------------------------------------------------


def final_counts(remote: ProviderBatch, tally: dict[str, int]) -> dict[str, int]:
    """The counts of an ended batch: what its items say, when there are items.

    (Providers differ in what their own counts include: OpenAI, for one, may
    count expired requests as failed.) Requests that appear in no result are
    counted by how the batch ended.
    """
    if not tally:
        return remote.counts
    counts = {name: tally.get(name, 0) for name in COUNT_NAMES}
    missing = sum(remote.counts.values()) - sum(tally.values())
    if missing > 0:
        leftover = {"expired": "expired", "cancelled": "canceled", "canceled": "canceled"}.get(remote.raw_status, "errored")
        counts[leftover] += missing
    return counts


def terminal_status(job: dict[str, Any], remote: ProviderBatch) -> str:
    if job.get("cancel_requested"):
        return states.CANCELLED
    if remote.state == providers.FAILED:
        return states.FAILED
    counts = remote.counts
    total = sum(counts.values())
    if total and counts.get("expired", 0) == total:
        return states.EXPIRED
    return states.COMPLETED


def _result_record(job_id: str, result: providers.Result) -> dict[str, Any]:
    text = json.dumps(result.result, separators=(",", ":"), ensure_ascii=False)
    truncated = len(text.encode()) > MAX_RESULT_BYTES
    if truncated:
        text = text.encode()[:MAX_RESULT_BYTES].decode(errors="ignore")
    return {
        "pk": layout.children_pk(job_id), "sk": f"ITEM#{result.custom_id}", "custom_id": result.custom_id,
        "status": result.status, "result_json": text, "truncated": truncated,
    }


def _poll_write(moment: str, counts: dict | None = None, error: str | None = None, state: dict | None = None) -> Write:
    """What every poll writes: when it was, its error (or none), the counts and provider state,
    and the polling index's order (the least recently polled is polled first)."""
    write = Write(sets={"last_polled_at": moment, "polled_at": int(now().timestamp() * 1000)})
    if error:
        write.sets["last_poll_error"] = error[:1000]
    else:
        write.removes.append("last_poll_error")
    if counts is not None:
        write.sets["request_counts"] = counts
    if state:
        write.sets["provider_state"] = state
    return write


#: the stop_reason of a batch that ended (failed: the provider's own error)
STOP_REASONS = {states.CANCELLED: "cancelled", states.EXPIRED: "provider_expired", states.COMPLETED: "provider_ended"}
#: results are stored in chunks of at most this many bytes (with 16 polls at once, the
#: poller holds at most 16 chunks: memory is bounded by bytes, whatever the result sizes)
CHUNK_BYTES = 2_000_000
CHUNK_ITEMS = 25


def adapter_for(name: str) -> providers.Provider | ProviderNotConfigured:
    """The adapter for a provider, or why there is none (built once per scheduler run)."""
    try:
        return providers.get(name)
    except ProviderNotConfigured as exc:
        return exc


def poll(
    job: dict[str, Any], adapter: providers.Provider | ProviderNotConfigured | None = None,
    time_left: Callable[[], bool] = lambda: True,
) -> str:
    """Poll one running batch; returns "running", the terminal status it entered, "error",
    or "resuming" (its results are being stored and the time ran out: the next run goes on).

    An ended batch's results are stored in chunks bounded in bytes; after each chunk the
    job records how many are stored and their tally, so a poll that runs out of time, or
    a poller that dies, resumes where it stopped (the provider's results are read again
    from the start and the stored ones skipped). A storage failure is recorded as the
    batch's ``last_poll_error`` and retried on the next run."""
    org, job_id = job["organization_id"], job["id"]
    moment = iso(now())
    adapter = adapter if adapter is not None else adapter_for(job["provider"])
    telemetry.emit("BatchPolls", provider=job["provider"])
    try:
        if isinstance(adapter, ProviderNotConfigured):
            raise adapter
        remote = adapter.retrieve(job["provider_batch_id"])
        if remote.state == providers.PROCESSING:
            update_running_batch(org, job_id, _poll_write(moment, remote.counts, None, remote.state_data))
            return states.RUNNING
        stored = int(job.get("results_stored") or 0)
        tally: dict[str, int] = {k: int(v) for k, v in (job.get("results_tally") or {}).items()}
        chunk: list[dict[str, Any]] = []
        chunk_bytes = 0
        seen = 0
        finished = True
        for result in adapter.results(remote):
            seen += 1
            if seen <= stored:
                continue  # stored by an earlier poll
            record = _result_record(job_id, result)
            chunk.append(record)
            chunk_bytes += len(record["result_json"]) + 200
            tally[COUNT_OF[result.status]] = tally.get(COUNT_OF[result.status], 0) + 1
            if len(chunk) >= CHUNK_ITEMS or chunk_bytes >= CHUNK_BYTES:
                stored = _store_chunk(org, job_id, chunk, stored, tally, moment, remote)
                chunk, chunk_bytes = [], 0
                if not time_left():
                    finished = False
                    break
        if chunk:
            stored = _store_chunk(org, job_id, chunk, stored, tally, moment, remote)
        if not finished:
            return "resuming"
    except (ProviderError, ProviderNotConfigured, errors.Unavailable, _StoreFailed) as exc:
        message = exc.message if isinstance(exc, ProviderError) else str(exc)
        if job.get("expires_at", "") < moment and not isinstance(exc, (_StoreFailed, errors.Unavailable)):
            write = _poll_write(moment, error=message)
            write.sets["stop_reason"] = "provider_unreachable"
            done = update_running_batch(org, job_id, write, target=states.FAILED, stop_reason="provider_unreachable")
            return states.FAILED if done.applied else "error"
        # the last good state (counts) is kept; the next run tries again
        telemetry.emit("BatchPollErrors", provider=job["provider"])
        update_running_batch(org, job_id, _poll_write(moment, error=message))
        return "error"
    remote = replace(remote, counts=final_counts(remote, tally))
    return _finish(job, remote, moment)


class _StoreFailed(Exception):
    pass


def _store_chunk(
    org: str, job_id: str, chunk: list[dict[str, Any]], stored: int, tally: dict[str, int], moment: str,
    remote: ProviderBatch,
) -> int:
    """Store one chunk of results, then record the resume point on the job."""
    try:
        left = store.put_results(chunk)
    except errors.Unavailable as exc:
        raise _StoreFailed(f"storing results: {exc.detail}") from None
    if left:
        raise _StoreFailed(f"storing results: DynamoDB left {left} of {len(chunk)} unprocessed; retrying next run")
    stored += len(chunk)
    write = _poll_write(moment, None, None, remote.state_data)
    write.sets.update(results_stored=stored, results_tally=dict(tally))
    update_running_batch(org, job_id, write)
    return stored


def _finish(job: dict[str, Any], remote: ProviderBatch, moment: str) -> str:
    """The batch's terminal transition. A cancel requested meanwhile (the polled copy of the
    job can be older than it) wins: the write requires that none was, and is redone if one was."""
    target = terminal_status(job, remote)
    stop_reason = ((remote.error or "provider_failed") if target == states.FAILED else STOP_REASONS[target])[:64]
    org = job["organization_id"]
    write = _poll_write(moment, remote.counts, None, remote.state_data)
    write.sets["stop_reason"] = stop_reason
    if target != states.CANCELLED:
        write.conditions.append(("cancel_requested", "<>", True))
    outcome = update_running_batch(org, job["id"], write, target, stop_reason)
    if outcome.applied:
        return target
    current = outcome.job  # as it was when the write was refused
    if current is not None and current.get("status") == states.RUNNING and current.get("cancel_requested"):
        write = _poll_write(moment, remote.counts, None, remote.state_data)
        write.sets["stop_reason"] = "cancelled"
        if update_running_batch(org, job["id"], write, states.CANCELLED, "cancelled").applied:
            return states.CANCELLED
    return states.RUNNING
