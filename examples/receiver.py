"""A webhook receiver for the job lifecycle service, with the standard library only.

It verifies every delivery as Standard Webhooks specifies (HMAC-SHA256 of
``"{webhook-id}.{webhook-timestamp}.{raw body}"`` keyed with your ``whsec_`` secret; any of
the space-separated signatures may match, as during a secret rotation; timestamps more than
``--tolerance`` seconds from now are refused), answers at once (``204``) and hands the event
to a worker thread, which prints it. A ``webhook-id`` seen before is answered ``204`` and not
handled again: deliveries are at least once, so retries and redeliveries come with the same
id. A delivery that fails verification gets ``400`` (the service retries, then dead-letters it).

Run::

    WEBHOOK_SECRET=whsec_... python examples/receiver.py --port 9000

and give jobs ``"callback_url": "http://127.0.0.1:9000/"`` (the local stack allows
``http`` and private addresses; a deployment needs an ``https`` URL that the internet reaches).
Get the secret with ``curl $API/v1/webhook-secret -H "Authorization: Bearer $KEY"``.

Settings:
  WEBHOOK_SECRET     your secret(s), ``whsec_...``; several separated by commas or spaces
                     (keep the old and the new one while you switch after a rotation)
                     (or --secret, which may be repeated)
  --host HOST        address to listen on (default 127.0.0.1)
  --port PORT        port (default $PORT or 8000; 0 picks a free one)
  --tolerance S      accepted clock difference in seconds (default 300)

Output: ``listening on http://HOST:PORT/`` first, then one JSON line per new event:
``{"webhook_id": ..., "event": {...}}``; rejected and duplicate deliveries are reported on
stderr.
"""
from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import hmac
import json
import os
import queue
import sys
import threading
import time
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Mapping, Optional

MAX_BODY = 1024 * 1024
SEEN_MAX = 100_000  # webhook ids remembered for deduplication


class Rejected(Exception):
    pass


def parse_secrets(values: "List[str]") -> List[bytes]:
    keys = []
    for value in values:
        for secret in value.replace(",", " ").split():
            encoded = (secret[len("whsec_"):] if secret.startswith("whsec_") else secret).rstrip("=")
            try:
                keys.append(base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True))
            except (binascii.Error, ValueError):
                raise SystemExit(f"not a webhook secret (whsec_<base64>): {secret[:10]}...") from None
    if not keys:
        raise SystemExit("no secret: set WEBHOOK_SECRET or pass --secret")
    return keys


def verify(keys: List[bytes], body: bytes, headers: Mapping[str, str], tolerance: int, now: Optional[float] = None) -> Dict[str, Any]:
    """The event of a genuine delivery; raises ``Rejected`` otherwise. ``headers``: lower-case names."""
    msg_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not msg_id or not timestamp or not signatures:
        raise Rejected("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        sent = int(timestamp)
    except ValueError:
        raise Rejected("bad webhook-timestamp") from None
    if abs((time.time() if now is None else now) - sent) > tolerance:
        raise Rejected("webhook-timestamp too far from now")
    signed = f"{msg_id}.{timestamp}.".encode() + body
    expected = [hmac.new(key, signed, hashlib.sha256).digest() for key in keys]
    matched = False
    for candidate in signatures.split():
        version, _, encoded = candidate.partition(",")
        if version != "v1":
            continue
        try:
            given = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        for signature in expected:
            matched |= hmac.compare_digest(given, signature)  # constant time, no early exit
    if not matched:
        raise Rejected("no signature matches")
    try:
        event = json.loads(body)
    except ValueError:
        raise Rejected("body is not JSON") from None
    if not isinstance(event, dict):
        raise Rejected("body is not a JSON object")
    return event


class Receiver:
    def __init__(self, keys: List[bytes], tolerance: int) -> None:
        self.keys = keys
        self.tolerance = tolerance
        self.seen: "OrderedDict[str, None]" = OrderedDict()
        self.lock = threading.Lock()
        self.events: "queue.Queue[tuple[str, Dict[str, Any]]]" = queue.Queue()

    def first_time(self, msg_id: str) -> bool:
        with self.lock:
            if msg_id in self.seen:
                return False
            self.seen[msg_id] = None
            if len(self.seen) > SEEN_MAX:
                self.seen.popitem(last=False)
            return True

    def handle_events(self) -> None:
        """The slow part of handling an event goes here, after the answer: this one prints."""
        while True:
            msg_id, event = self.events.get()
            print(json.dumps({"webhook_id": msg_id, "event": event}, sort_keys=True), flush=True)


def make_handler(receiver: Receiver) -> type:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "example-receiver"

        def answer(self, status: int, text: str = "") -> None:
            body = text.encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            if body:
                self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:  # noqa: N802
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if length < 0 or length > MAX_BODY:
                self.close_connection = True
                return self.answer(413, "body too large")
            body = self.rfile.read(length)
            headers: Dict[str, str] = {k.lower(): v for k, v in self.headers.items()}
            try:
                event = verify(receiver.keys, body, headers, receiver.tolerance)
            except Rejected as exc:
                print(f"rejected: {exc} (webhook-id {headers.get('webhook-id')})", file=sys.stderr, flush=True)
                return self.answer(400, str(exc))
            msg_id = headers["webhook-id"]
            if receiver.first_time(msg_id):
                receiver.events.put((msg_id, event))
            else:
                print(f"duplicate: {msg_id}", file=sys.stderr, flush=True)
            self.answer(204)

        def log_message(self, *args: object) -> None:
            pass  # one line per event on stdout is enough

    return Handler


def main(argv: "List[str] | None" = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--secret", action="append", help="whsec_... (default: $WEBHOOK_SECRET); repeatable")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 8000))
    parser.add_argument("--tolerance", type=int, default=300)
    args = parser.parse_args(argv)
    keys = parse_secrets(args.secret or [os.environ.get("WEBHOOK_SECRET", "")])

    receiver = Receiver(keys, args.tolerance)
    server = ThreadingHTTPServer((args.host, args.port), make_handler(receiver))
    server.daemon_threads = True
    threading.Thread(target=receiver.handle_events, daemon=True).start()
    print(f"listening on http://{args.host}:{server.server_address[1]}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
