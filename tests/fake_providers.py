"""Fake Anthropic Message Batches + OpenAI Batch APIs on one local HTTP server (stdlib only).

Anthropic: /v1/messages/batches...; OpenAI: /v1/files..., /v1/batches...  Each request's
fate is ``fake_outcome`` in Anthropic ``params`` / the OpenAI line's ``body``: "succeeded"
(default), "errored", "canceled", "expired"; optional ``fake_text`` sets the reply text.

* Only GETs of a batch object are polls.  With ``polls_to_finish = P``, GET g <= P is in
  progress (the first N*(g-1)//P requests are then *decided*), GET P+1 ends the batch.
  OpenAI: "validating" at creation, "in_progress", "finalizing" at GET P (if P >= 2),
  then terminal; its counts grow as requests are decided.  Anthropic counts stay
  processing=N until the end (documented: requests leave "processing" at batch end).
* Cancel: the next GET ends the batch and undecided requests become canceled (Anthropic
  "canceling" -> "ended", OpenAI "cancelling" -> "cancelled"); an ended batch is unchanged.
* OpenAI ``batch_failed`` on the first line (or a bad line / unknown fake_outcome) fails
  the batch at its first GET, i.e. at validation like the real service: "failed",
  ``errors`` set, no files, completed = failed = 0, total = N.
* OpenAI end status: "cancelled" if cancel was requested, else "expired" if any request
  expired, else "cancelled" if any request's fate was canceled, else "completed".
  Successes -> output file; "errored" -> error file with response.status_code 400 and an
  error body; canceled / expired -> error file with ``response: null`` and error.code
  "batch_cancelled" / "batch_expired" (the documented BatchRequestOutput codes).  A file
  exists only if it has lines (else its id is null); counts.failed = error-file lines.
"""
import copy
import json
import re
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ANTHROPIC_FATES = ("succeeded", "errored", "canceled", "expired")
OPENAI_TERMINAL = {"completed", "failed", "expired", "cancelled"}
ROUTES = [  # (method, path pattern with * for an id, handler method name)
    ("POST", "v1/messages/batches", "_a_create"), ("GET", "v1/messages/batches/*", "_batch_op"),
    ("POST", "v1/messages/batches/*/cancel", "_batch_op"),
    ("GET", "v1/messages/batches/*/results", "_a_results"),
    ("POST", "v1/files", "_o_upload"), ("GET", "v1/files/*/content", "_o_content"), ("POST", "v1/batches", "_o_create"),
    ("GET", "v1/batches/*", "_batch_op"), ("POST", "v1/batches/*/cancel", "_batch_op"),
]


def _hex():
    return uuid.uuid4().hex[:24]


def _rfc3339(dt=None):
    return (dt or datetime.now(timezone.utc)).isoformat().replace("+00:00", "Z")


class _Batch:
    """Internal state of one batch of either provider."""

    def __init__(self, kind, obj, items, failure=None):
        self.kind, self.obj, self.items = kind, obj, items  # items: [(custom_id, fate, params_or_body)]
        self.failure, self.decided = failure, [None] * len(items)  # failure: OpenAI (code, message)
        self.polls, self.cancel, self.ended, self.results = 0, False, False, []


