"""The API function: HTTP API (payload 2.0) routes -> jobsvc logic.

Thin by design: parse and validate (Powertools + pydantic, which also give the
OpenAPI document), call ``jobsvc.jobs``, shape the answer.  Errors are mapped
to HTTP in one place (``_domain_error``).
"""
from __future__ import annotations

import base64
import binascii
import importlib
import json
from typing import Annotated, Any, Optional
from urllib.parse import urlencode

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Path, Query

from jobsvc import errors, jobs, jsonbody, tracing
from jobsvc.auth import Actor
from jobsvc.config import settings
from jobsvc.pages import Listing
from jobsvc.schemas import (
    Batch, BatchCreate, BatchItem, BulkCancel, BulkCancelResult, CallbackAttempt, Error, Health, HistoryEntry, Job,
    JobCreate, JobType, JobUpdate, Message, MessageCreate, Queued, Recover, Redelivery, Role, Stats, Status,
    TransitionError, Unauthorized, WebhookSecret,
)


class OnFirstUse:
    """Module ``name``, imported when one of its attributes is first read. What only some routes
    need (batches, webhooks, stats) stays out of the function's import, the cold start of every
    other route; in AWS, ``_before_snapshot`` imports it into the SnapStart snapshot. (An
    ordinary import each time: thread-safe, and a failed one raises again at the next use.)"""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("__") or attribute == "_name":
            raise AttributeError(attribute)  # copy, pickle, introspection: not the module's
        return getattr(importlib.import_module(self._name), attribute)

    def __repr__(self) -> str:
        return f"<{self._name}, imported on first use>"


ON_FIRST_USE = ("jobsvc.batches", "jobsvc.stats", "jobsvc.webhooks")
batches, stats, webhooks = map(OnFirstUse, ON_FIRST_USE)
#: what the snapshot imports, so that no request after a restore imports anything: the
#: modules above, the provider adapters, their HTTP client and their key lookup (SSM through
#: Powertools' parameters, with boto3), the pool of parallel list queries, the console's files
#: (``_before_snapshot`` also makes the OpenAPI document once, which imports its generator)
SNAPSHOT_MODULES = (
    *ON_FIRST_USE,
    "jobsvc.providers.anthropic", "jobsvc.providers.openai", "jobsvc.providers.simulated", "jobsvc.providers.keys",
    "requests", "aws_lambda_powertools.utilities.parameters", "concurrent.futures.thread", "jobsvc.web",
)

logger = Logger()
app = APIGatewayHttpResolver(enable_validation=True)
TITLE = "Job lifecycle service"
#: the console and the API docs page with their assets (files in jobsvc/web, read on first use)
WEB_ROUTES = (
    "/console", "/console/app.js", "/console/app.css",
    "/v1/docs", "/v1/docs/init.js", "/v1/docs/swagger-ui-bundle.js", "/v1/docs/swagger-ui.css",
)

#: routes without the authorizer (as in template.yaml); "$default" answers unknown routes with 404.
PUBLIC_ROUTES = frozenset({"GET /v1/health", "GET /v1/openapi.json", "$default"} | {f"GET {path}" for path in WEB_ROUTES})
JobId = Annotated[str, Path(description="job-<UUIDv7>")]
#: every route but the public ones needs the key (the OpenAPI document says so route by route)
KEY = [{"apiKey": []}]

#: what each error status means, in the words of the OpenAPI document; every one is a {detail}
ERROR_MEANINGS = {
    400: "the body is not valid JSON (or not UTF-8, or nested too deeply)",
    401: "missing, malformed or unknown API key (with no Authorization header at all, API Gateway's own {message})",
    404: "no such job (or batch) in your organization",
    409: "conflicts with the job's current status",
    413: "the body (or the item it would make) is too large",
    422: "an invalid field: the problems are in detail",
    502: "the provider refused the request or could not be reached",
    503: "the database stayed busy after retries; retry later",
}


