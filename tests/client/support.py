"""Test support for the Python client: a stub HTTP server, a fake job service with the
contract's state machine (unit tests), and for the end-to-end tests a fresh virtual
environment with the client installed, scripts run in it, and a proxy that drops answers."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Optional, Union
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parents[2]
CLIENT_DIR = ROOT / "client"
EXAMPLES_DIR = ROOT / "examples"
CLOSE = "close"  # a reply: drop the connection without answering


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: Optional[bytes] = None  # a body sent as it is (not JSON)


Handler = Callable[[Recorded], Union[Reply, str]]


class StubServer:
    """An HTTP server on 127.0.0.1 (in a thread) that records every request and answers what
    ``handler`` returns: a :class:`Reply`, or ``CLOSE`` to drop the connection unanswered."""

    def __init__(self, handler: Optional[Handler] = None, port: int = 0) -> None:
        self.handler: Handler = handler or (lambda request: Reply(200, {}))
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        stub = self

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
                request = Recorded(self.command, parts.path, query, {k.lower(): v for k, v in self.headers.items()}, body)
                with stub._lock:
                    stub.requests.append(request)
                reply = stub.handler(request)
                if reply == CLOSE:
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                assert isinstance(reply, Reply)
                data = reply.raw if reply.raw is not None else (b"" if reply.body is None else json.dumps(reply.body).encode())
                self.send_response(reply.status)
                if reply.raw is None and reply.body is not None:
                    self.send_header("Content-Type", "application/json")
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _handle  # noqa: N815

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass

        self.server = Server(("127.0.0.1", port), RequestHandler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def to(self, method: str, path: Optional[str] = None) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.method == method and (path is None or r.path == path)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, every: float = 0.02) -> Any:
    """Poll until ``predicate()`` is truthy (and return it); ``None`` once ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    return predicate() or None


# ---- a fake job service (unit tests of track()) -------------------------------------------

TRANSITIONS = {
    "created": {"pending", "cancelled", "expired"},
    "pending": {"running", "cancelled", "expired"},
    "running": {"completed", "failed", "cancelled"},
}
TERMINAL = {"completed", "failed", "cancelled", "expired"}


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class FakeJobs:
    """Jobs kept in memory with the contract's transition rules (POST, GET, PATCH, cancel).

    ``faults``: a list of ``(predicate(request), reply)`` consumed first-match: each entry
    answers one matching request instead of the service."""

    def __init__(self) -> None:
        self.jobs: dict[str, dict] = {}
        self.faults: list[tuple[Callable[[Recorded], bool], Any]] = []
        self.lock = threading.Lock()
        self.server: Optional[StubServer] = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    def fault(self, predicate: Callable[[Recorded], bool], reply: Any, times: int = 1) -> None:
        """The next ``times`` requests matching ``predicate`` get ``reply`` (a Reply, CLOSE, or a
        callable returning one, called outside the service's lock)."""
        with self.lock:
            self.faults.extend([(predicate, reply)] * times)

    def set_status(self, job_id: str, status: str, stop_reason: Optional[str] = None) -> None:
        """A change made outside the worker (another client, the sweep)."""
        with self.lock:
            job = self.jobs[job_id]
            job.update(status=status, stop_reason=stop_reason, last_updated_at=_now())

    def handle(self, request: Recorded) -> Union[Reply, str]:
        with self.lock:
            for i, (predicate, reply) in enumerate(self.faults):
                if predicate(request):
                    del self.faults[i]
                    break
            else:
                return self._serve(request)
        return reply() if callable(reply) else reply  # a callable: e.g. a slow answer (outside the lock)

    def _serve(self, request: Recorded) -> Reply:
        parts = request.path.strip("/").split("/")  # v1 jobs {id} [cancel]
        if request.method == "POST" and parts == ["v1", "jobs"]:
            body = request.json() or {}
            job_id = f"job-{uuid.uuid4()}"
            now = _now()
            job = {
                "id": job_id, "status": body.get("status", "created"), "job_type": body.get("job_type", "job"),
                "created_at": now, "last_updated_at": now, "completed_at": None, "metadata": body.get("metadata", {}),
                "stop_reason": None, "heartbeat_timeout_seconds": body.get("heartbeat_timeout_seconds"),
                "callback_url": body.get("callback_url"),
            }
            self.jobs[job_id] = job
            return Reply(201, dict(job))
        if len(parts) < 3 or parts[:2] != ["v1", "jobs"] or parts[2] not in self.jobs:
            return Reply(404, {"detail": "no such job"})
        job = self.jobs[parts[2]]
        if request.method == "GET" and len(parts) == 3:
            return Reply(200, dict(job))
        if request.method == "PATCH" and len(parts) == 4 and parts[3] == "cancel":
            return self._move(job, "cancelled", {"stop_reason": "cancelled"})
        if request.method == "PATCH" and len(parts) == 3:
            body = dict(request.json() or {})
            target = body.pop("status", None)
            return self._move(job, target, body)
        return Reply(404, {"detail": "no such route"})

    def _move(self, job: dict, target: Optional[str], changes: dict) -> Reply:
        current = job["status"]
        if target is not None and target == current and current in TERMINAL:
            return Reply(200, dict(job))
        if current in TERMINAL or (target is not None and target != current and target not in TRANSITIONS.get(current, ())):
            return Reply(409, {"detail": f"job {job['id']} is {current}", "current_status": current})
        metadata = changes.pop("metadata", None) or {}
        for key, value in metadata.items():
            if value is None:
                job["metadata"].pop(key, None)
            else:
                job["metadata"][key] = value
        job.update(changes)
        if target is not None:
            job["status"] = target
            if target in TERMINAL:
                job["completed_at"] = _now()
        job["last_updated_at"] = _now()
        return Reply(200, dict(job))


