"""The API function: HTTP API (payload 2.0) routes -> jobsvc logic.

Thin by design: parse and validate (Powertools + pydantic, which also give the
OpenAPI document), call ``jobsvc.jobs``, shape the answer.  Errors are mapped
to HTTP in one place (``_domain_error``).
"""
from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any, Optional

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Path, Query

from jobsvc import batches, errors, jobs, jsonbody, webhooks
from jobsvc.auth import Actor
from jobsvc.config import settings
from jobsvc.schemas import (
    Batch, BatchCreate, BatchItem, CallbackAttempt, Health, Job, JobCreate, JobType, JobUpdate, Message, MessageCreate, Redelivery, Role, Status,
    TransitionError, WebhookSecret,
)

logger = Logger()
app = APIGatewayHttpResolver(enable_validation=True)
TITLE = "Job lifecycle service"
DOCS_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Job lifecycle service API</title>
<link rel="stylesheet" href="https://unpkg.com/swagger-ui-dist@5/swagger-ui.css"></head>
<body><div id="ui"></div>
<script src="https://unpkg.com/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "openapi.json", dom_id: "#ui", persistAuthorization: true});</script>
</body></html>
"""

#: routes without the authorizer (as in template.yaml); "$default" answers unknown routes with 404.
PUBLIC_ROUTES = frozenset({"GET /v1/health", "GET /v1/openapi.json", "GET /v1/docs", "$default"})
JobId = Annotated[str, Path(description="job-<UUIDv7>")]
_ERRORS: dict[int, Any] = {
    401: {"description": "missing or unknown API key"},
    404: {"description": "no such job in your organization"},
    422: {"description": "invalid field"},
}


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body, headers=headers)


def actor() -> Actor:
    """The caller, as the authorizer established it (the only source of identity)."""
    context = app.current_event.request_context.authorizer.get_lambda or {}
    if not context.get("organization_id") or not context.get("user_id"):
        raise errors.Unauthorized("missing or unknown API key")
    return Actor(context["organization_id"], context["user_id"])


# ---- error mapping -----------------------------------------------------------------


@app.exception_handler(errors.DomainError)
def _domain_error(exc: errors.DomainError) -> Response:
    return _json(exc.status_code, exc.body())


@app.exception_handler(RequestValidationError)
def _validation_error(exc: RequestValidationError) -> Response:
    problems = exc.errors()
    if any(p.get("type") == "json_invalid" for p in problems):
        return _json(400, {"detail": "request body is not valid JSON"})
    detail = [
        {"loc": list(p.get("loc", ())), "msg": p.get("msg"), "type": p.get("type")} for p in problems
    ]
    return _json(422, {"detail": detail})


@app.not_found
def _not_found(_exc: Exception) -> Response:
    return _json(404, {"detail": "no such route"})


# ---- routes ------------------------------------------------------------------------


@app.get("/v1/health", tags=["service"])
def health() -> Health:
    return Health(status="ok")


@app.get("/v1/openapi.json", tags=["service"], include_in_schema=False)
def openapi() -> Response[dict[str, Any]]:
    # imported here: the OpenAPI models cost a cold start ~70 ms that only this route needs
    from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer

    schema = app.get_openapi_json_schema(
        title=TITLE,
        version="1.0.0",
        description="Track background jobs, enforce their state machine, hear about their end by webhook.",
        security_schemes={"apiKey": HTTPBearer(description="Authorization: Bearer <api key>")},
        security=[{"apiKey": []}],
    )
    return _json(200, json.loads(schema))


@app.get("/v1/docs", tags=["service"], include_in_schema=False)
def docs() -> Response[str]:
    return Response(status_code=200, content_type="text/html; charset=utf-8", body=DOCS_PAGE)


@app.post("/v1/jobs", tags=["jobs"], responses={201: {"description": "the job"}, 409: {"description": "concurrent request with the same Idempotency-Key"}, **_ERRORS})
def create_job(
    body: Annotated[Optional[JobCreate], Body()] = None,
    idempotency_key: Annotated[Optional[str], Header(alias="idempotency-key", description="repeat a create safely for 24 hours")] = None,
) -> Response[Job]:
    job, replayed = jobs.create_job(actor(), body or JobCreate(), idempotency_key)
    return _json(201, job, {"Idempotent-Replayed": "true"} if replayed else None)


@app.get("/v1/jobs", tags=["jobs"], responses=_ERRORS)
def list_jobs(
    before: Annotated[Optional[str], Query(max_length=80, description="job id: only jobs created before it")] = None,
    after: Annotated[Optional[str], Query(max_length=80, description="job id: only jobs created after it")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    order: Annotated[str, Query(pattern="^(asc|desc)$")] = "desc",
    status: Annotated[Optional[Status], Query()] = None,
    active: Annotated[Optional[bool], Query(description="true: only created, pending, running")] = None,
    job_type: Annotated[Optional[JobType], Query()] = None,
    source_id: Annotated[Optional[str], Query(max_length=1024, description="equals metadata.source_id")] = None,
) -> list[Job]:
    return jobs.list_jobs(
        actor(), before=before, after=after, limit=limit, order=order, status=status,
        active=active, job_type=job_type, source_id=source_id,
    )


@app.get("/v1/jobs/<job_id>", tags=["jobs"], responses=_ERRORS)
def get_job(job_id: JobId) -> Job:
    return jobs.get_job(actor(), job_id)


@app.patch("/v1/jobs/<job_id>", tags=["jobs"], responses={409: {"description": "not allowed from the current status", "content": {"application/json": {"schema": TransitionError.model_json_schema()}}}, **_ERRORS})
def update_job(job_id: JobId, body: Annotated[JobUpdate, Body()]) -> Job:
    return jobs.update_job(actor(), job_id, body)


@app.patch("/v1/jobs/<job_id>/cancel", tags=["jobs"], responses={409: {"description": "the job is terminal"}, **_ERRORS})
def cancel_job(job_id: JobId) -> Job:
    return jobs.cancel_job(actor(), job_id)


@app.delete("/v1/jobs/<job_id>", tags=["jobs"], responses=_ERRORS)
def delete_job(job_id: JobId) -> Job:
    return jobs.delete_job(actor(), job_id)


@app.post("/v1/jobs/<job_id>/messages", tags=["messages"], responses={201: {"description": "the message"}, **_ERRORS})
def add_message(job_id: JobId, body: Annotated[MessageCreate, Body()]) -> Response[Message]:
    return _json(201, jobs.add_message(actor(), job_id, body))


@app.get("/v1/jobs/<job_id>/messages", tags=["messages"], responses=_ERRORS)
def list_messages(
    job_id: JobId,
    before: Annotated[Optional[str], Query(max_length=80)] = None,
    after: Annotated[Optional[str], Query(max_length=80)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    order: Annotated[str, Query(pattern="^(asc|desc)$")] = "asc",
    role: Annotated[Optional[Role], Query()] = None,
) -> list[Message]:
    return jobs.list_messages(actor(), job_id, before=before, after=after, limit=limit, order=order, role=role)


@app.get("/v1/jobs/<job_id>/callbacks", tags=["webhooks"], responses=_ERRORS)
def list_callbacks(job_id: JobId, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[CallbackAttempt]:
    return webhooks.list_attempts(actor(), job_id, limit)


@app.post("/v1/jobs/<job_id>/callbacks/redeliver", tags=["webhooks"], responses={202: {"description": "queued"}, 409: {"description": "the job is not terminal or has no callback_url"}, **_ERRORS})
def redeliver(job_id: JobId) -> Response[Redelivery]:
    return _json(202, webhooks.request_redelivery(actor(), job_id))


@app.get("/v1/webhook-secret", tags=["webhooks"], responses=_ERRORS)
def webhook_secret() -> WebhookSecret:
    return webhooks.get_secret(actor())


@app.post("/v1/webhook-secret/rotate", tags=["webhooks"], responses=_ERRORS)
def rotate_webhook_secret() -> WebhookSecret:
    return webhooks.rotate_secret(actor())


@app.post("/v1/batches", tags=["batches"], responses={201: {"description": "the batch"}, 502: {"description": "the provider refused or failed"}, **_ERRORS})
def create_batch(body: Annotated[BatchCreate, Body()]) -> Response[Batch]:
    return _json(201, batches.create_batch(actor(), body))


@app.get("/v1/batches", tags=["batches"], responses=_ERRORS)
def list_batches(
    before: Annotated[Optional[str], Query(max_length=80)] = None,
    after: Annotated[Optional[str], Query(max_length=80)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    order: Annotated[str, Query(pattern="^(asc|desc)$")] = "desc",
    status: Annotated[Optional[Status], Query()] = None,
    active: Annotated[Optional[bool], Query()] = None,
    source_id: Annotated[Optional[str], Query(max_length=1024)] = None,
) -> list[Batch]:
    return batches.list_batches(
        actor(), before=before, after=after, limit=limit, order=order, status=status, active=active, source_id=source_id,
    )


@app.get("/v1/batches/<job_id>", tags=["batches"], responses=_ERRORS)
def get_batch(job_id: JobId) -> Batch:
    return batches.get_batch(actor(), job_id)


@app.get("/v1/batches/<job_id>/items", tags=["batches"], responses=_ERRORS)
def list_batch_items(
    job_id: JobId,
    after: Annotated[Optional[str], Query(max_length=64, description="custom_id: only items after it")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[BatchItem]:
    return batches.list_items(actor(), job_id, after, limit)


@app.patch("/v1/batches/<job_id>/cancel", tags=["batches"], responses={202: {"description": "cancel requested"}, 409: {"description": "the batch has ended"}, 502: {"description": "the provider refused or failed"}, **_ERRORS})
def cancel_batch(job_id: JobId) -> Response[Batch]:
    return _json(202, batches.cancel_batch(actor(), job_id))


# ---- entry point -------------------------------------------------------------------


def _gate(event: dict) -> dict | None:
    """What API Gateway and the authorizer leave to us, before any parsing: 401, and a body
    that is a JSON object (400, 413, 422). Every body is taken as JSON, whatever its
    Content-Type (curl -d sends a form type).

    API Gateway passes the body as text only for text and JSON content types, base64-encoded
    otherwise (a third larger), so the limits apply to the decoded bytes; they are kept low
    enough (jobsvc.config.MAX_EVENT_BODY_BYTES) that any body within them fits in the Lambda
    event however it was encoded, so that a larger one gets this 413, not the platform's 500."""
    if event.get("routeKey") not in PUBLIC_ROUTES:
        context = ((event.get("requestContext") or {}).get("authorizer") or {}).get("lambda") or {}
        if not context.get("organization_id") or not context.get("user_id"):
            reason = context.get("error") or "missing or unknown API key"
            return _plain(401, {"detail": reason}, {"WWW-Authenticate": "Bearer"})
    body = event.get("body")
    if body:
        cfg = settings()
        limit = cfg.batch_max_body_bytes if event.get("routeKey") == "POST /v1/batches" else cfg.max_body_bytes
        try:
            raw = _raw_body(body, bool(event.get("isBase64Encoded")))
            event["body"] = jsonbody.check(raw, limit)
        except errors.DomainError as exc:
            return _plain(exc.status_code, exc.body())
        event["isBase64Encoded"] = False
        event.setdefault("headers", {})["content-type"] = "application/json"
    return None


def _raw_body(body: str, is_base64: bool) -> bytes:
    if not is_base64:
        return body.encode("utf-8", "surrogatepass")
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise errors.BadRequest("request body is not valid base64") from None


def _plain(status: int, body: dict, headers: dict[str, str] | None = None) -> dict:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json", **(headers or {})},
        "body": json.dumps(body),
        "isBase64Encoded": False,
    }


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict, context: Any) -> dict:
    return _gate(event) or app.resolve(event, context)
