"""A local stand-in for API Gateway HTTP API: HTTP request -> payload 2.0 event -> handler.

As API Gateway does, it runs the route's Lambda authorizer first (payload 2.0,
simple responses) and passes its context to the integration in
``requestContext.authorizer.lambda``.  Answers that API Gateway itself would
give keep its shape (``{"message": ...}``).
"""
from __future__ import annotations

import base64
import json
import socket
import sys
import time
import traceback
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .lambdas import LocalFunction
from .template import ACCOUNT, REGION, Route

API_ID = "local"
MAX_PAYLOAD = 10 * 1024 * 1024  # API Gateway's own request limit


class Gateway(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # bursts of new connections (tests race 20 clients at once)

    def __init__(
        self, port: int, routes: list[Route], functions: dict[str, LocalFunction], verbose: bool = False
    ) -> None:
        self.routes = routes
        self.verbose = verbose
        self.functions = functions
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
    ) -> tuple[int, dict[str, str], list[str], bytes]:
        url = urlsplit(target)
        path = url.path
        matched = self.match(method, path)
        if matched is None:
            return _gateway_answer(404, "Not Found")
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
            auth_event = {
                **common,
                "type": "REQUEST",
                "routeArn": f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{API_ID}/$default/{method}{path}",
                "identitySource": [],
                "requestContext": context,
            }
            try:
                decision = self.functions[route.authorizer].invoke(auth_event)
            except Exception:
                traceback.print_exc(file=sys.stderr)
                return _gateway_answer(500, "Internal Server Error")
            if not isinstance(decision, dict) or not decision.get("isAuthorized"):
                return _gateway_answer(403, "Forbidden")
            context["authorizer"] = {"lambda": decision.get("context") or {}}

        try:
            text, is_base64 = body.decode("utf-8"), False
        except UnicodeDecodeError:
            text, is_base64 = base64.b64encode(body).decode(), True
        event = {**common, "requestContext": context, "body": text if body else None, "isBase64Encoded": is_base64}
        try:
            result = self.functions[route.function].invoke(event)
        except Exception:
            traceback.print_exc(file=sys.stderr)
            return _gateway_answer(500, "Internal Server Error")
        return _to_http(result)


def _gateway_answer(status: int, message: str) -> tuple[int, dict[str, str], list[str], bytes]:
    return status, {"Content-Type": "application/json"}, [], json.dumps({"message": message}).encode()


def _to_http(result: Any) -> tuple[int, dict[str, str], list[str], bytes]:
    """Interpret a payload 2.0 response as API Gateway does."""
    if not isinstance(result, dict) or "statusCode" not in result:
        return 200, {"Content-Type": "application/json"}, [], json.dumps(result).encode()
    headers = {k: str(v) for k, v in (result.get("headers") or {}).items()}
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers[name] = ",".join(str(v) for v in values)
    body = result.get("body") or ""
    raw = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode()
    return int(result["statusCode"]), headers, list(result.get("cookies") or []), raw


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
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_PAYLOAD:
            self._reply(*_gateway_answer(413, "Request Entity Too Large"), close=True)
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

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _serve

    def log_message(self, format: str, *args: Any) -> None:  # quiet by default
        pass
