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
from typing import TYPE_CHECKING, Any

from . import errors, providers, states, storage
from .auth import Actor
from .config import settings
from .jobs import BATCH, check_metadata, list_jobs, new_job_item, parse_job_id, to_public, update_running_batch
from .providers import ProviderBatch, ProviderError, ProviderNotConfigured
from .providers.base import COUNT_NAMES, ITEM_STATUS
from .storage import JobItem
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


def to_batch(item: JobItem) -> dict[str, Any]:
    out = to_public(item)
    data = item.attribute_values
    for name in BATCH_FIELDS:
        value = data.get(name)
        out[name] = value.as_dict() if hasattr(value, "as_dict") else value
    out["request_counts"] = {k: int(v) for k, v in (out["request_counts"] or {}).items()}
    out["cancel_requested"] = bool(out["cancel_requested"])
    return out


def _get(actor: Actor, job_id: str) -> JobItem:
    job_id = parse_job_id(job_id)
    item = storage.get_job(actor.organization_id, job_id)
    if item is None or item.job_type != BATCH:
        raise errors.NotFound(f"batch {job_id} not found")
    return item


def _adapter(name: str) -> providers.Provider:
    try:
        return providers.get(name)
    except ProviderNotConfigured as exc:
        raise errors.InvalidInput(str(exc)) from None


def create_batch(actor: Actor, body: BatchCreate) -> dict[str, Any]:
    """Submit (or register) a provider batch; nothing is stored unless the provider accepted it."""
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
    adapter = _adapter(body.provider)
    try:
        if body.requests is not None:
            remote = adapter.submit([{"custom_id": r.custom_id, "params": r.params} for r in body.requests])
        else:
            remote = adapter.retrieve(body.provider_batch_id)  # type: ignore[arg-type]
    except ProviderError as exc:
        raise errors.ProviderFailed(f"{body.provider}: {exc.message}") from None

    item = new_job_item(
        actor, states.RUNNING, BATCH, body.metadata, BATCH_LIFETIME,
        background=True, callback_url=body.callback_url, provider=body.provider, provider_batch_id=remote.id,
        provider_state=remote.state_data, request_counts=remote.counts, cancel_requested=False,
    )
    item.last_polled_at = item.created_at
    item.poll_pk = storage.poll_pk(item.id)
    if not storage.put_batch_job(item):
        raise errors.NotFound(f"no {body.provider} batch {remote.id}")
    return to_batch(item)


def get_batch(actor: Actor, job_id: str) -> dict[str, Any]:
    return to_batch(_get(actor, job_id))


def list_batches(actor: Actor, **query: Any) -> list[dict[str, Any]]:
    return list_jobs(actor, **{**query, "job_type": BATCH}, shape=to_batch)


