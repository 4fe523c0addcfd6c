"""What goes when a job goes (deleted through the API, or by the table's TTL after its
retention): its webhook item, its messages and batch results, its claim on a provider
batch. Driven by the table's stream (a REMOVE of a job item), so a delete is one request
and nothing is left behind if the API function stops right after it."""
from __future__ import annotations

from typing import Any

from .storage import batches as batch_store
from .storage import jobs as job_store
from .storage import layout
from .storage import webhooks as webhook_store


def is_job_removal(event_name: str | None, keys: dict[str, Any]) -> bool:
    sk = keys.get("sk", {}).get("S", "")
    return event_name == "REMOVE" and sk.startswith("JOB#") and not sk.endswith(layout.WEBHOOK_SUFFIX)


def after_delete(old_job: dict[str, Any]) -> int:
    """Delete what was stored under a deleted job; returns how many items went."""
    job_id = old_job["id"]
    webhook_store.delete_webhook_state(old_job["pk"], job_id)
    removed = 1 + batch_store.delete_children(job_id)
    if old_job.get("idempotency_key") and old_job.get("organization_id"):
        # deleted by retention (the API's delete did this already): a replay of the key must
        # not create the job again
        job_store.mark_idempotency_deleted(old_job["organization_id"], old_job["idempotency_key"], job_id)
    if old_job.get("provider") and old_job.get("provider_batch_id"):
        batch_store.release_owner(old_job["provider"], old_job["provider_batch_id"], job_id)
    return removed