def answers(status: int, description: str, model: Any = None, *errors_: int, body: bool = False,
            conflict: Any = None, link: bool = False) -> dict[int, Any]:
    """The OpenAPI answers of a route: its success (``status``, ``model``) and each error it can
    give, every error a ``{detail}`` (409 on a job: ``{detail, current_status}``; 401 may be API
    Gateway's own ``{message}``)."""
    success: dict[str, Any] = {"description": description}
    if model is not None:
        success["content"] = {"application/json": {"model": model}}
    if link:
        success["headers"] = {"Link": {
            "description": 'present when more may follow: `<url>; rel="next"` fetches the next page (RFC 8288)',
            "schema": {"type": "string"},
        }}
    out: dict[int, Any] = {status: success}
    for code in sorted({401, 422, 503, *errors_, *((400, 413) if body else ())}):
        model_ = conflict if code == 409 and conflict is not None else Unauthorized if code == 401 else Error
        out[code] = {"description": ERROR_MEANINGS[code], "content": {"application/json": {"model": model_}}}
    return out


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body, headers=headers)


def _page(listing: Listing) -> Response:
    """A list page; ``Link: <...>; rel="next"`` when more may follow (RFC 8288, as GitHub's API)."""
    if listing.next is None:
        return _json(200, listing.items)
    event = app.current_event
    query = {**(event.query_string_parameters or {}), **listing.next}
    headers = event.headers or {}
    scheme = (headers.get("x-forwarded-proto") or "https").split(",")[0].strip()
    host = headers.get("host") or event.request_context.domain_name
    url = f"{scheme}://{host}{event.raw_event.get('rawPath') or event.path}?{urlencode(query)}"
    return _json(200, listing.items, {"Link": f'<{url}>; rel="next"'})


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


@app.get("/v1/health", tags=["service"], responses={200: {"description": "the service answers", "content": {"application/json": {"model": Health}}}})
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
    )
    document = json.loads(schema)
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            if "security" not in operation:  # a public route: say so, rather than inherit nothing
                operation["security"] = []
                operation.get("responses", {}).pop("422", None)  # no parameters, nothing to refuse
    document.get("components", {}).get("schemas", {}).pop("HTTPValidationError", None)
    document.get("components", {}).get("schemas", {}).pop("ValidationError", None)
    return _json(200, document)


def _web_route(path: str) -> None:
    def serve() -> Response[str]:
        from jobsvc import web  # only these routes pay for it

        page = web.asset(path)
        headers = web.headers(path, app.current_event.get_query_string_value("v"))
        return Response(status_code=200, content_type=page.content_type, body=page.body, headers=headers)

    serve.__name__ = "web_" + path.strip("/").replace("/", "_").replace(".", "_").replace("-", "_")
    app.get(path, include_in_schema=False)(serve)


for _path in WEB_ROUTES:
    _web_route(_path)


@app.post("/v1/jobs", tags=["jobs"], security=KEY, responses=answers(201, "the job (a replay of an Idempotency-Key: the same job, with Idempotent-Replayed: true)", Job, 409, body=True))
def create_job(
    body: Annotated[Optional[JobCreate], Body()] = None,
    idempotency_key: Annotated[Optional[str], Header(alias="idempotency-key", description="repeat a create safely for 24 hours")] = None,
) -> Response[Job]:
    job, replayed = jobs.create_job(actor(), body or JobCreate(), idempotency_key)
    return _json(201, job, {"Idempotent-Replayed": "true"} if replayed else None)


