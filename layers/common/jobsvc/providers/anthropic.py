"""Anthropic Message Batches (anthropic-version 2023-06-01)."""
from __future__ import annotations

from typing import Any, Iterator

from .base import ENDED, ITEM_STATUS, PROCESSING, HttpProvider, ProviderBatch, ProviderError, Result, call, counts, json_lines, stream

VERSION = "2023-06-01"
PROCESSING_STATES = {"in_progress", "canceling"}


class AnthropicProvider(HttpProvider):
    name = "anthropic"

    def headers(self, api_key: str) -> dict[str, str]:
        return {"x-api-key": api_key, "anthropic-version": VERSION, "content-type": "application/json"}

    @property
    def base(self) -> str:
        return f"{self.base_url}/v1/messages/batches"

    def _batch(self, data: dict[str, Any]) -> ProviderBatch:
        try:
            status = data["processing_status"]
            batch_counts = counts(**data["request_counts"])
            batch_id = str(data["id"])
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ProviderError("anthropic: a message batch without id, processing_status or request_counts") from None
        if status in PROCESSING_STATES:
            state = PROCESSING
        elif status == "ended":
            state = ENDED
        else:
            raise ProviderError(f"anthropic: unknown processing_status {status!r}")
        return ProviderBatch(
            id=batch_id, state=state, counts=batch_counts, raw_status=status,
            state_data={"results_url": data.get("results_url")} if data.get("results_url") else {},
        )

    def submit(self, batch_requests: list[dict[str, Any]]) -> ProviderBatch:
        return self._batch(call(self.session, "POST", self.base, self.timeout, json={"requests": batch_requests}))

    def retrieve(self, batch_id: str) -> ProviderBatch:
        return self._batch(call(self.session, "GET", f"{self.base}/{batch_id}", self.timeout))

    def cancel(self, batch_id: str) -> ProviderBatch:
        return self._batch(call(self.session, "POST", f"{self.base}/{batch_id}/cancel", self.timeout))

    def results(self, batch: ProviderBatch) -> Iterator[Result]:
        url = batch.state_data.get("results_url")
        if not url:
            raise ProviderError("anthropic: the ended batch has no results_url")
        response = stream(self.session, url, self.timeout)
        with response:
            for line in json_lines(response, "anthropic results"):
                result = line.get("result")
                outcome = result.get("type") if isinstance(result, dict) else None
                if outcome not in ITEM_STATUS:
                    raise ProviderError(f"anthropic results: unknown result type {outcome!r} for {line['custom_id']}")
                payload = result.get("message") if outcome == "succeeded" else result.get("error")
                yield Result(line["custom_id"], ITEM_STATUS[outcome], payload)
