"""DynamoDB's JSON protocol, spoken directly: sign, POST, read, retry. No SDK on the hot path.

Why: every request of the service is one DynamoDB request built here already in DynamoDB's
own JSON shape (``db.to_av``). botocore spent about 3.7 ms of CPU a request on this machine
walking that shape to serialize it, again to parse the answer, building its user agent and
firing its events; this module spends about 1.3 ms (``bench/cost.py`` prices that CPU: it is
most of the API function's duration). What it keeps of the SDK's behaviour:

- credentials from botocore's own provider chain, read once per client (environment variables,
  or the container endpoint SnapStart environments use; refreshable ones are refreshed by it);
- Signature Version 4, the same canonical request botocore signs (a unit test compares the two);
- botocore's *standard* retry mode: up to ``ATTEMPTS`` attempts for throttling, DynamoDB's
  5xx, ``x-amz-crc32`` mismatches and connection errors, waiting ``random() * 2**(n-1)``
  seconds (at most 20) before attempt n+1. Not kept: its client-wide retry quota;
- errors as botocore reports them: ``ServiceError.response`` is ``{"Error": {"Code",
  "Message"}, "ResponseMetadata": {"HTTPStatusCode"}, ...}`` plus the error's own members
  (``Item``, ``CancellationReasons``), which is what ``db.call`` reads;
- the user agent's ``app/<AWS_SDK_UA_APP_ID>``.

Connections are kept alive in a small pool (the callbacks function attempts in threads); one
that the server closed while idle is replaced at once, without counting as an attempt.
``http.client`` (about 40 ms of import, with the email parser it loads) is imported by the
first client made, not by this module: a function's import stays light.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import random
import sys
import threading
import time
import uuid
import zlib
from datetime import datetime, timezone
from typing import Any, Callable
from urllib.parse import urlsplit

TARGET_PREFIX = "DynamoDB_20120810."
CONTENT_TYPE = "application/x-amz-json-1.0"
ATTEMPTS = 4
MAX_BACKOFF_SECONDS = 20.0
THROTTLED = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
    "TooManyRequestsException", "ProvisionedThroughputExceededException", "TransactionInProgressException",
    "RequestLimitExceeded", "BandwidthLimitExceeded", "LimitExceededException", "RequestThrottled",
    "SlowDown", "PriorRequestNotComplete", "EC2ThrottledException",
})
TRANSIENT_CODES = frozenset({"RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete"})
TRANSIENT_STATUS = frozenset({500, 502, 503, 504})
#: a keep-alive connection the server closed while it sat in the pool fails with one of these
_STALE = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)  # and RemoteDisconnected (a subclass)


class ServiceError(Exception):
    """DynamoDB answered with an error; ``response`` has botocore's shape (see the module's doc)."""

    def __init__(self, operation: str, response: dict[str, Any]) -> None:
        error = response["Error"]
        super().__init__(f"{operation}: {error['Code']}: {error['Message']}")
        self.operation = operation
        self.response = response


class ConnectionFailed(Exception):
    """DynamoDB could not be reached (or did not answer) within the attempts."""


#: ``fn(url, headers, body) -> (status, headers, body) | None``: where a request goes before the
#: network, if set; None from it sends the request over HTTP. The tests set it to hand requests
#: to moto in-process (``local/in_process.py``), as moto's ``mock_aws`` does to botocore's.
transport: Callable[[str, dict[str, str], bytes], tuple[int, dict[str, str], bytes] | None] | None = None

#: ``fn(stage, operation, params)`` for stage "before" (about to send) and "after" (answered,
#: or failed for good): how tests and benchmarks count requests. Empty in Lambda.
listeners: list[Callable[[str, str, dict], None]] = []


def user_agent() -> str:
    agent = f"jobsvc-dynamodb/1.0 python/{sys.version_info[0]}.{sys.version_info[1]}"
    app = os.environ.get("AWS_SDK_UA_APP_ID", "").strip()
    return f"{agent} app/{app}" if app else agent


def endpoint_for(region: str) -> str:
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://dynamodb.{region}.{suffix}"


class Signer:
    """AWS Signature Version 4 for one region and service (the day's signing key is cached)."""

    def __init__(self, credentials: Any, region: str, service: str = "dynamodb") -> None:
        self.credentials = credentials  # botocore Credentials: get_frozen_credentials()
        self.scope_tail = f"{region}/{service}/aws4_request"
        self.region, self.service = region, service
        self._key: tuple[str, str, bytes] | None = None  # (day, secret, key)

    def _signing_key(self, day: str, secret: str) -> bytes:
        cached = self._key
        if cached and cached[0] == day and cached[1] == secret:
            return cached[2]
        key = hmac.new(("AWS4" + secret).encode(), day.encode(), hashlib.sha256).digest()
        for part in (self.region, self.service, "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        self._key = (day, secret, key)
        return key

    def sign(self, headers: dict[str, str], body: bytes, now: datetime | None = None) -> None:
        """Add x-amz-date, x-amz-security-token (if any) and authorization to ``headers``
        (lower-case names; every header present is signed, as botocore signs them)."""
        creds = self.credentials.get_frozen_credentials()
        stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
        day = stamp[:8]
        headers["x-amz-date"] = stamp
        if creds.token:
            headers["x-amz-security-token"] = creds.token
        names = sorted(headers)
        signed = ";".join(names)
        canonical = "\n".join((
            "POST", "/", "", "".join(f"{n}:{' '.join(headers[n].split())}\n" for n in names), signed,
            hashlib.sha256(body).hexdigest(),
        ))
        scope = f"{day}/{self.scope_tail}"
        to_sign = f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        signature = hmac.new(self._signing_key(day, creds.secret_key), to_sign.encode(), hashlib.sha256).hexdigest()
        headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={creds.access_key}/{scope}, "
                                    f"SignedHeaders={signed}, Signature={signature}")


class Client:
    """One DynamoDB endpoint: ``request("GetItem", {...})`` -> the answer's JSON, as a dict."""

    def __init__(self, region: str, endpoint_url: str | None = None, credentials: Any = None,
                 connect_timeout: float = 3.0, read_timeout: float = 10.0, pool_size: int = 32) -> None:
        if credentials is None:
            import botocore.session

            credentials = botocore.session.get_session().get_credentials()
            if credentials is None:
                raise RuntimeError("no AWS credentials found for DynamoDB")
        url = urlsplit(endpoint_url or endpoint_for(region))
        self.https = url.scheme == "https"
        self.host = url.hostname or ""
        self.port = url.port or (443 if self.https else 80)
        self.host_header = url.netloc
        self.url = f"{url.scheme}://{url.netloc}/"
        self.signer = Signer(credentials, region)
        self.connect_timeout, self.read_timeout = connect_timeout, read_timeout
        self.agent = user_agent()
        self.pool_size = pool_size
        import http.client

        self._http = http.client
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._ssl: Any = None

    # -- connections ---------------------------------------------------------------------

    def _new_connection(self) -> Any:
        if not self.https:
            return self._http.HTTPConnection(self.host, self.port, timeout=self.connect_timeout)
        if self._ssl is None:
            import ssl

            from botocore.httpsession import get_cert_path  # the CA bundle botocore would use

            self._ssl = ssl.create_default_context(cafile=get_cert_path(True))
        return self._http.HTTPSConnection(self.host, self.port, timeout=self.connect_timeout, context=self._ssl)

    def _take(self, fresh: bool = False) -> tuple[Any, bool]:
        with self._lock:
            if self._idle and not fresh:
                return self._idle.pop(), True
        return self._new_connection(), False

    def _give_back(self, conn: Any) -> None:
        with self._lock:
            if len(self._idle) < self.pool_size:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def _exchange(self, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        """One HTTP exchange. A pooled connection found closed is replaced by a new one, at no
        cost; the others that sat idle as long are likely closed too, and are dropped."""
        if transport is not None:
            answer = transport(self.url, headers, body)
            if answer is not None:
                status, answer_headers, data = answer
                return status, {k.lower(): v for k, v in answer_headers.items()}, data
        for fresh in (False, True):
            conn, reused = self._take(fresh)
            try:
                if conn.sock is None:
                    conn.connect()
                    conn.sock.settimeout(self.read_timeout)
                conn.request("POST", "/", body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
            except _STALE:
                conn.close()
                if reused:
                    self.close()  # the rest of the pool went idle as long
                    continue
                raise
            except BaseException:
                conn.close()
                raise
            if response.will_close:
                conn.close()
            else:
                self._give_back(conn)
            return response.status, {k.lower(): v for k, v in response.getheaders()}, data
        raise AssertionError("unreachable")

    # -- requests ------------------------------------------------------------------------

    def request(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        if operation == "TransactWriteItems" and "ClientRequestToken" not in params:
            # as botocore adds it: the retries below of a transaction that did commit (its answer
            # lost) are answered as that commit, not refused by its own conditions
            params = {**params, "ClientRequestToken": str(uuid.uuid4())}
        for listener in listeners:
            listener("before", operation, params)
        try:
            return self._request(operation, params)
        finally:
            for listener in listeners:
                listener("after", operation, params)

    def _request(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps(params, separators=(",", ":")).encode()
        for attempt in range(1, ATTEMPTS + 1):
            headers = {"content-type": CONTENT_TYPE, "host": self.host_header,
                       "x-amz-target": TARGET_PREFIX + operation}
            self.signer.sign(headers, body)
            headers["user-agent"] = self.agent  # not signed (nor by botocore)
            try:
                status, answer_headers, data = self._exchange(body, headers)
            except (OSError, self._http.HTTPException) as exc:
                if attempt < ATTEMPTS:
                    _backoff(attempt)
                    continue
                raise ConnectionFailed(f"{operation}: {type(exc).__name__}: {exc}") from None
            crc = answer_headers.get("x-amz-crc32")
            if crc is not None and crc.isdigit() and int(crc) != zlib.crc32(data):
                if attempt < ATTEMPTS:
                    _backoff(attempt)
                    continue
                raise ConnectionFailed(f"{operation}: the answer's CRC32 did not match (x-amz-crc32)")
            if status == 200:
                return json.loads(data) if data else {}
            error = _error(status, answer_headers, data)
            code = error["Error"]["Code"]
            if attempt < ATTEMPTS and (code in THROTTLED or code in TRANSIENT_CODES or status in TRANSIENT_STATUS):
                _backoff(attempt)
                continue
            raise ServiceError(operation, error)
        raise AssertionError("unreachable")


def _backoff(attempt: int) -> None:
    """botocore's standard mode: before attempt n+1, random() * 2**(n-1) seconds, at most 20."""
    time.sleep(min(MAX_BACKOFF_SECONDS, random.random() * 2 ** (attempt - 1)))


def _error(status: int, headers: dict[str, str], data: bytes) -> dict[str, Any]:
    """An error answer as botocore's JSON parser reports it."""
    try:
        parsed = json.loads(data) if data else {}
        text = ""
    except ValueError:
        parsed, text = {}, data.decode("utf-8", "replace")[:500]  # not JSON: botocore gives the body
    if not isinstance(parsed, dict):
        parsed = {}
    kind = parsed.pop("__type", "") or headers.get("x-amzn-errortype", "") or str(status)
    code = kind.split(":", 1)[0].rsplit("#", 1)[-1]
    message = parsed.pop("message", None) or parsed.pop("Message", None) or text
    response: dict[str, Any] = dict(parsed)
    response["Error"] = {"Code": code, "Message": message}
    response["ResponseMetadata"] = {"HTTPStatusCode": status, "RequestId": headers.get("x-amzn-requestid", "")}
    return response