@app.get("/v1/jobs", tags=["jobs"], security=KEY, responses=answers(200, "a page of jobs", list[Job], link=True))
def list_jobs(
    before: Annotated[Optional[str], Query(max_length=80, description="job id: only jobs created before it")] = None,
    after: Annotated[Optional[str], Query(max_length=80, description="job id: only jobs created after it")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    order: Annotated[str, Query(pattern="^(asc|desc)$")] = "desc",
    status: Annotated[Optional[Status], Query()] = None,
    active: Annotated[Optional[bool], Query(description="true: only created, pending, running")] = None,
    job_type: Annotated[Optional[JobType], Query()] = None,
    source_id: Annotated[Optional[str], Query(max_length=1024, description="equals metadata.source_id")] = None,
    updated_before: Annotated[Optional[str], Query(max_length=64, description="RFC 3339 time: only jobs last updated before it (with status=running: the stuck jobs)")] = None,
) -> Response[list[Job]]:
    return _page(jobs.list_jobs(
        actor(), before=before, after=after, limit=limit, order=order, status=status,
        active=active, job_type=job_type, source_id=source_id, updated_before=updated_before,
    ))


@app.post("/v1/jobs/cancel", tags=["operations"], security=KEY, responses=answers(200, "the jobs cancelled, and whether more may match", BulkCancelResult, body=True))
def bulk_cancel(body: Annotated[BulkCancel, Body()]) -> BulkCancelResult:
    return jobs.bulk_cancel(actor(), body)


@app.get("/v1/stats", tags=["operations"], security=KEY, responses=answers(200, "counts now, and the window's figures", Stats))
def get_stats(
    hours: Annotated[int, Query(ge=1, le=720, description="the window: the last hours (whole hours)")] = 24,
    job_type: Annotated[Optional[JobType], Query()] = None,
) -> Stats:
    return stats.read(actor(), hours, job_type)


@app.post("/v1/callbacks/recover", tags=["webhooks"], security=KEY, responses=answers(202, "redeliveries queued", Queued, body=True))
def recover_callbacks(body: Annotated[Recover, Body()]) -> Response[Queued]:
    context = app.lambda_context
    left = context.get_remaining_time_in_millis() / 1000 if hasattr(context, "get_remaining_time_in_millis") else None
    # stop with time to answer (API Gateway gives up at 30 s): a second call queues the rest
    return _json(202, webhooks.recover(actor(), body.since, body.until, None if left is None else max(1.0, left - 5)))


@app.get("/v1/jobs/<job_id>", tags=["jobs"], security=KEY, responses=answers(200, "the job", Job, 404))
def get_job(job_id: JobId) -> Job:
    return jobs.get_job(actor(), job_id)


@app.get("/v1/jobs/<job_id>/history", tags=["jobs"], security=KEY, responses=answers(200, "every status the job entered, oldest first", list[HistoryEntry], 404))
def job_history(job_id: JobId) -> list[HistoryEntry]:
    return jobs.history(actor(), job_id)


@app.patch("/v1/jobs/<job_id>", tags=["jobs"], security=KEY, responses=answers(200, "the job after the update", Job, 404, 409, body=True, conflict=TransitionError))
def update_job(job_id: JobId, body: Annotated[JobUpdate, Body()]) -> Job:
    return jobs.update_job(actor(), job_id, body)


@app.patch("/v1/jobs/<job_id>/cancel", tags=["jobs"], security=KEY, responses=answers(200, "the cancelled job", Job, 404, 409, conflict=TransitionError))
def cancel_job(job_id: JobId) -> Job:
    return jobs.cancel_job(actor(), job_id)


@app.delete("/v1/jobs/<job_id>", tags=["jobs"], security=KEY, responses=answers(200, "the deleted job", Job, 404, 409, conflict=TransitionError))
def delete_job(job_id: JobId) -> Job:
    return jobs.delete_job(actor(), job_id)


@app.post("/v1/jobs/<job_id>/messages", tags=["messages"], security=KEY, responses=answers(201, "the message", Message, 404, body=True))
def add_message(job_id: JobId, body: Annotated[MessageCreate, Body()]) -> Response[Message]:
    return _json(201, jobs.add_message(actor(), job_id, body))


@app.get("/v1/jobs/<job_id>/messages", tags=["messages"], security=KEY, responses=answers(200, "a page of the job's messages", list[Message], 404, link=True))
def list_messages(
    job_id: JobId,
    before: Annotated[Optional[str], Query(max_length=80)] = None,
    after: Annotated[Optional[str], Query(max_length=80)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    order: Annotated[str, Query(pattern="^(asc|desc)$")] = "asc",
    role: Annotated[Optional[Role], Query()] = None,
) -> Response[list[Message]]:
    return _page(jobs.list_messages(actor(), job_id, before=before, after=after, limit=limit, order=order, role=role))


@app.get("/v1/jobs/<job_id>/callbacks", tags=["webhooks"], security=KEY, responses=answers(200, "the webhook attempts, oldest first", list[CallbackAttempt], 404))
def list_callbacks(job_id: JobId, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[CallbackAttempt]:
    return webhooks.list_attempts(actor(), job_id, limit)


@app.post("/v1/jobs/<job_id>/callbacks/redeliver", tags=["webhooks"], security=KEY, responses=answers(202, "queued", Redelivery, 404, 409, conflict=TransitionError))
def redeliver(job_id: JobId) -> Response[Redelivery]:
    return _json(202, webhooks.request_redelivery(actor(), job_id))


@app.get("/v1/webhook-secret", tags=["webhooks"], security=KEY, responses=answers(200, "the organization's signing secret", WebhookSecret))
def webhook_secret() -> WebhookSecret:
    return webhooks.get_secret(actor())


@app.post("/v1/webhook-secret/rotate", tags=["webhooks"], security=KEY, responses=answers(200, "the new secret (the old one also signs for 24 hours)", WebhookSecret))
def rotate_webhook_secret() -> WebhookSecret:
    return webhooks.rotate_secret(actor())


@app.post("/v1/batches", tags=["batches"], security=KEY, responses={**answers(201, "the batch, submitted or registered", Batch, 404, 502, body=True), 200: {"description": "the provider batch is already tracked by your organization: the job that tracks it", "content": {"application/json": {"model": Batch}}}})
def create_batch(body: Annotated[BatchCreate, Body()]) -> Response[Batch]:
    batch, created = batches.create_batch(actor(), body)
    return _json(201 if created else 200, batch)


@app.get("/v1/batches", tags=["batches"], security=KEY, responses=answers(200, "a page of batches", list[Batch], link=True))
def list_batches(
    before: Annotated[Optional[str], Query(max_length=80)] = None,
    after: Annotated[Optional[str], Query(max_length=80)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    order: Annotated[str, Query(pattern="^(asc|desc)$")] = "desc",
    status: Annotated[Optional[Status], Query()] = None,
    active: Annotated[Optional[bool], Query()] = None,
    source_id: Annotated[Optional[str], Query(max_length=1024)] = None,
    updated_before: Annotated[Optional[str], Query(max_length=64)] = None,
) -> Response[list[Batch]]:
    return _page(batches.list_batches(
        actor(), before=before, after=after, limit=limit, order=order, status=status, active=active,
        source_id=source_id, updated_before=updated_before,
    ))


@app.get("/v1/batches/<job_id>", tags=["batches"], security=KEY, responses=answers(200, "the batch", Batch, 404))
def get_batch(job_id: JobId) -> Batch:
    return batches.get_batch(actor(), job_id)


@app.get("/v1/batches/<job_id>/items", tags=["batches"], security=KEY, responses=answers(200, "a page of the batch's results, by custom_id", list[BatchItem], 404, link=True))
def list_batch_items(
    job_id: JobId,
    after: Annotated[Optional[str], Query(max_length=64, description="custom_id: only items after it")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response[list[BatchItem]]:
    return _page(batches.list_items(actor(), job_id, after, limit))


@app.patch("/v1/batches/<job_id>/cancel", tags=["batches"], security=KEY, responses=answers(202, "cancel requested: the batch ends cancelled at a coming poll", Batch, 404, 409, 502, conflict=TransitionError))
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
@tracing.capture
def lambda_handler(event: dict, context: Any) -> dict:
    caller = ((event.get("requestContext") or {}).get("authorizer") or {}).get("lambda") or {}
    logger.append_keys(organization_id=caller.get("organization_id"),
                       job_id=(event.get("pathParameters") or {}).get("job_id"))
    return _gate(event) or app.resolve(event, context)


# ---- SnapStart (template.yaml: SnapStart on published versions) ------------------------------


def _before_snapshot() -> None:
    """Make now what the first request would: the snapshot then holds it (the DynamoDB client,
    its credentials, every model's validator, the modules only some routes use, the console's
    files, the OpenAPI document's generator)."""
    from jobsvc import schemas, web
    from jobsvc.storage import db

    for name in SNAPSHOT_MODULES:
        importlib.import_module(name)
    for path in WEB_ROUTES:
        web.asset(path)
    openapi()
    db.client()
    schemas.build()


def _after_restore() -> None:
    """A restored environment is one of many copies of the snapshot: what must differ per
    environment is made anew: random state (retry jitter), the round-robin of job id shards,
    and connections (a pool holds sockets from the snapshot's time) and credentials."""
    import random

    from jobsvc import ids, queues
    from jobsvc.storage import db

    random.seed()
    ids.reseed()
    db.reset_client()
    queues.reset_client()


try:  # the Lambda runtime's hooks exist only where SnapStart can run
    from snapshot_restore_py import register_after_restore, register_before_snapshot
except ImportError:  # pragma: no cover - locally and in the tests
    pass
else:  # pragma: no cover
    register_before_snapshot(_before_snapshot)
    register_after_restore(_after_restore)