def list_items(actor: Actor, job_id: str, after: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    item = _get(actor, job_id)
    out = []
    for result in storage.list_batch_results(item.id, after, limit):
        entry: dict[str, Any] = {"custom_id": result.custom_id, "status": result.status}
        if result.truncated:
            entry.update(result=result.result_json, truncated=True)
        else:
            entry.update(result=json.loads(result.result_json), truncated=False)
        out.append(entry)
    return out


def cancel_batch(actor: Actor, job_id: str) -> dict[str, Any]:
    """Ask the provider to cancel; the poller makes the job ``cancelled`` when the batch ends."""
    item = _get(actor, job_id)
    if item.status != states.RUNNING:
        raise errors.InvalidTransition(f"batch {item.id} is {item.status}", item.status)
    try:
        _adapter(item.provider).cancel(item.provider_batch_id)  # type: ignore[arg-type]
    except ProviderError as exc:
        raise errors.ProviderFailed(f"{item.provider}: {exc.message}") from None
    outcome = update_running_batch(actor.organization_id, item.id, [JobItem.cancel_requested.set(True)])
    if outcome.job is None:
        raise errors.NotFound(f"batch {item.id} not found")
    if not outcome.applied:
        raise errors.InvalidTransition(f"batch {item.id} has ended meanwhile", outcome.job.status)
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


def terminal_status(item: JobItem, remote: ProviderBatch) -> str:
    if item.cancel_requested:
        return states.CANCELLED
    if remote.state == providers.FAILED:
        return states.FAILED
    counts = remote.counts
    total = sum(counts.values())
    if total and counts.get("expired", 0) == total:
        return states.EXPIRED
    return states.COMPLETED


def _result_item(job_id: str, result: providers.Result) -> storage.BatchResultItem:
    text = json.dumps(result.result, separators=(",", ":"), ensure_ascii=False)
    truncated = len(text.encode()) > MAX_RESULT_BYTES
    if truncated:
        text = text.encode()[:MAX_RESULT_BYTES].decode(errors="ignore")
    return storage.BatchResultItem(
        storage.job_children_pk(job_id), f"ITEM#{result.custom_id}",
        custom_id=result.custom_id, status=result.status, result_json=text, truncated=truncated,
    )


def _poll_actions(moment: str, counts: dict | None = None, error: str | None = None, state: dict | None = None) -> list:
    actions = [
        JobItem.last_polled_at.set(moment),
        JobItem.last_poll_error.set(error) if error else JobItem.last_poll_error.remove(),
    ]
    if counts is not None:
        actions.append(JobItem.request_counts.set(storage.to_attribute_value(counts)))
    if state:
        actions.append(JobItem.provider_state.set(storage.to_attribute_value(state)))
    return actions


#: the stop_reason of a batch that ended (failed: the provider's own error)
STOP_REASONS = {states.CANCELLED: "cancelled", states.EXPIRED: "provider_expired", states.COMPLETED: "provider_ended"}


def adapter_for(name: str) -> providers.Provider | ProviderNotConfigured:
    """The adapter for a provider, or why there is none (built once per scheduler run)."""
    try:
        return providers.get(name)
    except ProviderNotConfigured as exc:
        return exc


def poll(item: JobItem, adapter: providers.Provider | ProviderNotConfigured | None = None, chunk: int = 100) -> str:
    """Poll one running batch; returns "running", the terminal status it entered, or "error"."""
    org = item.organization_id
    moment = iso(now())
    adapter = adapter if adapter is not None else adapter_for(item.provider)  # type: ignore[arg-type]
    try:
        if isinstance(adapter, ProviderNotConfigured):
            raise adapter
        remote = adapter.retrieve(item.provider_batch_id)  # type: ignore[arg-type]
        if remote.state == providers.PROCESSING:
            update_running_batch(org, item.id, _poll_actions(moment, remote.counts, None, remote.state_data))
            return states.RUNNING
        pending: list[storage.BatchResultItem] = []
        tally: dict[str, int] = {}
        for result in adapter.results(remote):
            tally[COUNT_OF[result.status]] = tally.get(COUNT_OF[result.status], 0) + 1
            pending.append(_result_item(item.id, result))
            if len(pending) >= chunk:
                storage.put_batch_results(pending)
                pending = []
        if pending:
            storage.put_batch_results(pending)
    except (ProviderError, ProviderNotConfigured) as exc:
        message = exc.message if isinstance(exc, ProviderError) else str(exc)
        if item.expires_at < moment:  # a month of failed polls: give up
            actions = _poll_actions(moment, error=message[:1000]) + [JobItem.stop_reason.set("provider_unreachable")]
            return states.FAILED if update_running_batch(org, item.id, actions, target=states.FAILED).applied else "error"
        # the last good state (counts) is kept; the next run tries again
        update_running_batch(org, item.id, _poll_actions(moment, error=message[:1000]))
        return "error"
    remote = replace(remote, counts=final_counts(remote, tally))
    return _finish(item, remote, moment)


def _finish(item: JobItem, remote: ProviderBatch, moment: str) -> str:
    """The batch's terminal transition. A cancel requested meanwhile (the polled copy of the
    job can be older than it) wins: the write requires that none was, and is redone if one was."""
    target = terminal_status(item, remote)
    actions = _poll_actions(moment, remote.counts, None, remote.state_data)
    stop_reason = (remote.error or "provider_failed") if target == states.FAILED else STOP_REASONS[target]
    unless_cancelled = None if target == states.CANCELLED else (JobItem.cancel_requested != True)  # noqa: E712
    org = item.organization_id
    outcome = update_running_batch(org, item.id, actions + [JobItem.stop_reason.set(stop_reason[:64])], target, unless_cancelled)
    if outcome.applied:
        return target
    current = outcome.job  # as it was when the write was refused
    if current is not None and current.status == states.RUNNING and current.cancel_requested:
        if update_running_batch(org, item.id, actions + [JobItem.stop_reason.set("cancelled")], states.CANCELLED).applied:
            return states.CANCELLED
    return states.RUNNING