# ---- end to end: the client installed in a fresh virtual environment ------------------------

_VENV: dict[str, Any] = {}
_VENV_LOCK = threading.Lock()


@dataclass
class FreshVenv:
    root: Path
    python: Path
    jobs: Path  # the console script
    seconds: float  # how long creating it took

    def env(self, base_url: str, api_key: Optional[str], **extra: str) -> dict[str, str]:
        """The environment a user of the client would have: no PYTHONPATH into this repository."""
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "JOBS_API_URL", "JOBS_API_KEY", "VIRTUAL_ENV")}
        env.update(JOBS_API_URL=base_url, PYTHONUNBUFFERED="1", PATH=f"{self.root / 'bin'}{os.pathsep}{env.get('PATH', '')}")
        if api_key is not None:
            env["JOBS_API_KEY"] = api_key
        env.update(extra)
        return env


def fresh_venv(workdir: Path) -> FreshVenv:
    """``python -m venv`` + ``pip install ./client`` (from a copy of the folder, so that the
    build leaves nothing in the repository), once per test process."""
    with _VENV_LOCK:
        if "venv" in _VENV:
            return _VENV["venv"]
        started = time.monotonic()
        root = workdir / "venv"
        source = workdir / "client-src"
        shutil.copytree(CLIENT_DIR, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
        # what a user runs, pip install ./client; with uv's pip (the one make installs in .venv,
        # the same build and install of the package, in seconds) when there is one
        uv = Path(sys.executable).parent / "uv"
        with_uv = uv.exists()
        subprocess.run([sys.executable, "-m", "venv", *(["--without-pip"] if with_uv else []), str(root)],
                       check=True, capture_output=True, timeout=300)
        python = root / "bin" / "python"
        command = [str(uv), "pip", "install", "--quiet", "--python", str(python), str(source)] if with_uv else \
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(source)]
        install = subprocess.run(command, capture_output=True, text=True, timeout=600)
        if install.returncode != 0:
            raise RuntimeError(f"pip install ./client failed:\n{install.stdout}\n{install.stderr}")
        venv = FreshVenv(root, python, root / "bin" / "jobs", time.monotonic() - started)
        _VENV["venv"] = venv
        return venv


def run_script(venv: FreshVenv, env: dict[str, str], code: str, cwd: Path, timeout: float = 120) -> Any:
    """Run ``code`` with the venv's interpreter (from ``cwd``, outside the repository); it prints
    one JSON value on its last line of output, which is returned."""
    script = cwd / f"script_{uuid.uuid4().hex[:8]}.py"
    script.write_text(code)
    done = subprocess.run([str(venv.python), str(script)], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"script failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    return json.loads(lines[-1])


class DroppingProxy:
    """An HTTP proxy to ``target`` that forwards every request and relays the answer, except
    that for the first ``drops`` requests matching ``predicate`` it forwards the request, reads
    the answer, and then closes the connection without answering (a lost answer)."""

    def __init__(self, target: str, predicate: Callable[[Recorded], bool], drops: int = 1) -> None:
        import requests

        self.target = target.rstrip("/")
        self.dropped: list[Recorded] = []
        self.forwarded: list[tuple[Recorded, int, dict[str, str]]] = []
        session = requests.Session()
        left = [drops]

        def handle(request: Recorded) -> Union[Reply, str]:
            url = self.target + request.path
            headers = {k: v for k, v in request.headers.items() if k not in ("host", "content-length", "connection", "accept-encoding")}
            answer = session.request(request.method, url, params=request.query or None, data=request.body or None, headers=headers, timeout=60)
            if left[0] > 0 and predicate(request):
                left[0] -= 1
                self.dropped.append(request)
                return CLOSE
            answer_headers = {k: v for k, v in answer.headers.items() if k.lower() not in ("content-length", "connection", "transfer-encoding", "content-encoding", "date", "server")}
            self.forwarded.append((request, answer.status_code, answer_headers))
            return Reply(answer.status_code, raw=answer.content, headers=answer_headers)

        self.stub = StubServer(handle)
        self.url = self.stub.url

    def close(self) -> None:
        self.stub.close()
