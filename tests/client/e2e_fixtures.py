"""Fixtures of the client's end-to-end tests (tests/e2e/test_client*.py, test_cli*.py,
test_examples*.py), imported by those modules. They use the ``stack`` and ``keys`` fixtures of
tests/e2e/conftest.py: the local stack on a free port, organization alpha's key.

The client is installed the way a user installs it: ``python -m venv`` in a temporary folder
and ``pip install ./client`` (from a copy of the folder), once per test session (the venv is
cached in tests.client.support), and driven by scripts and by the ``jobs`` command run with
that venv's interpreter, from a folder outside the repository, with no PYTHONPATH.
"""
from __future__ import annotations

import json
import signal
import subprocess
import textwrap
import threading
import uuid
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

from tests.client.support import EXAMPLES_DIR, FreshVenv, fresh_venv, wait_for


@pytest.fixture(scope="session")
def client_venv(tmp_path_factory) -> FreshVenv:
    return fresh_venv(tmp_path_factory.mktemp("client-venv"))


@pytest.fixture
def client_env(client_venv, stack, keys) -> dict[str, str]:
    """JOBS_API_URL / JOBS_API_KEY for organization alpha."""
    return client_venv.env(stack["base"], keys["a"][0])


@pytest.fixture
def py(client_venv, client_env, tmp_path) -> Callable[..., Any]:
    """``py(code, **args)``: run a script with the venv's interpreter; ``ARGS`` (a dict) holds
    the keyword arguments; the script prints one JSON value last, which is returned."""

    def run(code: str, env: Optional[dict[str, str]] = None, timeout: float = 120, **args: Any) -> Any:
        script = tmp_path / f"script_{uuid.uuid4().hex[:8]}.py"
        prelude = "import json, os, sys\nARGS = json.loads(os.environ['ARGS'])\n"
        script.write_text(prelude + textwrap.dedent(code))
        full_env = {**(env or client_env), "ARGS": json.dumps(args)}
        done = subprocess.run([str(client_venv.python), str(script)], env=full_env, cwd=tmp_path, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise AssertionError(f"script failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        lines = [line for line in done.stdout.splitlines() if line.strip()]
        return json.loads(lines[-1])

    return run


@pytest.fixture
def jobs_cmd(client_venv, client_env, tmp_path) -> Callable[..., subprocess.CompletedProcess]:
    """``jobs_cmd(*args, env=None)``: the installed ``jobs`` command as a subprocess."""

    def run(*args: str, env: Optional[dict[str, str]] = None, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([str(client_venv.jobs), *args], env=env or client_env, cwd=tmp_path, capture_output=True, text=True, timeout=timeout)

    return run


class Background:
    """A process whose output lines are collected as they come."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        # SIGINT at its default in the child: a suite started as a background job of a
        # non-interactive shell (`(make test &)`) has it ignored, a child inherits that, and
        # Python then never raises KeyboardInterrupt for the Ctrl-C tests to see. It is set
        # here around the start (not in a preexec_fn, unsafe in a process with threads).
        ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
        try:
            self.proc = subprocess.Popen(args, env=env, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True)
        finally:
            if ignored:
                signal.signal(signal.SIGINT, signal.SIG_IGN)
        self.out: list[str] = []
        self.err: list[str] = []
        threading.Thread(target=lambda: self.out.extend(iter(self.proc.stdout.readline, "")), daemon=True).start()
        threading.Thread(target=lambda: self.err.extend(iter(self.proc.stderr.readline, "")), daemon=True).start()

    def line(self, prefix: str, timeout: float = 60) -> Optional[str]:
        """The first output line starting with ``prefix`` (waited for)."""
        return wait_for(lambda: next((l.rstrip("\n") for l in self.out if l.startswith(prefix)), None), timeout=timeout)

    def output(self) -> str:
        return "".join(self.out) + "".join(self.err)

    def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text)
        self.proc.stdin.flush()

    def wait(self, timeout: float = 120) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@pytest.fixture
def background(client_venv, client_env, tmp_path):
    """``background(code_or_argv, env=None, **args)``: start a script (a string) or a command (a
    list) with the venv's interpreter; every process is stopped when the test ends."""
    started: list[Background] = []

    def start(what: Any, env: Optional[dict[str, str]] = None, **args: Any) -> Background:
        full_env = {**(env or client_env), "ARGS": json.dumps(args)}
        if isinstance(what, str):
            script = tmp_path / f"bg_{uuid.uuid4().hex[:8]}.py"
            script.write_text("import json, os, sys\nARGS = json.loads(os.environ['ARGS'])\n" + textwrap.dedent(what))
            argv = [str(client_venv.python), str(script)]
        else:
            argv = [str(a) for a in what]
        process = Background(argv, full_env, tmp_path)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def example(client_venv):
    """The path of an example script."""
    return lambda name: str(EXAMPLES_DIR / name)

