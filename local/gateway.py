"""A local stand-in for API Gateway HTTP API: HTTP request -> payload 2.0 event -> handler.

It behaves as API Gateway does where the service can notice:

- Routing: a route's method and path, else the ``$default`` route, else API Gateway's own
  ``404 {"message":"Not Found"}``; any method (``PROPFIND``, ``TRACE``) is routed the same way,
  and no answer is ever Python's HTML page.
- The path: API Gateway decodes percent-encoded paths before passing them on ("API Gateway
  decodes URL-encoded request parameters before passing them to your backend integration":
  https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-routes.html), so
  ``rawPath``, ``requestContext.http.path`` and ``pathParameters`` are decoded and routing uses the
  decoded path.
- The body (``body_for_event``): text only for the text content types, base64 otherwise.
- The route's Lambda authorizer runs first (payload 2.0, simple responses) and its ``context``
  reaches the integration in ``requestContext.authorizer.lambda``. With identity sources, a
  request that lacks one is refused with ``401 {"message":"Unauthorized"}`` without running the
  authorizer, and the answer is cached per identity for ``ReauthorizeEvery`` seconds
  (https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-lambda-authorizer.html).
  ``isAuthorized: false`` is ``403 {"message":"Forbidden"}``.
- Failures of the integration are API Gateway's: a function error, a crash, a timeout of the
  function, an event or an answer over Lambda's 6 MB, an authorizer that fails: ``500
  {"message":"Internal Server Error"}`` (https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-troubleshooting-lambda.html);
  no answer within the 30 s integration timeout: ``503 {"message":"Service Unavailable"}`` (what
  HTTP APIs answer, e.g. github.com/cortexlabs/cortex/issues/1225; the function goes on until its
  own timeout); a request over 10 MB: ``413 {"message":"Request Entity Too Large"}``.
"""
from __future__ import annotations

import base64
import json
import socket
import sys
import threading
import time
import traceback
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qsl, unquote, urlsplit

from .lambdas import InvocationError, LocalFunction
from .template import ACCOUNT, REGION, Authorizer, Route

API_ID = "local"
#: API Gateway's own request limit (HTTP API quota "Maximum payload size": 10 MB)
MAX_PAYLOAD = 10 * 1024 * 1024
#: HTTP API's maximum integration timeout
INTEGRATION_TIMEOUT_SECONDS = 30.0

Answer = tuple[int, dict[str, str], list[str], bytes]

#: media types whose bodies API Gateway passes as text (without parameters, lower case)
_TEXT_TYPES = frozenset({"application/json", "application/xml", "application/javascript"})


def body_for_event(body: bytes, content_type: str | None) -> tuple[str | None, bool]:
    """``(body, isBase64Encoded)`` as an HTTP API puts a request body in a payload 2.0 event.

    AWS documents only that binary bodies are base64-encoded, not which types are binary. Measured
    against AWS by two emulators (ministack PR #766, floci PR #2203): the body is text only for
    ``text/*``, ``application/json``, ``application/xml`` and ``application/javascript``; anything
    else is base64, including no Content-Type, ``application/x-www-form-urlencoded`` (curl -d),
    ``multipart/form-data`` and ``+json`` types such as ``application/vnd.api+json``. A
    ``charset`` parameter other than UTF-8 makes it base64 too (floci's measurement). A body that
    is not UTF-8 cannot be a JSON string and is base64 here whatever its type (AWS unverified).
    """
    if not body:
        return None, False
    media, _, params = (content_type or "").partition(";")
    media = media.strip().lower()
    charset = ""
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
    text_type = media.startswith("text/") or media in _TEXT_TYPES
    if text_type and charset in ("", "utf-8", "utf8"):
        try:
            return body.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(body).decode("ascii"), True


def answer(status: int, message: str) -> Answer:
    """An answer of API Gateway itself (its JSON shape)."""
    body = json.dumps({"message": message}, separators=(",", ":")).encode()
    return status, {"Content-Type": "application/json"}, [], body


NOT_FOUND = answer(404, "Not Found")
UNAUTHORIZED = answer(401, "Unauthorized")
FORBIDDEN = answer(403, "Forbidden")
INTERNAL_ERROR = answer(500, "Internal Server Error")
SERVICE_UNAVAILABLE = answer(503, "Service Unavailable")
TOO_LARGE = answer(413, "Request Entity Too Large")


