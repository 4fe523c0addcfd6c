"""API Gateway HTTP API (payload format 2.0) events, built the way the gateway builds them.

One small helper for the tests that call the API function directly (``tests/api``):

* the route is matched against the routes of ``template.yaml`` (``routeKey`` and
  ``pathParameters`` as the gateway sets them; anything else goes to ``$default``);
* header names are lower-cased and repeated headers joined with commas, as are repeated query
  parameters (``queryStringParameters``); ``Cookie`` headers become ``cookies``;
* the body is passed as text when its ``Content-Type`` is a text or JSON type and it is UTF-8,
  and base64-encoded (``isBase64Encoded: true``) otherwise: no content type, a form type
  (what ``curl -d`` sends), binary types, bytes that are not UTF-8;
* the authorizer's context is in ``requestContext.authorizer.lambda`` on every route that has
  the authorizer (the public routes have no ``authorizer`` member at all).

``response(result)`` turns the function's answer back into (status, headers, body bytes) as the
gateway does.
"""
from __future__ import annotations

import base64
import json
import re
import uuid
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any, Iterable, Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit

from local.template import Template

ACCOUNT = "123456789012"
API_ID = "testapi"
DOMAIN = f"{API_ID}.execute-api.us-east-1.amazonaws.com"
_TEXT_TYPES = re.compile(
    r"^(text/[^;]+|application/([a-z0-9.+-]+\+)?json|application/([a-z0-9.+-]+\+)?xml|application/javascript)\s*(;.*)?$",
    re.IGNORECASE,
)


@lru_cache(maxsize=1)
def routes() -> tuple:
    """(method, regex, route key, has authorizer) of every route of the template; ``$default`` last."""
    out, fallback = [], None
    for route in Template().routes():
        if route.path == "$default":
            fallback = ("ANY", None, "$default", route.authorizer is not None)
        else:
            out.append((route.method, route.regex, route.route_key, route.authorizer is not None))
    if fallback:
        out.append(fallback)
    return tuple(out)


def match(method: str, path: str) -> tuple[str, dict[str, str], bool]:
    """(route key, path parameters, whether the route has the authorizer)."""
    for route_method, regex, key, authorized in routes():
        if regex is None:
            return key, {}, authorized
        if route_method not in (method, "ANY"):
            continue
        found = regex.match(path)
        if found:
            return key, found.groupdict(), authorized
    raise LookupError(f"no route for {method} {path} and no $default route")


def is_text(content_type: str | None) -> bool:
    return bool(content_type) and bool(_TEXT_TYPES.match(content_type.strip()))


def event(
    method: str,
    target: str,
    *,
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    body: bytes | str | None = None,
    authorizer: dict[str, Any] | None = None,
    source_ip: str = "203.0.113.7",
) -> dict:
    """The payload 2.0 event for ``method target`` (``target`` is the path with its query string).

    ``authorizer`` is what the Lambda authorizer answered in ``context`` (the actor, or the
    reason there is none); it is passed only on routes that have the authorizer (None: no
    authorizer context at all, as in events/api_unauthenticated.json).
    """
    method = method.upper()
    url = urlsplit(target)
    path = url.path
    route_key, path_parameters, authorized = match(method, path)

    merged: dict[str, str] = {}
    cookies: list[str] = []
    pairs = headers.items() if isinstance(headers, Mapping) else (headers or [])
    for name, value in pairs:
        key = name.lower()
        if key == "cookie":
            cookies += [c.strip() for c in str(value).split(";") if c.strip()]
            continue
        merged[key] = f"{merged[key]},{value}" if key in merged else str(value)
    merged.setdefault("host", DOMAIN)
    merged.setdefault("user-agent", "tests")

    query: dict[str, str] = {}
    for key, value in parse_qsl(url.query, keep_blank_values=True):
        query[key] = f"{query[key]},{value}" if key in query else value

    raw = body.encode("utf-8") if isinstance(body, str) else body
    if raw:
        try:
            text: str | None = raw.decode("utf-8") if is_text(merged.get("content-type")) else None
        except UnicodeDecodeError:
            text = None
        payload, encoded = (text, False) if text is not None else (base64.b64encode(raw).decode(), True)
    else:
        payload, encoded = None, False

    now = datetime.now(timezone.utc)
    context: dict[str, Any] = {
        "accountId": ACCOUNT,
        "apiId": API_ID,
        "domainName": merged["host"],
        "domainPrefix": API_ID,
        "http": {
            "method": method, "path": path, "protocol": "HTTP/1.1",
            "sourceIp": source_ip, "userAgent": merged.get("user-agent", ""),
        },
        "requestId": uuid.uuid4().hex,
        "routeKey": route_key,
        "stage": "$default",
        "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "timeEpoch": int(now.timestamp() * 1000),
    }
    if authorized and authorizer is not None:
        context["authorizer"] = {"lambda": dict(authorizer)}
    out: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": url.query,
        "headers": merged,
        "requestContext": context,
        "isBase64Encoded": encoded,
    }  # "body" last: None when there is none, as the local gateway and the events/ samples have it
    if cookies:
        out["cookies"] = cookies
    if query:
        out["queryStringParameters"] = query
    if path_parameters:
        out["pathParameters"] = path_parameters
    out["body"] = payload
    return out


def target(path: str, params: Mapping[str, Any] | None = None) -> str:
    """``path`` with ``params`` as its query string (as ``requests`` encodes them)."""
    if not params:
        return path
    items = [(k, v) for k, v in params.items() if v is not None]
    return f"{path}?{urlencode(items)}" if items else path


def response(result: Any) -> tuple[int, dict[str, str], bytes]:
    """A payload 2.0 answer as the gateway sends it to the client: status, headers, body bytes."""
    if not isinstance(result, dict) or "statusCode" not in result:
        return 200, {"Content-Type": "application/json"}, json.dumps(result).encode()
    headers = {k: str(v) for k, v in (result.get("headers") or {}).items()}
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers[name] = ",".join(str(v) for v in values)
    body = result.get("body") or ""
    raw = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode()
    return int(result["statusCode"]), headers, raw
