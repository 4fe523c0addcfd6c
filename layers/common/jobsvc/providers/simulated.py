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

from .. import storage
from ..config import settings
from ..timeutil import now_iso
from .base import ENDED, ITEM_STATUS, PROCESSING, ProviderBatch, ProviderRefused, Result, counts

OUTCOMES = tuple(ITEM_STATUS)  # succeeded, errored, canceled, expired
MAX_BYTES = 300_000  # what fits in one item of the table


class SimulatedProvider:
    name = "simulated"

    def submit(self, batch_requests: list[dict[str, Any]]) -> ProviderBatch:
        for request in batch_requests:
            outcome = request["params"].get("simulate", "succeeded")
            if outcome not in OUTCOMES:
                raise ProviderRefused(f"simulate must be one of {', '.join(OUTCOMES)} (request {request['custom_id']})")
        body = json.dumps(batch_requests, separators=(",", ":"))
        if len(body.encode()) > MAX_BYTES:
            raise ProviderRefused(f"the simulated provider takes batches up to {MAX_BYTES} bytes")
        batch_id = f"simbatch_{uuid.uuid4().hex}"
        storage.put_simulated_batch(
            storage.SimulatedBatchItem(f"SIMBATCH#{batch_id}", "SIMBATCH", requests_json=body, created_at=now_iso())
        )
        return ProviderBatch(batch_id, PROCESSING, counts(processing=len(batch_requests)), "in_progress")

    def _item(self, batch_id: str) -> storage.SimulatedBatchItem:
        item = storage.simulated_batch(batch_id)
        if item is None:
            raise ProviderRefused(f"no simulated batch {batch_id}")
        return item

    def retrieve(self, batch_id: str) -> ProviderBatch:
        self._item(batch_id)
        storage.count_simulated_poll(batch_id)
        return self._state(self._item(batch_id))

    def cancel(self, batch_id: str) -> ProviderBatch:
        self._item(batch_id)
        storage.cancel_simulated_batch(batch_id)
        item = self._item(batch_id)
        return ProviderBatch(batch_id, PROCESSING, self._state(item).counts, "canceling")

    def _outcomes(self, item: storage.SimulatedBatchItem) -> list[tuple[str, str]]:
        requests = json.loads(item.requests_json)
        return [
            (r["custom_id"], "canceled" if item.cancel_requested else r["params"].get("simulate", "succeeded"))
            for r in requests
        ]

    def _state(self, item: storage.SimulatedBatchItem) -> ProviderBatch:
        batch_id = item.pk.removeprefix("SIMBATCH#")
        outcomes = self._outcomes(item)
        if item.cancel_requested or item.polls > settings().simulated_polls_to_finish:
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
