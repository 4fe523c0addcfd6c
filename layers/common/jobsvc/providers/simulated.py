"""An in-service provider: no account needed, a batch ends after a few polls.

Each request's outcome is chosen by its params: ``{"simulate": "succeeded"}``
(the default), ``"errored"``, ``"canceled"`` or ``"expired"``. A cancel ends
the batch at the next poll with every request not yet decided canceled. The
batch lives in the service's own table.
"""
from __future__ import annotations

import json
import uuid
from typing import Any, Iterator

from ..config import settings
from ..storage import batches as store
from ..timeutil import now_iso
from .base import ENDED, ITEM_STATUS, PROCESSING, ProviderBatch, ProviderRefused, Result, counts

OUTCOMES = tuple(ITEM_STATUS)  # succeeded, errored, canceled, expired
MAX_BYTES = 300_000  # what fits in one item of the table


def invalid_request(params: Any) -> str | None:
    """Why the simulated provider would refuse a request's params (None: it would not)."""
    outcome = params.get("simulate", "succeeded") if isinstance(params, dict) else None
    if outcome not in OUTCOMES:
        return f"params.simulate must be one of {', '.join(OUTCOMES)}"
    return None


class SimulatedProvider:
    name = "simulated"

    def submit(self, batch_requests: list[dict[str, Any]]) -> ProviderBatch:
        for request in batch_requests:
            problem = invalid_request(request["params"])
            if problem:
                raise ProviderRefused(f"{problem} (request {request['custom_id']})", 400)
        body = json.dumps(batch_requests, separators=(",", ":"))
        if len(body.encode()) > MAX_BYTES:
            raise ProviderRefused(f"the simulated provider takes batches up to {MAX_BYTES} bytes", 413)
        batch_id = f"simbatch_{uuid.uuid4().hex}"
        store.put_simulated_batch(batch_id, {"requests_json": body, "created_at": now_iso(), "polls": 0, "cancel_requested": False})
        return ProviderBatch(batch_id, PROCESSING, counts(processing=len(batch_requests)), "in_progress")

    def _item(self, batch_id: str) -> dict[str, Any]:
        item = store.simulated_batch(batch_id)
        if item is None:
            raise ProviderRefused(f"no simulated batch {batch_id}", 404)
        return item

    def retrieve(self, batch_id: str) -> ProviderBatch:
        self._item(batch_id)
        return self._state(store.count_simulated_poll(batch_id))

    def cancel(self, batch_id: str) -> ProviderBatch:
        self._item(batch_id)
        store.cancel_simulated_batch(batch_id)
        item = self._item(batch_id)
        return ProviderBatch(batch_id, PROCESSING, self._state(item).counts, "canceling")

    def _outcomes(self, item: dict[str, Any]) -> list[tuple[str, str]]:
        requests = json.loads(item["requests_json"])
        return [
            (r["custom_id"], "canceled" if item.get("cancel_requested") else r["params"].get("simulate", "succeeded"))
            for r in requests
        ]

    def _state(self, item: dict[str, Any]) -> ProviderBatch:
        batch_id = item["pk"].removeprefix("SIMBATCH#")
        outcomes = self._outcomes(item)
        if item.get("cancel_requested") or int(item.get("polls", 0)) > settings().simulated_polls_to_finish:
            tally = counts(**{o: sum(1 for _, x in outcomes if x == o) for o in OUTCOMES})
            return ProviderBatch(batch_id, ENDED, tally, "ended")
        return ProviderBatch(batch_id, PROCESSING, counts(processing=len(outcomes)), "in_progress")

    def results(self, batch: ProviderBatch) -> Iterator[Result]:
        item = self._item(batch.id)
        for custom_id, outcome in self._outcomes(item):
            if outcome == "succeeded":
                payload: Any = {"type": "message", "role": "assistant",
                                "content": [{"type": "text", "text": f"simulated answer for {custom_id}"}]}
            elif outcome == "errored":
                payload = {"type": "error", "error": {"type": "simulated_error", "message": f"{custom_id} failed (simulated)"}}
            else:
                payload = None
            yield Result(custom_id, ITEM_STATUS[outcome], payload)