class AuthorizerCache:
    """An authorizer's answers per identity-source values, each for ``ReauthorizeEvery`` seconds."""

    def __init__(self) -> None:
        self._answers: dict[tuple, tuple[float, dict]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple) -> dict | None:
        with self._lock:
            hit = self._answers.get(key)
            if hit is None or hit[0] <= time.monotonic():
                self._answers.pop(key, None)
                return None
            return hit[1]

    def put(self, key: tuple, decision: dict, seconds: float) -> None:
        with self._lock:
            if len(self._answers) > 10000:
                self._answers.clear()
            self._answers[key] = (time.monotonic() + seconds, decision)


class IntegrationTimeout(Exception):
    pass


def call_within(fn: Callable[[], Any], seconds: float) -> Any:
    """``fn()``, unless it takes longer than ``seconds`` (then IntegrationTimeout; fn goes on)."""
    box: dict[str, Any] = {}
    done = threading.Event()

    def run() -> None:
        try:
            box["result"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run, name="integration", daemon=True).start()
    if not done.wait(seconds):
        raise IntegrationTimeout()
    if "error" in box:
        raise box["error"]
    return box["result"]


class Gateway(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # bursts of new connections (tests race 20 clients at once)

    def __init__(
        self, port: int, routes: list[Route], functions: dict[str, LocalFunction], verbose: bool = False,
        integration_timeout: float = INTEGRATION_TIMEOUT_SECONDS,
    ) -> None:
        self.routes = routes
        self.verbose = verbose
        self.functions = functions
        self.integration_timeout = integration_timeout
        self.caches: dict[Authorizer, AuthorizerCache] = {}
        super().__init__(("127.0.0.1", port), _Handler)

    # ---- routing ------------------------------------------------------------------

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        fallback = None
        for route in self.routes:
            if route.path == "$default":
                fallback = route
                continue
            if route.method not in (method, "ANY"):
                continue
            found = route.regex.match(path)
            if found:
                return route, found.groupdict()
        return (fallback, {}) if fallback else None

    # ---- events -------------------------------------------------------------------

    def request_context(self, method: str, path: str, route_key: str, headers: dict[str, str], source_ip: str) -> dict:
        now = datetime.now(timezone.utc)
        return {
            "accountId": ACCOUNT,
            "apiId": API_ID,
            "domainName": headers.get("host", "127.0.0.1"),
            "domainPrefix": API_ID,
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": uuid.uuid4().hex,
            "routeKey": route_key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        }

    def handle_request(
        self, method: str, target: str, raw_headers: list[tuple[str, str]], body: bytes, source_ip: str
    ) -> Answer:
        url = urlsplit(target)
        path = unquote(url.path)  # HTTP APIs decode the path before routing and passing it on
        matched = self.match(method, path)
        if matched is None:
            return NOT_FOUND
        route, path_params = matched

        headers: dict[str, str] = {}
        cookies: list[str] = []
        for name, value in raw_headers:
            key = name.lower()
            if key == "cookie":
                cookies += [c.strip() for c in value.split(";") if c.strip()]
                continue
            headers[key] = f"{headers[key]},{value}" if key in headers else value
        # API Gateway adds these (its own scheme and port: https and 443; here, plain http)
        headers["x-forwarded-for"] = source_ip
        headers["x-forwarded-port"] = str(self.server_address[1])
        headers["x-forwarded-proto"] = "http"
        query: dict[str, str] = {}
        for key, value in parse_qsl(url.query, keep_blank_values=True):
            query[key] = f"{query[key]},{value}" if key in query else value

        route_key = route.route_key if route.path != "$default" else "$default"
        context = self.request_context(method, path, route_key, headers, source_ip)
        common = {
            "version": "2.0",
            "routeKey": route_key,
            "rawPath": path,
            "rawQueryString": url.query,
            "headers": headers,
            **({"cookies": cookies} if cookies else {}),
            **({"queryStringParameters": query} if query else {}),
            **({"pathParameters": path_params} if path_params else {}),
        }

        if route.authorizer:
            refused = self.authorize(route.authorizer, method, path, common, context, headers)
            if refused:
                return refused

        text, is_base64 = body_for_event(body, headers.get("content-type"))
        event = {**common, "requestContext": context, "body": text, "isBase64Encoded": is_base64}
        function = self.functions[route.function]
        try:
            result = call_within(lambda: function.invoke(event), self.integration_timeout)
            return _to_http(result)
        except IntegrationTimeout:
            return SERVICE_UNAVAILABLE
        except InvocationError as exc:
            print(f"gateway: {method} {path}: {exc}", file=sys.stderr)
            return INTERNAL_ERROR
        except Exception:
            traceback.print_exc(file=sys.stderr)
            return INTERNAL_ERROR

    def authorize(
        self, authorizer: Authorizer, method: str, path: str, common: dict, context: dict, headers: dict[str, str],
    ) -> Answer | None:
        """Run (or recall) the authorizer; None and ``context["authorizer"]`` set if the request may go on."""
        identity = [headers.get(name, "") for name in authorizer.identity_headers]
        if any(not value.strip() for value in identity):
            return UNAUTHORIZED  # API Gateway's own answer: the authorizer does not run
        cache = self.caches.setdefault(authorizer, AuthorizerCache())
        key = tuple(identity)
        decision = cache.get(key) if authorizer.cache_seconds and identity else None
        if decision is None:
            auth_event = {
                **common,
                "type": "REQUEST",
                "routeArn": f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{API_ID}/$default/{method}{path}",
                "identitySource": identity,
                "requestContext": context,
            }
            try:
                decision = self.functions[authorizer.function].invoke(auth_event)
            except InvocationError as exc:
                print(f"gateway: authorizer: {exc}", file=sys.stderr)
                return INTERNAL_ERROR
            if not isinstance(decision, dict) or not isinstance(decision.get("isAuthorized"), bool):
                return INTERNAL_ERROR  # a response in the wrong format
            if authorizer.cache_seconds and identity:
                cache.put(key, decision, authorizer.cache_seconds)
        if not decision["isAuthorized"]:
            return FORBIDDEN
        context["authorizer"] = {"lambda": decision.get("context") or {}}
        return None


def _to_http(result: Any) -> Answer:
    """Interpret a payload 2.0 response as API Gateway does."""
    if not isinstance(result, dict) or "statusCode" not in result:
        return 200, {"Content-Type": "application/json"}, [], json.dumps(result).encode()
    try:
        headers = {k: str(v) for k, v in (result.get("headers") or {}).items()}
        for name, values in (result.get("multiValueHeaders") or {}).items():
            headers[name] = ",".join(str(v) for v in values)
        body = result.get("body") or ""
        raw = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode()
        return int(result["statusCode"]), headers, list(result.get("cookies") or []), raw
    except (TypeError, ValueError, AttributeError):
        return INTERNAL_ERROR  # a response in the wrong format


class _Handler(BaseHTTPRequestHandler):
    server: Gateway
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # headers and body go out in two writes: without this, Nagle's algorithm holds the
        # body until the client's delayed ACK (~40 ms) on every kept-alive answer
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _serve(self) -> None:
        started = time.monotonic()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self._reply(*answer(400, "Bad Request"), close=True)
            return
        if length > MAX_PAYLOAD:
            self._reply(*TOO_LARGE, close=True)
            return
        body = self.rfile.read(length) if length else b""
        status, headers, cookies, payload = self.server.handle_request(
            self.command, self.path, list(self.headers.items()), body, self.client_address[0]
        )
        self._reply(status, headers, cookies, payload)
        if self.server.verbose:
            print(f"{self.command} {self.path} {status} {1000 * (time.monotonic() - started):.1f} ms", file=sys.stderr)

    def _reply(self, status: int, headers: dict[str, str], cookies: list[str], payload: bytes, close: bool = False) -> None:
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() not in ("content-length", "connection"):
                self.send_header(name, value)
        for cookie in cookies:
            self.send_header("Set-Cookie", cookie)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("apigw-requestid", uuid.uuid4().hex[:16])
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def __getattr__(self, name: str) -> Any:
        # BaseHTTPRequestHandler looks up do_<METHOD> and answers an HTML 501 when it is missing:
        # every method goes through the routes instead, as in API Gateway
        if name.startswith("do_"):
            return self._serve
        raise AttributeError(name)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # what http.server itself refuses (a malformed request line, headers too long): JSON too
        self.close_connection = True
        try:
            self._reply(*answer(code, message or self.responses.get(code, ("Error",))[0]), close=True)
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:  # quiet by default
        pass
