"""A test client that speaks to the API function in this process, through ``tests.apigw`` events.

It answers like ``requests`` (``status_code``, ``headers``, ``text``, ``json()``) and has the
job-level verbs of ``tests.contract.JobVerbs``, so that a test reads the same whether it runs
here or over HTTP against the local stack.
"""
from __future__ import annotations

import json as jsonlib
from typing import Any, Callable, Mapping

from requests.structures import CaseInsensitiveDict

from tests import apigw
from tests.contract import JobVerbs
from tests.helpers import LambdaContext

_NO_BODY = object()


class Response:
    def __init__(self, status: int, headers: dict[str, str], content: bytes) -> None:
        self.status_code = status
        self.headers = CaseInsensitiveDict(headers)
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return jsonlib.loads(self.content)

    def __repr__(self) -> str:
        return f"<Response {self.status_code} {self.text[:200]!r}>"


class InProcessApi(JobVerbs):
    def __init__(self, handler: Callable[[dict, Any], dict], authorizer: dict[str, str]) -> None:
        self.handler = handler
        self.authorizer = authorizer
        self.context = LambdaContext()

    @property
    def organization_id(self) -> str | None:
        return self.authorizer.get("organization_id")

    @property
    def user_id(self) -> str | None:
        return self.authorizer.get("user_id")

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = _NO_BODY,
        data: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        **_: Any,
    ) -> Response:
        """As ``requests.request``: ``json=`` sends JSON (``None``: no body), ``data=`` sends the
        bytes as they are with only the headers given."""
        sent = {"accept": "*/*"}
        body: bytes | str | None = None
        if json is not _NO_BODY and json is not None:
            body = jsonlib.dumps(json).encode()
            sent["content-type"] = "application/json"
        elif data is not None:
            body = data
        for name, value in (headers or {}).items():
            sent[name.lower()] = value
        if body:
            sent["content-length"] = str(len(body.encode() if isinstance(body, str) else body))
        event = apigw.event(method, apigw.target(path, params), headers=sent, body=body, authorizer=self.authorizer)
        status, out_headers, content = apigw.response(self.handler(event, self.context))
        return Response(status, out_headers, content)
