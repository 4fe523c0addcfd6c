"""The Lambda authorizer of the HTTP API (payload 2.0, simple responses).

Maps ``Authorization: Bearer <key>`` to the actor by the key's SHA-256 hash.
It lets every request through to the API function with either the actor or
the reason it has none in its context; the API function answers ``401`` with
a JSON ``detail`` (API Gateway's own 401/403 bodies carry no ``detail``).
The API trusts nothing but this context.
"""
from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from jobsvc import tracing
from jobsvc.auth import authenticate

logger = Logger()


@logger.inject_lambda_context(clear_state=True)
@tracing.capture
def lambda_handler(event: dict, context: Any) -> dict:
    headers = event.get("headers") or {}
    header = headers.get("authorization")
    if not header:
        return {"isAuthorized": True, "context": {"error": "missing Authorization: Bearer <api key> header"}}
    actor = authenticate(header)
    if actor is None:
        logger.info("refused an unknown or malformed API key")
        return {"isAuthorized": True, "context": {"error": "unknown or malformed API key"}}
    return {
        "isAuthorized": True,
        "context": {"organization_id": actor.organization_id, "user_id": actor.user_id},
    }
