"""``python -m local`` in a subprocess, started the way the README starts it: the session's shared
stack (``tests/e2e/conftest.py``) and the stacks of the suites that must not share it: the fault
soak (its stack injects faults) and the OpenAPI fuzz (it bulk-cancels and rotates secrets at
random)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import requests

ROOT = Path(__file__).resolve().parents[2]

#: one a line, what the stack prints before it is ready (see local/__main__.py)
EMULATOR_PREFIX = "emulator:"
READY_PREFIX = "ready:"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def own_stack(keys: dict[str, tuple[str, str, str]], **environment: str) -> Iterator[dict]:
    """Start ``python -m local`` with ``keys`` (name -> (key, organization, user)) and the given
    environment; yields ``{"base", "emulator", "proc", "output"}`` (``output``: every line the
    stack printed so far, kept up to date)."""
    port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "LOCAL_API_KEYS": ",".join(":".join(v) for v in keys.values()),
        "PYTHONUNBUFFERED": "1",
        **environment,
    }
    env.pop("AWS_ENDPOINT_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "local"], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    lines: list[str] = []
    emulator = None
    deadline = time.monotonic() + 300  # a start on a loaded machine takes long
    while time.monotonic() < deadline:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            break
        lines.append(line)
        if line.startswith(EMULATOR_PREFIX):
            emulator = line.split()[1]
        if line.startswith(READY_PREFIX):
            break
    if proc.poll() is not None or requests.get(base + "/v1/health", timeout=30).status_code != 200:
        proc.kill()
        raise RuntimeError("the local stack did not start:\n" + "".join(lines))
    # keep draining the stack's output so that it never blocks on a full pipe
    threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True).start()  # type: ignore[union-attr]
    try:
        yield {"base": base, "emulator": emulator, "proc": proc, "output": lines}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
