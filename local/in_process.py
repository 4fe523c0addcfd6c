"""The service's DynamoDB requests answered by moto in this process, while ``mock_aws`` is on.

``mock_aws`` answers botocore's requests from inside botocore (its ``before-send`` hook); the
service's own DynamoDB client (``jobsvc.storage.wire``) does not use botocore, so this hands its
signed request to the same hook through ``wire.transport``. While no ``mock_aws`` is active
(the local stack, the end-to-end tests) the hook answers None and the request goes over HTTP.
"""
from __future__ import annotations

from typing import Any


def moto_transport(url: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes] | None:
    from botocore.awsrequest import AWSPreparedRequest
    from botocore.compat import HTTPHeaders
    from moto.core.models import botocore_stubber

    if not botocore_stubber.enabled:
        return None
    request_headers = HTTPHeaders()
    for name, value in headers.items():
        request_headers[name] = value
    request_headers["Content-Length"] = str(len(body))
    request = AWSPreparedRequest(method="POST", url=url, headers=request_headers, body=body, stream_output=False)
    response: Any = botocore_stubber("before-send.dynamodb", request)
    if response is None:
        return None
    return response.status_code, dict(response.headers), response.content


def install() -> None:
    from jobsvc.storage import wire

    wire.transport = moto_transport