class FakeProviders:
    """Fake Anthropic + OpenAI batch server.  Public: ``url``, ``latency`` (seconds
    slept before every answer), ``polls_to_finish``, ``calls`` ((method, path) of
    every request), ``fail_next`` (faults for the next requests, in order: an int
    status such as 500/503 -> that status with a provider-shaped JSON error;
    "timeout" -> sleep 10 s (or until close) then drop the connection; "malformed"
    -> 200 ``not json{``; "bad_results_line" -> ``this is not json`` mid-way in the
    next results / file-content body; other requests skip over it in the queue).
    Faults apply before auth checks; faulted requests are not polls."""

    def __init__(self, anthropic_key="sk-ant-test", openai_key="sk-openai-test", polls_to_finish=2):
        self.anthropic_key, self.openai_key = anthropic_key, openai_key
        self.polls_to_finish, self.latency = polls_to_finish, 0.0
        self.fail_next, self.calls = [], []
        self._lock, self._closing = threading.RLock(), threading.Event()
        self._batches, self._files = {}, {}  # id -> _Batch ; id -> (file object dict, bytes)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), type("Handler", (_Handler,), {"fake": self}))
        self._server.daemon_threads, self._server.block_on_close = True, False
        self.url = "http://127.0.0.1:%d" % self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def batch(self, batch_id):
        """Copy of a batch's current public object (not counted as a poll), plus
        ``_polls``, ``_cancel_requested`` and ``_outcomes`` {custom_id: fate or None}."""
        with self._lock:
            b = self._batches[batch_id]
            out = copy.deepcopy(b.obj)
            out.update(_polls=b.polls, _cancel_requested=b.cancel,
                       _outcomes={c: d for (c, _, _), d in zip(b.items, b.decided)})
            return out

    def close(self):
        """Stop the server; requests sleeping on a "timeout" fault are released."""
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _take_fault(self, is_content):
        with self._lock:
            i = next((i for i, f in enumerate(self.fail_next) if f != "bad_results_line" or is_content), None)
            return None if i is None else self.fail_next.pop(i)

    def _store_file(self, filename, data, purpose):
        fid = "file-" + _hex()
        self._files[fid] = ({"id": fid, "object": "file", "bytes": len(data), "created_at": int(time.time()),
                             "filename": filename, "purpose": purpose}, data)
        return self._files[fid][0]

    # ---- progress (all called with the lock held) ----------------------------
    def _poll(self, b):
        """Advance a batch by one GET of its object."""
        if b.ended:
            return
        b.polls, now, n, p, o = b.polls + 1, time.time(), len(b.items), self.polls_to_finish, b.obj
        if b.failure and o.get("status") == "validating":
            b.ended = True
            o.update(status="failed", failed_at=int(now), errors={"object": "list", "data": [
                {"code": b.failure[0], "message": b.failure[1], "param": None, "line": None}]})
            return
        if b.cancel or b.polls > p:
            b.decided = [d or ("canceled" if b.cancel else f) for d, (_, f, _) in zip(b.decided, b.items)]
            b.ended = True
            return (self._anthropic_finish if b.kind == "anthropic" else self._openai_finish)(b, now)
        for i in range(n * (b.polls - 1) // p):
            b.decided[i] = b.decided[i] or b.items[i][1]
        if b.kind == "openai":
            o["in_progress_at"] = o["in_progress_at"] or int(now)
            o["status"] = "finalizing" if (b.polls == p and p >= 2) else "in_progress"
            if o["status"] == "finalizing":
                o["finalizing_at"] = int(now)
            done = [d for d in b.decided if d]
            o["request_counts"].update(completed=done.count("succeeded"), failed=len(done) - done.count("succeeded"))

    def _anthropic_finish(self, b, now):
        o = b.obj
        o["request_counts"] = dict(processing=0, **{k: b.decided.count(k) for k in ANTHROPIC_FATES})
        o.update(processing_status="ended", ended_at=_rfc3339(),
                 results_url="%s/v1/messages/batches/%s/results" % (self.url, o["id"]))
        for (cid, _, params), fate in zip(b.items, b.decided):
            result = {"type": fate}
            if fate == "succeeded":
                result["message"] = {
                    "id": "msg_" + _hex(), "type": "message", "role": "assistant",
                    "model": params.get("model", "claude-fake"),
                    "content": [{"type": "text", "text": params.get("fake_text", "fake reply to " + cid)}],
                    "stop_reason": "end_turn", "stop_sequence": None, "usage": {"input_tokens": 1, "output_tokens": 1}}
            elif fate == "errored":
                result["error"] = {"type": "error", "error": {"type": "invalid_request_error",
                                                              "message": "fake error for " + cid}}
            b.results.append(json.dumps({"custom_id": cid, "result": result}))

    def _openai_finish(self, b, now):
        o, out, err = b.obj, [], []
        for (cid, _, body), fate in zip(b.items, b.decided):
            line = {"id": "batch_req_" + _hex(), "custom_id": cid, "response": None, "error": None}
            if fate == "succeeded":
                line["response"] = {"status_code": 200, "request_id": "req_" + _hex(), "body": {
                    "id": "chatcmpl-" + _hex(), "object": "chat.completion", "created": int(now),
                    "model": body.get("model", "gpt-fake"),
                    "choices": [{"index": 0, "finish_reason": "stop", "message": {
                        "role": "assistant", "content": body.get("fake_text", "fake reply to " + cid)}}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}}
            elif fate == "errored":
                line["response"] = {"status_code": 400, "request_id": "req_" + _hex(), "body": {"error": {
                    "message": "fake error for " + cid, "type": "invalid_request_error", "param": None, "code": None}}}
            else:
                code = "batch_cancelled" if fate == "canceled" else "batch_expired"
                line["error"] = {"code": code, "message": "This request was not executed (%s)." % code}
            (out if fate == "succeeded" else err).append(json.dumps(line))
        for key, lines, suffix in (("output_file_id", out, "output"), ("error_file_id", err, "error")):
            if lines:
                data = ("\n".join(lines) + "\n").encode()
                o[key] = self._store_file("%s_%s.jsonl" % (o["id"], suffix), data, "batch_output")["id"]
        o["request_counts"].update(completed=len(out), failed=len(err))
        if b.cancel or ("canceled" in b.decided and "expired" not in b.decided):
            o.update(status="cancelled", cancelled_at=int(now), cancelling_at=o["cancelling_at"] or int(now))
        elif "expired" in b.decided:
            o.update(status="expired", expired_at=int(now))
        else:
            o.update(status="completed", completed_at=int(now), finalizing_at=o["finalizing_at"] or int(now))


class _Handler(BaseHTTPRequestHandler):
    """Route handlers run under the fake's lock and return ``(status, payload)``
    (dict -> JSON, list of str -> chunked JSONL); writing happens after unlocking."""

    protocol_version = "HTTP/1.1"
    fake = None  # set on the per-server subclass

    def log_message(self, *args):  # keep pytest output quiet
        pass

    def do_GET(self):  # also serves POST
        self._handle(self.command)

    do_POST = do_GET

    def _err(self, status, etype, message):
        if self.anthropic:
            return status, {"type": "error", "error": {"type": etype, "message": message}}
        return status, {"error": {"message": message, "type": etype, "param": None, "code": None}}

    def _handle(self, method):
        fake, path = self.fake, self.path.split("?")[0].rstrip("/")
        self.body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.anthropic, parts = path.startswith("/v1/messages"), path.strip("/").split("/")
        with fake._lock:
            fake.calls.append((method, path))
        if fake.latency:
            time.sleep(fake.latency)
        fault = fake._take_fault(method == "GET" and parts[-1] in ("results", "content"))
        if fault == "timeout":
            fake._closing.wait(10)
            self.close_connection = True
            return
        if fault == "malformed":
            return self._write(200, b"not json{")
        if isinstance(fault, int):
            etype = ("overloaded_error" if fault in (503, 529) else "api_error") if self.anthropic else "server_error"
            return self._write(*self._err(fault, etype, "fake fault %d" % fault))
        name = next((h for m, pat, h in ROUTES
                     if m == method and re.fullmatch(pat.replace("*", "[^/]+"), path.strip("/"))), None)
        if self.anthropic and self.headers.get("x-api-key") != fake.anthropic_key:
            status, payload = self._err(401, "authentication_error", "invalid x-api-key")
        elif self.anthropic and self.headers.get("anthropic-version") != "2023-06-01":
            status, payload = self._err(400, "invalid_request_error", "anthropic-version: header is required")
        elif not self.anthropic and self.headers.get("Authorization") != "Bearer " + fake.openai_key:
            status, payload = self._err(401, "invalid_request_error", "Incorrect API key provided")
        elif name is None:
            status, payload = self._err(404, "not_found_error", "Unknown route %s %s" % (method, path))
        else:
            with fake._lock:  # serialise while locked: the state may change afterwards
                status, payload = getattr(self, name)(parts)
                payload = list(payload) if isinstance(payload, list) else json.dumps(payload).encode()
        if not isinstance(payload, list):
            return self._write(status, payload)
        if fault == "bad_results_line":
            payload.insert(len(payload) // 2, "this is not json")
        self.send_response(200)
        self.send_header("Content-Type", "application/x-jsonl" if self.anthropic else "application/jsonl")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for line in payload:  # one chunk per line
            data = (line + "\n").encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def _write(self, status, data):
        data = data if isinstance(data, bytes) else json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _json_body(self):
        try:
            body = json.loads(self.body or b"{}")
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}

    def _lookup(self, p):
        """(batch, None) or (None, 404 response) for the id in path parts ``p``."""
        batch_id = p[3] if self.anthropic else p[2]
        b = self.fake._batches.get(batch_id)
        if b is None or b.kind != ("anthropic" if self.anthropic else "openai"):
            return None, self._err(404, "not_found_error" if self.anthropic else "invalid_request_error",
                                   "No batch found with id '%s'." % batch_id)
        return b, None

    def _batch_op(self, p):
        """GET a batch (counts as one poll) or POST .../cancel (an ended batch is returned unchanged)."""
        b, err = self._lookup(p)
        if err:
            return err
        if p[-1] != "cancel":
            self.fake._poll(b)
        elif not b.ended and not b.cancel:
            b.cancel = True
            b.obj.update({"processing_status": "canceling", "cancel_initiated_at": _rfc3339()} if self.anthropic
                         else {"status": "cancelling", "cancelling_at": int(time.time())})
        return 200, b.obj

    # ---- Anthropic -------------------------------------------------------------
    def _a_create(self, p):
        reqs, seen, items = self._json_body().get("requests"), set(), []
        if not isinstance(reqs, list) or not reqs:
            return self._err(400, "invalid_request_error", "requests: must contain at least 1 item")
        for i, r in enumerate(reqs):
            cid, params = (r.get("custom_id"), r.get("params")) if isinstance(r, dict) else (None, None)
            problem = ("custom_id: Field required" if not isinstance(cid, str) or not cid
                       else "custom_id: duplicate custom_id %r" % cid if cid in seen
                       else "params: Field required" if not isinstance(params, dict)
                       else "params.fake_outcome: unknown %r" % params["fake_outcome"]
                       if params.get("fake_outcome", "succeeded") not in ANTHROPIC_FATES else None)
            if problem:
                return self._err(400, "invalid_request_error", "requests.%d.%s" % (i, problem))
            seen.add(cid)
            items.append((cid, params.get("fake_outcome", "succeeded"), params))
        now, bid = datetime.now(timezone.utc), "msgbatch_" + _hex()
        counts = dict(processing=len(items), **dict.fromkeys(ANTHROPIC_FATES, 0))
        obj = {"id": bid, "type": "message_batch", "processing_status": "in_progress", "request_counts": counts,
               "ended_at": None, "created_at": _rfc3339(now), "expires_at": _rfc3339(now + timedelta(hours=24)),
               "archived_at": None, "cancel_initiated_at": None, "results_url": None}
        self.fake._batches[bid] = _Batch("anthropic", obj, items)
        return 200, obj

    def _a_results(self, p):
        b, err = self._lookup(p)
        if b and not b.ended:
            return self._err(400, "invalid_request_error", "Message Batch %s has not ended yet" % b.obj["id"])
        return err or (200, b.results)

    # ---- OpenAI ------------------------------------------------------------------
    def _o_upload(self, p):
        """multipart/form-data (parsed with email.parser): fields ``purpose`` and ``file``."""
        ctype = self.headers.get("Content-Type", "")
        msg = BytesParser(policy=HTTP).parsebytes(b"Content-Type: %s\r\n\r\n%s" % (ctype.encode(), self.body))
        parts = {q.get_param("name", header="content-disposition"): q for q in msg.iter_parts()}
        f, purpose = parts.get("file"), parts.get("purpose")
        if f is None or purpose is None or purpose.get_payload(decode=True) != b"batch":
            return self._err(400, "invalid_request_error", "multipart fields 'file' and purpose 'batch' are required")
        return 200, self.fake._store_file(f.get_filename() or "upload.jsonl", f.get_payload(decode=True), "batch")

    def _o_content(self, p):
        f = self.fake._files.get(p[2])
        if f is None:
            return self._err(404, "invalid_request_error", "No such File object: %s" % p[2])
        return 200, f[1].decode().splitlines()

    def _o_create(self, p):
        body = self._json_body()
        f = self.fake._files.get(body.get("input_file_id"))
        if f is None or f[0]["purpose"] != "batch":
            return self._err(400, "invalid_request_error", "Invalid input_file_id %r" % body.get("input_file_id"))
        if body.get("completion_window") != "24h" or not str(body.get("endpoint", "")).startswith("/v1/"):
            return self._err(400, "invalid_request_error", "Invalid endpoint or completion_window")
        items, failure = [], None
        for n, raw in enumerate(f[1].decode().splitlines(), 1):
            try:
                if raw.strip():
                    line = json.loads(raw)
                    items.append((line["custom_id"], line["body"].get("fake_outcome", "succeeded"), line["body"]))
            except (ValueError, KeyError, TypeError, AttributeError):
                failure = failure or ("invalid_json_line", "Line %d is not a valid batch request." % n)
        if items and items[0][1] == "batch_failed":
            failure = ("batch_failed", "Fake batch failure requested.")
        elif any(fate not in ANTHROPIC_FATES for _, fate, _ in items):  # a typo must not pass silently
            failure = failure or ("invalid_fake_outcome", "Unknown fake_outcome in the input file.")
        now, bid = int(time.time()), "batch_" + _hex()
        obj = {"id": bid, "object": "batch", "endpoint": body["endpoint"], "errors": None,
               "input_file_id": body["input_file_id"], "completion_window": "24h", "status": "validating",
               "output_file_id": None, "error_file_id": None, "created_at": now, "in_progress_at": None,
               "expires_at": now + 86400, "finalizing_at": None, "completed_at": None, "failed_at": None,
               "expired_at": None, "cancelling_at": None, "cancelled_at": None,
               "request_counts": {"total": len(items), "completed": 0, "failed": 0}, "metadata": body.get("metadata")}
        self.fake._batches[bid] = _Batch("openai", obj, items, failure)
        return 200, obj


if __name__ == "__main__":
    import requests

    with FakeProviders() as fp:
        ah = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}
        reqs = [{"custom_id": f, "params": {"model": "claude-x", "fake_outcome": f}} for f in ANTHROPIC_FATES]
        b = requests.post(fp.url + "/v1/messages/batches", json={"requests": reqs}, headers=ah).json()
        while b["processing_status"] != "ended":
            b = requests.get(fp.url + "/v1/messages/batches/" + b["id"], headers=ah).json()
        print("anthropic:", b["request_counts"], "\n" + requests.get(b["results_url"], headers=ah).text)
        oh = {"Authorization": "Bearer sk-openai-test"}
        jsonl = "\n".join(json.dumps({"custom_id": f, "method": "POST", "url": "/v1/chat/completions",
                                      "body": {"model": "gpt-x", "fake_outcome": f}}) for f in ("succeeded", "errored"))
        f = requests.post(fp.url + "/v1/files", headers=oh, data={"purpose": "batch"}, files={"file": jsonl})
        b = requests.post(fp.url + "/v1/batches", headers=oh, json={
            "input_file_id": f.json()["id"], "endpoint": "/v1/chat/completions", "completion_window": "24h"}).json()
        while b["status"] not in OPENAI_TERMINAL:
            b = requests.get(fp.url + "/v1/batches/" + b["id"], headers=oh).json()
            print("openai:", b["status"], b["request_counts"])
        for key in ("output_file_id", "error_file_id"):
            print(key, requests.get(fp.url + "/v1/files/%s/content" % b[key], headers=oh).text)
        assert b["status"] == "completed" and b["request_counts"] == {"total": 2, "completed": 1, "failed": 1}
