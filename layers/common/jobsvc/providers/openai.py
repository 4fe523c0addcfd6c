"""The OpenAI Batch API: input uploaded as a JSON-lines file, output and error files read back."""
from __future__ import annotations

import json
from typing import Any, Iterator

from .base import ENDED, FAILED, PROCESSING, HttpProvider, ProviderBatch, ProviderError, Result, call, counts, json_lines, stream

ENDPOINT = "/v1/chat/completions"
PROCESSING_STATES = {"validating", "in_progress", "finalizing", "cancelling"}
ENDED_STATES = {"completed", "cancelled", "expired"}
#: error codes OpenAI gives requests that were never run
NOT_RUN = {"batch_cancelled": "cancelled", "batch_expired": "expired"}


class OpenAIProvider(HttpProvider):
    name = "openai"

    def headers(self, api_key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {api_key}"}

    def _batch(self, data: dict[str, Any]) -> ProviderBatch:
        try:
            status = data["status"]
            batch_id = data["id"]
            raw = data.get("request_counts") or {}
            total, done, failed = int(raw.get("total", 0)), int(raw.get("completed", 0)), int(raw.get("failed", 0))
        except (KeyError, TypeError, ValueError):
            raise ProviderError("openai: a batch without id, status or request_counts") from None
        rest = max(0, total - done - failed)
        tally = {"succeeded": done, "errored": failed}
        if status in PROCESSING_STATES:
            state, leftover = PROCESSING, "processing"
        elif status in ENDED_STATES:
            state, leftover = ENDED, "canceled" if status == "cancelled" else "expired"
        elif status == "failed":
            state, leftover = FAILED, "errored"
        else:
            raise ProviderError(f"openai: unknown batch status {status!r}")
        tally[leftover] = tally.get(leftover, 0) + rest
        errors = data.get("errors")
        errors = errors.get("data") if isinstance(errors, dict) else None
        errors = errors if isinstance(errors, list) else []
        return ProviderBatch(
            id=batch_id, state=state, counts=counts(**tally), raw_status=status,
            state_data={k: str(data[k]) for k in ("output_file_id", "error_file_id") if data.get(k)},
            error="; ".join(str(e.get("message", e) if isinstance(e, dict) else e) for e in errors)[:500] or None,
        )

    def submit(self, batch_requests: list[dict[str, Any]]) -> ProviderBatch:
        lines = "".join(
            json.dumps({"custom_id": r["custom_id"], "method": "POST", "url": ENDPOINT, "body": r["params"]}) + "\n"
            for r in batch_requests
        )
        uploaded = call(
            self.session, "POST", f"{self.base_url}/v1/files", self.timeout,
            data={"purpose": "batch"}, files={"file": ("batch.jsonl", lines.encode(), "application/jsonl")},
        )
        if not isinstance(uploaded.get("id"), str):
            raise ProviderError("openai: the uploaded file has no id")
        created = call(
            self.session, "POST", f"{self.base_url}/v1/batches", self.timeout,
            json={"input_file_id": uploaded["id"], "endpoint": ENDPOINT, "completion_window": "24h"},
        )
        return self._batch(created)

    def retrieve(self, batch_id: str) -> ProviderBatch:
        return self._batch(call(self.session, "GET", f"{self.base_url}/v1/batches/{batch_id}", self.timeout))

    def cancel(self, batch_id: str) -> ProviderBatch:
        return self._batch(call(self.session, "POST", f"{self.base_url}/v1/batches/{batch_id}/cancel", self.timeout))

    def results(self, batch: ProviderBatch) -> Iterator[Result]:
        for key in ("output_file_id", "error_file_id"):
            file_id = batch.state_data.get(key)
            if not file_id:
                continue
            response = stream(self.session, f"{self.base_url}/v1/files/{file_id}/content", self.timeout)
            with response:
                for line in json_lines(response, f"openai {key}"):
                    yield _result(line)


def _result(line: dict[str, Any]) -> Result:
    error = line.get("error")
    response = line.get("response") if isinstance(line.get("response"), dict) else {}
    code = response.get("status_code")
    if not error and isinstance(code, int) and 200 <= code < 300:
        return Result(line["custom_id"], "completed", response.get("body"))
    if isinstance(error, dict) and error.get("code") in NOT_RUN:
        return Result(line["custom_id"], NOT_RUN[error["code"]], error)
    return Result(line["custom_id"], "failed", error or response.get("body"))
